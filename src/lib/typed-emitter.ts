import { EventEmitter } from 'node:events';

/** An EventEmitter whose events and their arguments are checked by the compiler. */
export class TypedEmitter<Events extends { [event: string]: unknown[] }> extends EventEmitter {
  override on<E extends keyof Events & string>(event: E, listener: (...args: Events[E]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  override off<E extends keyof Events & string>(event: E, listener: (...args: Events[E]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }

  /** Attaches the listeners whose events are wanted; returns the function that detaches them all. */
  subscribe(
    listeners: { [E in keyof Events & string]?: (...args: Events[E]) => void },
    wanted: (event: keyof Events & string) => boolean = () => true,
  ): () => void {
    const attached = Object.entries(listeners).filter(([event]) => wanted(event)) as [string, (...args: unknown[]) => void][];
    for (const [event, listener] of attached) super.on(event, listener);
    return () => {
      for (const [event, listener] of attached) super.off(event, listener);
    };
  }

  override emit<E extends keyof Events & string>(event: E, ...args: Events[E]): boolean {
    return super.emit(event, ...args);
  }
}
