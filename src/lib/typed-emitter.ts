import { EventEmitter } from 'node:events';

/** An EventEmitter whose events and their arguments are checked by the compiler. */
export class TypedEmitter<Events extends { [event: string]: unknown[] }> extends EventEmitter {
  override on<E extends keyof Events & string>(event: E, listener: (...args: Events[E]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  override off<E extends keyof Events & string>(event: E, listener: (...args: Events[E]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }

  override emit<E extends keyof Events & string>(event: E, ...args: Events[E]): boolean {
    return super.emit(event, ...args);
  }
}
