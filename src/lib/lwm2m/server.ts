import { TypedEmitter } from '../typed-emitter';
import { ResponseCode } from '../coap/codes';
import { IncomingRequest, MalformedDatagram, diagnostic } from '../coap/endpoint';
import type { Peer } from '../coap/peer';
import type { PeerIdentity } from '../dtls/credentials';
import type { ContentRecord } from '../content/values';
import { ObjectModel } from '../model/object-model';
import { DeviceClient, DeviceClientOptions, SendOptions } from './device-client';
import { NotificationEvent, Observation, ObservationListener, ObservationService, ObserveKind } from './observations';
import { PresenceTracker } from './presence';
import { Registration, Transport, expiresAt, isStream } from './registration';
import { DEFAULT_MAX_LIFETIME, RegistrationInterface } from './registration-interface';
import { EndpointBindings } from './endpoint-bindings';
import { RegistrationStore } from './registration-store';
import type { DeviceRequest, ResponseBase } from './requests/device-request';
import { SendInterface } from './send-interface';
import { CollectionName, EntryLinks, ParkedRequest, PersistedObservation, ServiceCollection, StateStore, StoredState, deriveStateKey, entriesOf, entryJson, openText, parseEntry, sealText } from './state';
import { ConnectionJson, ConnectionRecord, DtlsSession, SessionJson, connectionFromJson, connectionToJson, sessionFromJson, sessionToJson } from '../dtls/session';
import { hostname } from 'node:os';
import { SecurityRegistry, identityKey } from './security';
import { BoundListener, ListenerOptions, Listeners, TransportHandler } from './listeners';
import { RedisStateStore } from './redis-store';
import { ClusterHost, Handover, ServerCluster, peerAlias } from '../cluster/server-cluster';

export interface Lwm2mServerOptions extends ListenerOptions {
  /** Which endpoint must use which credentials; empty (every NoSec device may register) by default. */
  security?: SecurityRegistry;
  /** Object definitions used to type values; the OMA registry by default. */
  model?: ObjectModel;
  client?: DeviceClientOptions;
  /** How long a queue-mode device counts as awake after it last talked (default 93 s, MAX_TRANSMIT_WAIT). */
  awakeTimeMs?: number;
  /** Re-establish observations when their device registers again (default true). */
  reobserve?: boolean;
  /** Registrations held at most; new endpoints beyond get 5.03 (default 500,000). */
  maxRegistrations?: number;
  /** Longest lifetime kept, in seconds (default 7 days); longer requests are shortened. */
  maxLifetime?: number;
  /**
   * Endpoints that are not in the security list and never registered over
   * DTLS: "nosec" lets them register over plain UDP (default), "dtls"
   * requires DTLS, "listed" requires a listed or certified identity.
   */
  unlistedEndpoints?: UnlistedEndpoints;
  /** Keeps registrations, observations, parked requests and (with a stateKey) DTLS sessions across redeploys and restarts. */
  stateStore?: StateStore;
  /** The secret DTLS sessions are sealed under in the store (AES-256-GCM); without one they are not stored. */
  stateKey?: string | Buffer;
  /** With a Redis store: this instance's name in the cluster of servers that share it. */
  instance?: string;
}

/** A registration as saved: a plain-UDP device's address may be saved as verified (it answered the server). */
type SavedRegistration = Registration & { verified?: boolean };

export type UnlistedEndpoints = 'nosec' | 'dtls' | 'listed';

/** Changes are written at most this often. */
const SAVE_DELAY_MS = 1000;
/** How often DTLS connections are looked at for state to save without any event (sequence numbers and replay windows move on). */
const DTLS_SAVE_CHECK_MS = 10_000;

/** Events of an Lwm2mServer, with their arguments. */
export type Lwm2mServerEvents = {
  registered: [registration: Registration, replaced: Registration | undefined];
  updated: [registration: Registration, changes: string[]];
  /** removedBy: set when the server removed it on request ("flow", "editor"), not the device. */
  deregistered: [registration: Registration, removedBy?: string];
  expired: [registration: Registration];
  /** A queue-mode device talked after sleeping. */
  awake: [registration: Registration];
  /** A queue-mode device stayed silent for the awake time. */
  sleeping: [registration: Registration];
  /** Values a device reported with the Send operation. */
  send: [registration: Registration, records: ContentRecord[], contentFormat: number, raw: Buffer];
  /** A registration, update or Send refused (4.03) for its credentials, with the reason (never a key). */
  refused: [endpoint: string, peer: Peer, reason: string];
  /** A DTLS handshake that failed, with the reason (never a key). */
  handshakeFailed: [peer: Peer, reason: string];
  /** A datagram or request that was rejected as malformed. */
  malformed: [detail: MalformedDatagram];
  /** A fault inside the server (a handler bug, a socket error, a state file that cannot be written); never thrown. */
  warning: [error: Error];
  /** Requests that waited for a device at another instance (or before a restart) are here for their nodes: takeParked(owner). */
  parked: [owners: string[]];
  /** Why the state store cannot be used now (Redis unreachable), or undefined once it can again. */
  storeProblem: [problem: string | undefined];
  /** Another instance serves this device now (in a cluster): it is no longer here. Services keep what they hold of it (keepEntry) before the other instance reads it. */
  released: [registration: Registration];
  /** A device taken over from another instance (in a cluster), with the services' entries kept beside it (keepEntry with its endpoint). */
  adopted: [registration: Registration, entries: [collection: ServiceCollection, id: string, value: unknown][]];
  /** The saved state is back (restoredEntries), the sockets not bound yet: services beside the server pick up their entries. */
  restored: [];
  /** stop() began: services beside the server keep their last entries (keepEntry) before the final save. */
  stopping: [];
};

/** Answers the requests to a resource a service serves on the server's sockets (a file service); undefined for the others. */
export type ResourceHandler = (request: IncomingRequest, transport: Transport) => ReturnType<TransportHandler> | undefined;

/** An entry a service changed since the last save: its JSON, or undefined to delete it. */
interface ServiceEntryChange {
  collection: ServiceCollection;
  id: string;
  json: string | undefined;
  expiresAt?: number;
  /** The device it belongs to: in a shared store it is read with the device's other entries when another instance takes the device over. */
  endpoint?: string;
}

/**
 * An LwM2M server on plain UDP, DTLS, TCP and/or TLS endpoints: the
 * Registration interface and store, the Send operation, observations and
 * queue mode. Requests to a device go out over the transport it registered on.
 */
export class Lwm2mServer extends TypedEmitter<Lwm2mServerEvents> {
  /** The CoAP endpoints: plain UDP, DTLS, TCP and/or TLS. */
  readonly coap: Listeners;
  readonly security: SecurityRegistry;
  readonly registrations: RegistrationStore;
  readonly observations: ObservationService;
  readonly presence: PresenceTracker;
  readonly model: ObjectModel;
  /** Endpoint names that registered over DTLS, with their identity: nobody else may take them over. */
  readonly bindings: EndpointBindings;
  private readonly unlisted: UnlistedEndpoints;
  private readonly maxLifetime: number;
  private readonly registrationInterface: RegistrationInterface;
  private readonly sendInterface: SendInterface;
  private readonly client: DeviceClient;
  private readonly stateStore?: StateStore;
  private readonly stateKey?: Buffer;
  /** With a Redis store: this server's part in the cluster of instances sharing it. */
  readonly cluster?: ServerCluster;
  /** What keeps the store from being used now (see the storeProblem event). */
  storeProblem: string | undefined = undefined;
  /** Registrations gone since the last save: their aliases go from a shared store. */
  private readonly goneRegistrations = new Map<string, Registration>();
  /** Requests taken back from sleeping devices, until their nodes adopt them, by id in the store. */
  private parked = new Map<string, ParkedRequest>();
  /** Endpoints whose registration changed since the last save. */
  private readonly changedRegistrations = new Set<string>();
  /** Endpoints whose binding changed since the last save. */
  private readonly changedBindings = new Set<string>();
  /** The JSON last stored per observation (token) and parked request: only what changed is written again. */
  private readonly stored: Record<'observations' | 'parked', Map<string, string>> = { observations: new Map(), parked: new Map() };
  /** With a shared store: the device each stored observation and parked request belongs to, to delete it from its group. */
  private readonly storedLinks: Record<'observations' | 'parked', Map<string, EntryLinks>> = { observations: new Map(), parked: new Map() };
  /** Endpoints registered since the last save, which this instance claims in a shared store. */
  private readonly claimed = new Set<string>();
  private flushing?: Promise<void>;
  private dtlsSoon = false;
  /** The entries of services' collections found at start, and their changes since the last save. */
  private restoredServiceState?: StoredState;
  private readonly serviceChanges = new Map<string, ServiceEntryChange>();
  /** Resources served beside the Registration interface and Send (see serve). */
  private readonly resources: ResourceHandler[] = [];
  /** How long a request may wait for a sleeping queue-mode device (the client's default time to live). */
  readonly queueTtlMs: number;
  private saveTimer?: NodeJS.Timeout;
  private dtlsSaveCheck?: NodeJS.Timeout;
  private saving: Promise<void> = Promise.resolve();
  private restored!: () => void;
  private isReady = false;
  /** Resolves once the saved state is back (or there was none) and the sockets are bound: nodes adopt their observations and requests then. */
  readonly ready = new Promise<void>((resolve) => (this.restored = resolve));

  constructor(options: Lwm2mServerOptions) {
    super();
    this.stateStore = options.stateStore;
    this.stateKey = options.stateKey !== undefined && options.stateKey.length > 0 ? deriveStateKey(options.stateKey) : undefined;
    this.queueTtlMs = options.client?.defaultTtlMs ?? 300_000;
    this.model = options.model ?? ObjectModel.builtIn();
    this.presence = new PresenceTracker(options.awakeTimeMs ?? 93_000, (registration, awake) => this.emit(awake ? 'awake' : 'sleeping', registration));
    this.registrations = new RegistrationStore((registration) => {
      this.gone(registration, 'expired');
      this.emit('expired', registration);
    });
    this.security = options.security ?? new SecurityRegistry();
    this.unlisted = options.unlistedEndpoints ?? 'nosec';
    this.maxLifetime = options.maxLifetime ?? DEFAULT_MAX_LIFETIME;
    this.bindings = new EndpointBindings(options.maxRegistrations ?? 500_000, (endpoint) => this.registrations.getByEndpoint(endpoint) !== undefined);
    const shared = options.stateStore instanceof RedisStateStore ? options.stateStore : undefined;
    this.coap = new Listeners(
      shared ? this.clusterListeners(options) : options,
      this.security,
      (request, transport) => this.handle(request, transport),
      this,
      (transport, peer) => this.registrations.getByPeer(transport, peer.address, peer.port) !== undefined,
    );
    // A plain-UDP device whose address is now verified is saved so, and needs no ping after a restart.
    if (this.stateStore) {
      this.coap.plain?.on('verified', (peer: Peer) => {
        const registration = this.registrations.getByPeer('udp', peer.address, peer.port);
        if (!registration) return;
        this.changedRegistrations.add(registration.endpoint);
        this.scheduleSave();
      });
    }
    this.coap.dtls?.on('moved', (from, to) => this.followDtlsPeer(from, to));
    for (const [transport, endpoint] of this.coap.streams()) {
      endpoint.on('connected', (peer: Peer, identity: PeerIdentity | undefined) => this.streamConnected(transport, peer, identity));
      endpoint.on('disconnected', (peer: Peer) => this.streamDisconnected(transport, peer));
    }
    const endpointFor = (transport: Transport) => this.coap.for(transport);
    // With a shared store, a request that waits for a sleeping device is kept there at once: the instance may die before it is sent.
    const waitingChanged = shared
      ? (id: string, request: ParkedRequest | undefined) => {
          if (request) this.putEntry(shared, 'parked', id, request, request.deadline, { group: request.endpoint });
          else shared.delete('parked', id);
          this.flushSoon();
        }
      : undefined;
    const modelFor = (registration: Registration | undefined) => this.modelFor(registration);
    this.client = new DeviceClient(endpointFor, this.registrations, modelFor, this.presence, options.client, waitingChanged);
    this.observations = new ObservationService(
      endpointFor,
      this.registrations,
      (endpoint, request, sendOptions) => this.client.send(endpoint, request, sendOptions),
      (endpoint, request, first) => this.client.completeNotification(endpoint, request, first),
      modelFor,
      this.presence,
      options.reobserve ?? true,
    );
    this.registrationInterface = new RegistrationInterface(this.registrations, {
      registered: (registration, replaced) => {
        if (registration.identity && this.bindings.bind(registration.endpoint, registration.identity)) this.changedBindings.add(registration.endpoint);
        this.emit('registered', registration, replaced);
        this.presence.seen(registration);
        this.observations.onRegistered(registration, replaced);
      },
      updated: (registration, changes, from) => {
        if (isStream(registration.transport)) this.observations.onReconnected(registration);
        else if (from) this.observations.onMoved(registration, from);
        this.emit('updated', registration, changes);
        this.presence.seen(registration);
      },
      deregistered: (registration) => {
        this.gone(registration, 'deregistered');
        this.emit('deregistered', registration);
      },
      refused: (endpoint, peer, reason) => this.emit('refused', endpoint, peer, reason),
    }, { maxRegistrations: options.maxRegistrations, maxLifetime: this.maxLifetime, authorize: (endpoint, identity) => this.refusal(endpoint, identity) });
    this.sendInterface = new SendInterface(
      this.registrations,
      modelFor,
      (registration, records, format, raw) => {
        this.presence.seen(registration);
        this.emit('send', registration, records, format, raw);
      },
      (endpoint, peer, reason) => this.emit('refused', endpoint, peer, reason),
    );
    // Without a state store nothing is saved: no set of changed endpoints to keep up on every Register and Update.
    if (this.stateStore) {
      for (const event of ['registered', 'updated', 'deregistered', 'expired'] as const) {
        this.on(event, (...[registration]: [Registration, ...unknown[]]) => {
          this.changedRegistrations.add(registration.endpoint);
          if (shared && (event === 'deregistered' || event === 'expired')) this.goneRegistrations.set(registration.endpoint, registration);
          if (shared && event === 'registered') this.claimed.add(registration.endpoint);
          this.scheduleSave();
        });
      }
    }
    if (shared) this.cluster = new ServerCluster(this.clusterHost(), shared, options.instance ?? `${hostname()}-${process.pid}`);
    const dtls = this.coap.dtls;
    if (dtls && this.stateStore && this.stateKey) {
      for (const event of ['established', 'closed', 'moved'] as const) dtls.on(event, () => this.scheduleSave());
      // Another instance may have to carry a new session on at once: it is written right away.
      if (shared) dtls.on('established', () => this.saveDtlsSoon());
      // Traffic alone (sequence numbers, replay windows) changes only the DTLS entries: saved without looking at the rest.
      this.dtlsSaveCheck = setInterval(() => {
        const store = this.stateStore as StateStore;
        this.saveDtls(store);
        this.saving = this.saving.then(() => store.flush()).catch((error: Error) => {
          this.emit('warning', new Error(`state not saved: ${error.message}`));
        });
      }, DTLS_SAVE_CHECK_MS).unref();
    }
  }

  /**
   * Restores the saved state, then binds the sockets; rejects with the first
   * bind error (having closed the others). With a shared store nothing is
   * read now: devices are taken over from it as they talk or are asked for.
   */
  async start(): Promise<BoundListener[]> {
    if (this.cluster) this.cluster.start();
    else {
      try {
        const state = await this.stateStore?.load();
        if (state) this.restore(state);
      } catch (error) {
        this.emit('warning', new Error(`saved state not restored: ${(error as Error).message}`));
      }
    }
    this.emit('restored');
    // Requests from flows wait for ready: by then the sockets are bound (or failed to bind).
    try {
      return await this.coap.start();
    } finally {
      this.isReady = true;
      this.restored();
    }
  }

  /**
   * Serves a further resource on the server's sockets (plain and DTLS, and
   * any transport that hands its requests to the server): the handler answers
   * the requests it recognises and returns undefined for the others.
   */
  serve(handler: ResourceHandler): void {
    this.resources.push(handler);
  }

  /** The entries a service saved in its collection, as the last start found them, not expired; empty without a state store. */
  restoredEntries<T>(collection: ServiceCollection): [string, T][] {
    const list: [string, T][] = [];
    for (const [id, entry] of this.restoredServiceState?.[collection] ?? []) {
      try {
        list.push([id, parseEntry<T>(entry.json)]);
      } catch (error) {
        this.emit('warning', new Error(`${collection} ${id} not restored: ${(error as Error).message}`));
      }
    }
    return list;
  }

  /**
   * Keeps an entry of a service's collection in the state store with the
   * next save (value undefined: removes it), until expiresAt (ms since the
   * epoch). Values are written as JSON with Buffers and Dates kept. An
   * entry of one device (endpoint) goes with the device when another instance
   * takes it over (the adopted event).
   */
  keepEntry(collection: ServiceCollection, id: string, value: unknown, expiresAt?: number, endpoint?: string): void {
    if (!this.stateStore) return;
    const json = value === undefined ? undefined : this.entryText(value, () => `${collection} ${id}`);
    if (value !== undefined && json === undefined) return;
    this.serviceChanges.set(`${collection}/${id}`, { collection, id, json, expiresAt, endpoint });
    this.scheduleSave();
  }

  /** Takes back an owner's requests that wait for sleeping devices, to hand them to its next instance. */
  parkRequests(owner: string): void {
    this.park(this.client.detach({ owner }));
    this.scheduleSave();
  }

  /** The requests an owner left waiting (before a redeploy or restart), whose time to live has not run out. */
  takeParked(owner: string): ParkedRequest[] {
    const now = Date.now();
    const mine: ParkedRequest[] = [];
    for (const [id, request] of this.parked) {
      if (request.owner !== owner) continue;
      this.parked.delete(id);
      if (request.deadline > now) mine.push(request);
    }
    if (mine.length > 0) this.scheduleSave();
    return mine;
  }

  private park(requests: [string, ParkedRequest][]): void {
    for (const [id, request] of requests) this.parked.set(id, request);
  }

  /**
   * Removes a registration as a de-registration would (a flow or the editor
   * asked): its observations end and its waiting requests fail. A device
   * that is still running registers again when it next updates.
   * forgetIdentity: also lets another identity take the name (see bindings).
   */
  remove(endpoint: string, removedBy: string, forgetIdentity = false): { removed?: Registration; unbound: boolean } {
    const unbound = forgetIdentity && this.bindings.forget(endpoint);
    if (unbound) {
      this.changedBindings.add(endpoint);
      this.scheduleSave();
    }
    const registration = this.registrations.getByEndpoint(endpoint);
    if (registration) {
      this.registrations.remove(registration);
      this.gone(registration, 'removed');
      this.emit('deregistered', registration, removedBy);
    }
    return { removed: registration, unbound };
  }

  /** Why an identity may not act as an endpoint: the security list, then the name's DTLS binding, then the policy for unlisted names. */
  private refusal(endpoint: string, identity: PeerIdentity | undefined): string | undefined {
    const refusal = this.security.refusal(endpoint, identity);
    if (refusal || this.security.get(endpoint)) return refusal;
    const bound = this.bindings.refusal(endpoint, identity);
    if (bound) return bound;
    // Past the security list, an identity is a certificate whose CN is the endpoint name (PSK and RPK identities are always listed).
    if (!identity && this.unlisted !== 'nosec') {
      return this.unlisted === 'dtls'
        ? `endpoint ${endpoint} must register over DTLS or TLS (the server refuses plain UDP and TCP)`
        : `endpoint ${endpoint} is not in the security list and has no certificate from a trusted CA`;
    }
    return undefined;
  }

  /** Saves soon, once for a burst of changes. */
  scheduleSave(): void {
    if (!this.stateStore || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.save();
    }, SAVE_DELAY_MS);
  }

  /**
   * Writes what changed since the last save, entry by entry: the
   * registrations that changed, observations and parked requests that are new
   * or different, DTLS sessions and connections (sealed). An entry that
   * cannot be written whole is written without what JSON cannot hold, with a
   * warning; one that cannot be written at all is skipped with a warning:
   * neither stops the others.
   */
  private save(): Promise<void> {
    const store = this.stateStore;
    if (!store) return Promise.resolve();
    this.putRegistrations(store);
    for (const endpoint of this.changedBindings) {
      const identity = this.bindings.get(endpoint);
      if (identity) store.put('bindings', endpoint, JSON.stringify(identity));
      else store.delete('bindings', endpoint);
    }
    this.changedBindings.clear();
    const shared = this.cluster !== undefined;
    this.syncCollection(
      store,
      'observations',
      new Map(this.observations.persisted().map((observation) => [observation.token, observation])),
      (token) => `the observation ${token}`,
      // In a shared store an observation lasts as long as its device's registration (see putRegistrations).
      shared ? (observation) => this.expiryOf(observation.endpoint) : undefined,
      shared ? (observation) => ({ group: observation.endpoint }) : undefined,
    );
    this.syncCollection(store, 'parked', this.parked, (id, request) => `the request ${id} waiting for ${request.endpoint}`, (request) => request.deadline, shared ? (request) => ({ group: request.endpoint }) : undefined);
    for (const { collection, id, json, expiresAt, endpoint } of this.serviceChanges.values()) {
      const links = shared && endpoint !== undefined ? { group: endpoint } : undefined;
      if (json === undefined) store.delete(collection, id, links);
      else store.put(collection, id, json, expiresAt, links);
    }
    this.serviceChanges.clear();
    this.saveDtls(store);
    return this.flush(store);
  }

  /** Saves run one after the other, so an older state never lands after a newer one. */
  private flush(store: StateStore): Promise<void> {
    this.saving = this.saving
      .then(() => store.flush())
      .catch((error: Error) => {
        this.emit('warning', new Error(`state not saved: ${error.message}`));
      });
    return this.saving;
  }

  /**
   * The registrations that changed. In a shared store each comes with its
   * aliases (registration id, address) and its device's group, and its
   * observations' expiry moves with it; this instance claims new ones and
   * lets go of those gone.
   */
  private putRegistrations(store: StateStore): void {
    const cluster = this.cluster;
    for (const endpoint of this.changedRegistrations) {
      const registration = this.registrations.getByEndpoint(endpoint);
      // A plain-UDP device whose address answered the server is saved with "verified": it needs no ping after a restart.
      const saved = registration?.transport === 'udp' && this.coap.plain?.isVerified(registration) ? { ...registration, verified: true } : registration;
      const json = registration && this.entryText(saved, () => `the registration of ${endpoint}`);
      if (registration && json !== undefined) {
        const expiry = expiresAt(registration);
        store.put('registrations', endpoint, json, expiry, cluster && linksOf(registration));
        if (!cluster) continue;
        cluster.store.expireGroup(endpoint, expiry);
        if (this.claimed.delete(endpoint)) cluster.bus.claim(endpoint, expiry).catch(() => undefined);
        else cluster.bus.touch(endpoint, expiry);
        for (const observation of this.observations.list(endpoint)) {
          const saved = this.stored.observations.get(observation.tokenKey);
          if (saved !== undefined) store.put('observations', observation.tokenKey, saved, expiry, { group: endpoint });
        }
        continue;
      }
      const gone = this.goneRegistrations.get(endpoint);
      store.delete('registrations', endpoint, gone && cluster && linksOf(gone));
      if (gone && cluster) cluster.bus.release(endpoint);
    }
    this.changedRegistrations.clear();
    this.goneRegistrations.clear();
    this.claimed.clear();
  }

  /** When a device's registration (and so its state in a shared store) runs out; now when it has none. */
  private expiryOf(endpoint: string): number {
    const registration = this.registrations.getByEndpoint(endpoint);
    return registration ? expiresAt(registration) : Date.now();
  }

  /** Puts the entries that are new or changed since the last save and deletes those gone. */
  private syncCollection<T>(
    store: StateStore,
    collection: 'observations' | 'parked',
    entries: Map<string, T>,
    describe: (id: string, value: T) => string,
    expiry?: (value: T) => number,
    links?: (value: T) => EntryLinks,
  ): void {
    const stored = this.stored[collection];
    const storedLinks = this.storedLinks[collection];
    for (const [id, value] of entries) {
      const dropped: string[] = [];
      let json: string;
      try {
        json = entryJson(value, dropped);
      } catch (error) {
        this.emit('warning', new Error(`${describe(id, value)} not saved: ${(error as Error).message}`));
        continue;
      }
      if (json === stored.get(id)) continue;
      if (dropped.length > 0) this.emit('warning', new Error(`${describe(id, value)}: ${dropped.join(', ')} cannot be kept across a restart and is left out`));
      const entryLinks = links?.(value);
      store.put(collection, id, json, expiry?.(value), entryLinks);
      stored.set(id, json);
      if (entryLinks) storedLinks.set(id, entryLinks);
    }
    for (const id of stored.keys()) {
      if (entries.has(id)) continue;
      stored.delete(id);
      store.delete(collection, id, storedLinks.get(id));
      storedLinks.delete(id);
    }
  }

  /** An entry's JSON, or undefined (with a warning) when it cannot be written at all. */
  private entryText(value: unknown, describe: () => string): string | undefined {
    const dropped: string[] = [];
    try {
      const json = entryJson(value, dropped);
      if (dropped.length > 0) this.emit('warning', new Error(`${describe()}: ${dropped.join(', ')} cannot be kept across a restart and is left out`));
      return json;
    } catch (error) {
      this.emit('warning', new Error(`${describe()} not saved: ${(error as Error).message}`));
      return undefined;
    }
  }

  /** Puts one entry now (a shared store's write-through), with a warning if it cannot be written. */
  private putEntry(store: StateStore, collection: CollectionName, id: string, value: unknown, expiry: number | undefined, links: EntryLinks): string | undefined {
    const json = this.entryText(value, () => `${collection} ${id}`);
    if (json !== undefined) store.put(collection, id, json, expiry, links);
    return json;
  }

  /** DTLS sessions and connections that changed, sealed under the state key. */
  private saveDtls(store: StateStore): void {
    const dtls = this.coap.dtls;
    const key = this.stateKey;
    if (!dtls || !key) return;
    const changes = dtls.takeChanges();
    const shared = this.cluster !== undefined;
    const seal = (collection: 'dtlsSessions' | 'dtlsConnections', id: string, value: SessionJson | ConnectionJson, expiresAt: number, links?: EntryLinks) =>
      store.put(collection, id, sealText(key, collection, id, JSON.stringify(value)), expiresAt, links);
    for (const session of changes.sessions) {
      seal('dtlsSessions', session.id.toString('hex'), sessionToJson(session), session.createdAt + dtls.sessionLifetimeMs);
    }
    for (const id of changes.removedSessions) store.delete('dtlsSessions', id);
    for (const { id, record } of changes.connections) {
      // Another instance finds a connection by its client's address or its connection id.
      const aliases = shared ? [`dtlsPeer:${record.peer.address}:${record.peer.port}`, ...(record.cid ? [`dtlsCid:${record.cid.toString('hex')}`] : [])] : undefined;
      seal('dtlsConnections', id, connectionToJson(record), record.lastActivity + dtls.idleTimeoutMs, aliases && { aliases });
    }
    for (const id of changes.removedConnections) store.delete('dtlsConnections', id);
  }

  /** Writes what a shared store's batch holds, once for what happened in this turn of the event loop. */
  private flushSoon(): Promise<void> {
    const store = this.stateStore;
    if (!store) return Promise.resolve();
    return (this.flushing ??= new Promise<void>((resolve) => {
      setImmediate(() => {
        this.flushing = undefined;
        this.flush(store).then(resolve);
      });
    }));
  }

  /** New DTLS sessions, written at once (with a shared store). */
  private saveDtlsSoon(): void {
    if (this.dtlsSoon) return;
    this.dtlsSoon = true;
    setImmediate(() => {
      this.dtlsSoon = false;
      if (this.stateStore) this.saveDtls(this.stateStore);
      void this.flushSoon();
    });
  }

  private restore(state: StoredState): void {
    const now = Date.now();
    const entries = <T>(collection: CollectionName): [string, T][] => {
      const list: [string, T][] = [];
      for (const [id, entry] of entriesOf(state, collection)) {
        try {
          list.push([id, parseEntry<T>(entry.json)]);
        } catch (error) {
          this.emit('warning', new Error(`${collection} ${id} not restored: ${(error as Error).message}`));
        }
      }
      return list;
    };
    for (const [, registration] of entries<SavedRegistration>('registrations')) {
      // Lifetimes kept counting while the server was down.
      if (expiresAt(registration) <= now && registration.lifetime <= this.maxLifetime) continue;
      if (registration.lifetime > this.maxLifetime) {
        // Saved before the limit existed, or under a higher one: shortened, and saved so.
        registration.lifetime = this.maxLifetime;
        this.changedRegistrations.add(registration.endpoint);
        if (expiresAt(registration) <= now) continue;
      }
      this.addSaved(registration);
    }
    this.bindings.restore(entries<PeerIdentity>('bindings').map(([endpoint, identity]) => ({ endpoint, identity })));
    const observations = entries<PersistedObservation>('observations');
    for (const problem of this.observations.restore(observations.map(([, observation]) => observation))) this.emit('warning', new Error(`not restored: ${problem}`));
    for (const [token, entry] of entriesOf(state, 'observations')) this.stored.observations.set(token, entry.json);
    for (const [id, request] of entries<ParkedRequest>('parked')) {
      this.stored.parked.set(id, entriesOf(state, 'parked').get(id)?.json as string);
      if (request.deadline > now && this.registrations.getByEndpoint(request.endpoint)) this.parked.set(id, request);
    }
    this.restoreDtls(state);
    this.restoredServiceState = state;
  }

  /** A saved registration back in memory, asleep until the device talks, with its verified address and its name's binding. */
  private addSaved(saved: SavedRegistration): Registration {
    const { verified, ...registration } = saved;
    // State saved before the field existed.
    registration.lastSeen ??= registration.lastUpdate;
    this.registrations.add(registration);
    this.presence.asleep(registration);
    if (verified && registration.transport === 'udp') this.coap.plain?.markVerified(registration);
    if (registration.identity) this.bindings.bind(registration.endpoint, registration.identity);
    return registration;
  }

  /** Opens the sealed DTLS sessions and connections and hands them to the DTLS server; ones sealed under another key are dropped. */
  private restoreDtls(state: StoredState): void {
    const dtls = this.coap.dtls;
    const key = this.stateKey;
    if (!dtls || !key) return;
    let unreadable = 0;
    const open = <T>(collection: 'dtlsSessions' | 'dtlsConnections', parse: (json: T) => unknown): [string, ReturnType<typeof parse>][] => {
      const list: [string, unknown][] = [];
      for (const [id, entry] of entriesOf(state, collection)) {
        try {
          list.push([id, parse(JSON.parse(openText(key, collection, id, entry.json)) as T)]);
        } catch {
          unreadable++;
          this.stateStore?.delete(collection, id);
        }
      }
      return list;
    };
    const sessions = open<SessionJson>('dtlsSessions', sessionFromJson).map(([, session]) => session as DtlsSession);
    const records = open<ConnectionJson>('dtlsConnections', connectionFromJson).map(([id, record]) => ({ id, record: record as ConnectionRecord }));
    dtls.restore(sessions, records);
    if (unreadable > 0) this.emit('warning', new Error(`${unreadable} saved DTLS sessions could not be opened (the state key changed): their devices handshake again`));
  }

  /**
   * Sends an operation to a registered device; rejects with
   * DeviceRequestError. In a cluster, a device another instance serves is
   * reached through it.
   */
  send<R>(endpoint: string, request: DeviceRequest<R>, options: SendOptions = {}): Promise<R & ResponseBase> {
    // Until the saved state is back, the device may just not be known yet.
    if (!this.isReady) return this.ready.then(() => this.send(endpoint, request, options));
    if (this.cluster && !this.registrations.getByEndpoint(endpoint)) return this.cluster.send(endpoint, request, options);
    return this.client.send(endpoint, request, options);
  }

  /** Requests for a device that are running or waiting (for its turn, or for a sleeping device to wake up). */
  pendingRequests(endpoint: string): number {
    return this.client.pending(endpoint);
  }

  /**
   * The object model as a device sees it: the object versions its Register
   * announced (or its LwM2M version implies), by registration or endpoint
   * name; the newest versions for a device that is not registered. Shared
   * between devices, never a copy per device.
   */
  modelFor(device: Registration | string | undefined): ObjectModel {
    const registration = typeof device === 'string' ? this.registrations.getByEndpoint(device) : device;
    return registration ? this.model.forDevice(registration) : this.model;
  }

  /**
   * Starts an observation; see ObservationService.observe. In a cluster, the
   * observation of a device another instance serves is made there, for the
   * same node, whose copy there delivers the notifications; it is in the
   * store before this resolves.
   */
  observe(
    endpoint: string,
    request: ObserveKind,
    listener: ObservationListener,
    options?: SendOptions,
    owner?: string,
  ): Promise<{ observation: Observation; first: NotificationEvent; established: boolean }> {
    if (this.cluster) {
      if (!this.registrations.getByEndpoint(endpoint)) return this.cluster.observe(endpoint, request, options ?? {}, owner);
      return this.observeHere(endpoint, request, listener, options ?? {}, owner);
    }
    const result = this.observations.observe(endpoint, request, listener, options, owner);
    result.then(() => this.scheduleSave(), () => undefined);
    return result;
  }

  private async observeHere(
    endpoint: string,
    request: ObserveKind,
    listener: ObservationListener,
    options: SendOptions,
    owner: string | undefined,
  ): Promise<{ observation: Observation; first: NotificationEvent; established: boolean }> {
    const result = await this.observations.observe(endpoint, request, listener, options, owner);
    const store = this.stateStore;
    if (result.established && store) {
      const [persisted] = this.observations.persisted(endpoint).filter((entry) => entry.token === result.observation.tokenKey);
      const json = persisted && this.putEntry(store, 'observations', persisted.token, persisted, this.expiryOf(endpoint), { group: endpoint });
      if (json !== undefined) {
        this.stored.observations.set(persisted.token, json);
        this.storedLinks.observations.set(persisted.token, { group: endpoint });
      }
      await this.flushSoon();
    }
    return result;
  }

  /**
   * Ends a node's observations of a device (of the paths, "a,b", or all),
   * actively at the device; in a cluster wherever the device is served.
   * Resolves with how many there were.
   */
  cancelObservations(owner: string, endpoint: string, paths: string | undefined, timeoutMs: number): Promise<number> {
    if (this.cluster && !this.registrations.getByEndpoint(endpoint)) return this.cluster.cancel(owner, endpoint, paths, timeoutMs);
    return this.cancelHere(owner, endpoint, paths, timeoutMs);
  }

  private async cancelHere(owner: string, endpoint: string, paths: string | undefined, timeoutMs: number): Promise<number> {
    const matching = this.observations.list(endpoint).filter((observation) => observation.owner === owner && (paths === undefined || observation.paths.join(',') === paths));
    await Promise.all(matching.map((observation) => this.observations.cancel(observation, { timeoutMs })));
    if (matching.length > 0) this.scheduleSave();
    return matching.length;
  }

  /**
   * Saves the state and closes the sockets. DTLS sessions stay open on the
   * devices' side (no close_notify) when they are kept for the next start;
   * with `forget` (the server is deleted) they are closed and the store is
   * emptied.
   */
  async stop(options: { forget?: boolean } = {}): Promise<void> {
    this.emit('stopping');
    clearTimeout(this.saveTimer);
    clearInterval(this.dtlsSaveCheck);
    this.saveTimer = undefined;
    this.cluster?.stop();
    this.park(this.client.detach());
    if (options.forget) await this.stateStore?.destroy();
    else await this.save();
    if (!options.forget && this.stateStore && this.stateKey) this.coap.dtls?.keepSessions();
    this.observations.clear();
    this.presence.clear();
    this.registrations.clear();
    await this.coap.stop();
  }

  /** A DTLS connection id carried a device to a new address: requests and notifications follow it there. */
  private followDtlsPeer(from: Peer, to: Peer): void {
    const registration = this.registrations.getByPeer('dtls', from.address, from.port);
    if (!registration) return;
    this.registrations.move(registration, to.address, to.port);
    this.observations.onMoved(registration, from);
    this.emit('updated', registration, ['address']);
  }

  /**
   * A device connected over TCP or TLS. Its registration follows it to the
   * new connection when it is found by address (a reconnection from the same
   * port) or by its TLS identity (bound to its endpoint name), so requests
   * reach it before its next Update; its observations are made again there.
   * A plain TCP device on a new port is found by its next Update.
   */
  private streamConnected(transport: Transport, peer: Peer, identity: PeerIdentity | undefined): void {
    let registration = this.registrations.getByPeer(transport, peer.address, peer.port);
    // Another device may have the address now (a NAT reusing the port): over TLS only the registration's own identity counts.
    if (registration && identityKey(registration.identity) !== identityKey(identity)) registration = undefined;
    if (!registration && identity) {
      const endpoint = this.security.endpointOf(identity);
      const bound = endpoint === undefined ? undefined : this.registrations.getByEndpoint(endpoint);
      if (bound?.transport === transport && identityKey(bound.identity) === identityKey(identity)) {
        registration = bound;
        this.registrations.move(bound, peer.address, peer.port);
        this.emit('updated', bound, ['address']);
      }
    }
    if (!registration) return;
    this.presence.seen(registration);
    this.observations.onReconnected(registration);
  }

  /** A device's TCP or TLS connection closed: its registration stays, its requests fail with no-connection until it reconnects. */
  private streamDisconnected(transport: Transport, peer: Peer): void {
    const registration = this.registrations.getByPeer(transport, peer.address, peer.port);
    if (registration) this.observations.onDisconnected(registration);
  }

  private gone(registration: Registration, reason: string): void {
    this.observations.onGone(registration, reason);
    this.presence.forget(registration.endpoint);
  }

  private handle(request: IncomingRequest, transport: Transport): ReturnType<TransportHandler> {
    const cluster = this.cluster;
    if (!cluster) return this.handleHere(request, transport);
    // A device this instance does not know is taken over first; a registration change is in the store before it is answered.
    const before = cluster.beforeRequest(request, transport);
    if (before) return before.then(() => this.handleWrittenThrough(request, transport));
    return this.handleWrittenThrough(request, transport);
  }

  private handleHere(request: IncomingRequest, transport: Transport): ReturnType<TransportHandler> {
    const response = this.registrationInterface.handle(request, transport) ?? this.sendInterface.handle(request, transport);
    if (response) return response;
    for (const resource of this.resources) {
      const answer = resource(request, transport);
      if (answer) return answer;
    }
    return diagnostic(ResponseCode.NotFound, `no resource ${request.path}`);
  }

  private handleWrittenThrough(request: IncomingRequest, transport: Transport): ReturnType<TransportHandler> {
    const response = this.handleHere(request, transport);
    if (this.changedRegistrations.size === 0 || !this.stateStore) return response;
    const store = this.stateStore;
    this.putRegistrations(store);
    return this.flushSoon().then(() => response);
  }

  /** The listeners of a server with a shared store: what matches nothing here is looked up there (see ServerCluster). */
  private clusterListeners(options: Lwm2mServerOptions): ListenerOptions {
    const secure = options.secure;
    return {
      ...options,
      unmatchedOn: (transport, peer, message, retry) => this.cluster?.unmatched(transport, peer, message, retry) ?? false,
      secure: secure && { ...secure, dtls: { ...secure.dtls, lookup: (peer, cid) => this.cluster?.lookupDtls(peer, cid) ?? Promise.resolve() } },
    };
  }

  /** What the cluster sees of this server. */
  private clusterHost(): ClusterHost {
    const server = this;
    return {
      registrations: this.registrations,
      observations: this.observations,
      presence: this.presence,
      client: this.client,
      dtls: this.coap.dtls,
      stateKey: this.stateKey,
      model: (registration) => this.modelFor(registration),
      adoptRegistration: (saved) => this.addSaved(saved),
      bindingFound: (endpoint, identity) => this.bindings.bind(endpoint, identity),
      adoptEntries: (registration, entries) => {
        const services: [ServiceCollection, string, unknown][] = [];
        for (const { collection, id, json } of entries) {
          try {
            services.push([collection as ServiceCollection, id, parseEntry(json)]);
          } catch (error) {
            this.emit('warning', new Error(`${collection} ${id} of ${registration.endpoint} not taken over: ${(error as Error).message}`));
          }
        }
        if (services.length > 0) this.emit('adopted', registration, services);
      },
      adoptParked: (requests) => {
        if (requests.length === 0) return;
        for (const [id, request] of requests) {
          this.parked.set(id, request);
          this.stored.parked.set(id, entryJson(request, []));
          this.storedLinks.parked.set(id, { group: request.endpoint });
        }
        this.emit('parked', [...new Set(requests.map(([, request]) => request.owner))]);
      },
      handOver: (endpoint, to) => this.handOver(endpoint, to),
      moved: (registration, to) => {
        const from = { address: registration.address, port: registration.port };
        this.registrations.move(registration, to.address, to.port);
        this.observations.onMoved(registration, from);
        this.emit('updated', registration, ['address']);
      },
      saveDtlsNow: () => {
        if (!this.stateStore) return Promise.resolve();
        this.saveDtls(this.stateStore);
        return this.flushSoon();
      },
      observeHere: async (endpoint, request, owner, options) => {
        const result = await this.observeHere(endpoint, request, this.observations.listenerOf(owner), options, owner);
        if (result.established) this.observations.handOver(result.observation);
        return result;
      },
      cancelHere: (owner, endpoint, paths, timeoutMs) => this.cancelHere(owner, endpoint, paths, timeoutMs),
      resync: () => {
        for (const registration of this.registrations.all()) {
          this.changedRegistrations.add(registration.endpoint);
          this.claimed.add(registration.endpoint);
        }
        this.stored.observations.clear();
        this.stored.parked.clear();
        this.coap.dtls?.markUnsaved();
        void this.save();
      },
      warn: (error) => this.emit('warning', error),
      storeProblem: (problem) => {
        if (problem === server.storeProblem) return;
        server.storeProblem = problem;
        this.emit('storeProblem', problem);
      },
    };
  }

  /**
   * Lets go of a device another instance takes over, without a word to the
   * device: its registration, observations and waiting requests go to that
   * instance (and stay in the store, which this instance no longer writes
   * for it); its DTLS connection is released there. Resolves once what the
   * services kept of it on the released event is in the store.
   */
  private async handOver(endpoint: string, to: string): Promise<Handover | undefined> {
    const registration = this.registrations.getByEndpoint(endpoint);
    if (!registration) return undefined;
    const parked = this.client.detach({ endpoint });
    for (const [id, request] of this.parked) {
      if (request.endpoint !== endpoint) continue;
      parked.push([id, request]);
      this.parked.delete(id);
      this.stored.parked.delete(id);
      this.storedLinks.parked.delete(id);
    }
    const observations = this.observations.persisted(endpoint);
    for (const observation of observations) {
      this.stored.observations.delete(observation.token);
      this.storedLinks.observations.delete(observation.token);
    }
    this.observations.release(endpoint, `served by ${to} now`);
    this.changedRegistrations.delete(endpoint);
    this.claimed.delete(endpoint);
    this.registrations.remove(registration);
    this.presence.forget(endpoint);
    if (registration.transport === 'dtls') this.coap.dtls?.release(registration);
    this.emit('released', registration);
    await this.save();
    return { registration, observations, parked };
  }
}

/** How a shared store finds a registration: by its id and its device's address; with its device's other entries. */
function linksOf(registration: Registration): EntryLinks {
  return { group: registration.endpoint, aliases: [`rid:${registration.id}`, peerAlias(registration.transport, registration.address, registration.port)] };
}
