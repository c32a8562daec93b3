import { PeerKey, peerKey } from '../coap/peer';
import { randomText } from '../random-text';
import { EXPIRY_TICK, Registration, Transport, expiresAt } from './registration';

const ID_BYTES = 6;

/** Expiry is checked this often: registrations are grouped by the tick they expire in, one timer for all. */
const TICK_MS = 100;

/**
 * The registrations of one server, by endpoint name and by registration id,
 * each removed when its lifetime runs out without an update.
 */
export class RegistrationStore {
  private readonly byEndpoint = new Map<string, Registration>();
  private readonly byId = new Map<string, Registration>();
  /** By address and port, one map per transport, for requests that name no registration (Send). */
  private readonly byPeer: Record<Transport, Map<PeerKey, Registration>> = { udp: new Map(), dtls: new Map(), tcp: new Map(), tls: new Map() };
  /** Tick number -> the registrations that expire in it. */
  private readonly expiring = new Map<number, Set<Registration>>();
  /** Ticks count from the store's creation, so they stay small integers V8 keeps unboxed. */
  private readonly tickEpoch = Date.now();
  private sweptTick = 0;
  private sweepTimer?: NodeJS.Timeout;

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

  /** The registration whose device talks from this address over this transport. */
  getByPeer(transport: Transport, address: string, port: number): Registration | undefined {
    return this.byPeer[transport].get(peerKey(address, port));
  }

  /** Records a new source address of a registration (an Update from elsewhere). */
  move(registration: Registration, address: string, port: number): void {
    const byPeer = this.byPeer[registration.transport];
    const oldKey = peerKey(registration.address, registration.port);
    if (byPeer.get(oldKey) === registration) byPeer.delete(oldKey);
    registration.address = address;
    registration.port = port;
    byPeer.set(peerKey(address, port), registration);
  }

  all(): IterableIterator<Registration> {
    return this.byEndpoint.values();
  }

  /** A random registration id (8 characters) no registration has. */
  newId(): string {
    for (;;) {
      const id = randomText(ID_BYTES, 'base64url');
      if (!this.byId.has(id)) return id;
    }
  }

  /** Adds a registration and returns the one it replaces for the same endpoint. */
  add(registration: Registration): Registration | undefined {
    const previous = this.byEndpoint.get(registration.endpoint);
    if (previous) this.remove(previous);
    this.byEndpoint.set(registration.endpoint, registration);
    this.byId.set(registration.id, registration);
    this.byPeer[registration.transport].set(peerKey(registration.address, registration.port), registration);
    this.schedule(registration);
    return previous;
  }

  /**
   * Restarts the lifetime from now, a new one if given. A later expiry
   * leaves the registration in its group (the sweep finds it alive there and
   * moves it on): an Update touches no group unless it shortens the lifetime.
   */
  renew(registration: Registration, lifetime = registration.lifetime): void {
    registration.lifetime = lifetime;
    registration.lastUpdate = registration.lastSeen = Date.now();
    if (this.tickOf(registration) >= (registration[EXPIRY_TICK] ?? Infinity)) return;
    this.unschedule(registration);
    this.schedule(registration);
  }

  remove(registration: Registration): boolean {
    if (this.byId.get(registration.id) !== registration) return false;
    this.byId.delete(registration.id);
    this.byEndpoint.delete(registration.endpoint);
    const byPeer = this.byPeer[registration.transport];
    const key = peerKey(registration.address, registration.port);
    if (byPeer.get(key) === registration) byPeer.delete(key);
    this.unschedule(registration);
    return true;
  }

  clear(): void {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.expiring.clear();
    this.byId.clear();
    this.byEndpoint.clear();
    for (const byPeer of Object.values(this.byPeer)) byPeer.clear();
  }

  private schedule(registration: Registration): void {
    if (!this.sweepTimer) {
      this.sweptTick = this.tickAt(Date.now());
      this.sweepTimer = setInterval(() => this.sweep(), TICK_MS).unref();
    }
    // Already due (a registration restored from a saved state): the next sweep.
    const tick = Math.max(this.tickOf(registration), this.sweptTick + 1);
    let group = this.expiring.get(tick);
    if (!group) {
      group = new Set();
      this.expiring.set(tick, group);
    }
    group.add(registration);
    registration[EXPIRY_TICK] = tick;
  }

  private unschedule(registration: Registration): void {
    const tick = registration[EXPIRY_TICK];
    if (tick === undefined) return;
    const group = this.expiring.get(tick);
    if (!group?.delete(registration)) return;
    if (group.size === 0) this.expiring.delete(tick);
  }

  /** The tick a registration expires in, from its expiry time. */
  private tickOf(registration: Registration): number {
    return Math.ceil((expiresAt(registration) - this.tickEpoch) / TICK_MS);
  }

  private tickAt(time: number): number {
    return Math.floor((time - this.tickEpoch) / TICK_MS);
  }

  private sweep(): void {
    const nowMs = Date.now();
    const now = this.tickAt(nowMs);
    for (let tick = this.sweptTick + 1; tick <= now; tick++) {
      const group = this.expiring.get(tick);
      if (!group) continue;
      this.expiring.delete(tick);
      for (const registration of group) {
        // Renewed since it was grouped here: on to the tick of its expiry now.
        if (expiresAt(registration) > nowMs) {
          if (this.byId.get(registration.id) === registration) this.schedule(registration);
          continue;
        }
        if (this.remove(registration)) this.onExpired(registration);
      }
    }
    this.sweptTick = now;
  }
}

