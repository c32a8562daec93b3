import { randomBytes } from 'node:crypto';
import { Registration, expiresAt } from './registration';

/** setTimeout cannot wait longer than 2^31-1 ms; longer lifetimes re-arm. */
const MAX_TIMER_MS = 0x7fffffff;

/**
 * The registrations of one server, by endpoint name and by registration id,
 * each removed when its lifetime runs out without an update.
 */
export class RegistrationStore {
  private readonly byEndpoint = new Map<string, Registration>();
  private readonly byId = new Map<string, Registration>();
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly onExpired: (registration: Registration) => void) {}

  get size(): number {
    return this.byEndpoint.size;
  }

  getByEndpoint(endpoint: string): Registration | undefined {
    return this.byEndpoint.get(endpoint);
  }

  getById(id: string): Registration | undefined {
    return this.byId.get(id);
  }

  all(): IterableIterator<Registration> {
    return this.byEndpoint.values();
  }

  newId(): string {
    for (;;) {
      const id = randomBytes(6).toString('base64url');
      if (!this.byId.has(id)) return id;
    }
  }

  /** Adds a registration and returns the one it replaces for the same endpoint. */
  add(registration: Registration): Registration | undefined {
    const previous = this.byEndpoint.get(registration.endpoint);
    if (previous) this.remove(previous);
    this.byEndpoint.set(registration.endpoint, registration);
    this.byId.set(registration.id, registration);
    this.schedule(registration);
    return previous;
  }

  /** Restarts the lifetime of a registration that was just updated. */
  touch(registration: Registration): void {
    this.schedule(registration);
  }

  remove(registration: Registration): boolean {
    if (this.byId.get(registration.id) !== registration) return false;
    this.byId.delete(registration.id);
    this.byEndpoint.delete(registration.endpoint);
    clearTimeout(this.timers.get(registration.id));
    this.timers.delete(registration.id);
    return true;
  }

  clear(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.byId.clear();
    this.byEndpoint.clear();
  }

  private schedule(registration: Registration): void {
    clearTimeout(this.timers.get(registration.id));
    const delay = Math.max(0, expiresAt(registration) - Date.now());
    const timer = setTimeout(() => {
      if (Date.now() < expiresAt(registration)) {
        this.schedule(registration);
        return;
      }
      if (this.remove(registration)) this.onExpired(registration);
    }, Math.min(delay, MAX_TIMER_MS));
    timer.unref();
    this.timers.set(registration.id, timer);
  }
}
