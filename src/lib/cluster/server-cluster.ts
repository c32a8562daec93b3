import { MessageType, Method, OptionNumber, ResponseCode } from '../coap/codes';
import { CoapRequestError } from '../coap/errors';
import type { IncomingRequest } from '../coap/endpoint';
import type { CoapMessage } from '../coap/message';
import { uintOptionOf } from '../coap/options';
import type { Peer } from '../coap/peer';
import { ContentError } from '../content/values';
import { connectionFromJson, ConnectionJson } from '../dtls/session';
import type { PeerIdentity } from '../dtls/credentials';
import type { DtlsServer } from '../dtls/dtls-server';
import { Lwm2mPath } from '../model/path';
import type { ObjectModel } from '../model/object-model';
import { DeviceClient, DeviceRequestError, SendOptions, answer } from '../lwm2m/device-client';
import { NotificationEvent, Observation, ObservationListener, ObservationService, ObserveKind } from '../lwm2m/observations';
import type { PresenceTracker } from '../lwm2m/presence';
import type { RedisStateStore } from '../lwm2m/redis-store';
import type { FoundEntry } from '../lwm2m/state';
import { Registration, Transport, expiresAt } from '../lwm2m/registration';
import type { RegistrationStore } from '../lwm2m/registration-store';
import type { CoapRequestSpec, DeviceRequest, ResponseBase } from '../lwm2m/requests/device-request';
import { ObserveCompositeRequest, ObserveRequest } from '../lwm2m/requests/observe';
import { identityKey } from '../lwm2m/security';
import { ParkedRequest, PersistedObservation, openText, parseEntry } from '../lwm2m/state';
import { ClusterBus, ErrorJson, NoAnswerError } from './cluster-bus';
import { RedisUnavailableError } from './redis-link';

/** What a server shows the cluster of itself (see Lwm2mServer). */
export interface ClusterHost {
  readonly registrations: RegistrationStore;
  readonly observations: ObservationService;
  readonly presence: PresenceTracker;
  readonly client: DeviceClient;
  readonly dtls: DtlsServer | undefined;
  readonly stateKey: Buffer | undefined;
  /** The object model as a device sees it. */
  model(registration: Registration): ObjectModel;
  /** A registration taken over: back in memory with what was saved beside it (its verified address, the identity its name is bound to). */
  adoptRegistration(saved: Registration): Registration;
  /** The DTLS or TLS identity an endpoint name is bound to, as another instance saved it. */
  bindingFound(endpoint: string, identity: PeerIdentity): void;
  /** Requests that waited for a device at its previous instance, handed to their nodes here. */
  adoptParked(requests: [string, ParkedRequest][]): void;
  /** The services' entries kept beside a device taken over (a firmware campaign's place for it), for the services here. */
  adoptEntries(registration: Registration, entries: FoundEntry[]): void;
  /** Lets go of a device another instance takes over: what it held of it, for that instance, once the store has the services' entries of it. */
  handOver(endpoint: string, to: string): Promise<Handover | undefined>;
  /** The device now talks from another address: its registration and observations follow. */
  moved(registration: Registration, from: Peer): void;
  /** Writes the DTLS changes now and resolves once they are written (a connection taken over reserves its sequence numbers first). */
  saveDtlsNow(): Promise<void>;
  observeHere(endpoint: string, request: ObserveKind, owner: string | undefined, options: SendOptions): Promise<{ observation: Observation; first: NotificationEvent; established: boolean }>;
  cancelHere(owner: string, endpoint: string, paths: string | undefined, timeoutMs: number): Promise<number>;
  /** The store lost what it had (Redis came back): everything this instance holds is written again. */
  resync(): void;
  warn(error: Error): void;
  /** Why the store cannot be used, or undefined when it can again. */
  storeProblem(problem: string | undefined): void;
}

/** What an instance hands over with a device: the live registration, its observations and the requests waiting for it. */
export interface Handover {
  registration: Registration;
  observations: PersistedObservation[];
  parked: [string, ParkedRequest][];
}

/** A request spec as it travels (the path as text). */
interface SpecJson extends Omit<CoapRequestSpec, 'path'> {
  path: string;
}

type Call =
  | { op: 'drop'; endpoint: string }
  | { op: 'send'; endpoint: string; operation: string; spec: SpecJson; timeoutMs?: number; ttlMs?: number; hops: number }
  | { op: 'observe'; endpoint: string; owner?: string; paths: string[]; composite: boolean; format?: number; attributes?: unknown; timeoutMs?: number; hops: number }
  | { op: 'cancel'; endpoint: string; owner: string; paths?: string; timeoutMs: number; hops: number };

/** What the owner answers to an observe call: the first response, and the observation's id there. */
interface ObserveAnswer {
  id: string;
  established: boolean;
  code: number;
  options: CoapMessage['options'];
  payload: Buffer;
  sequence?: number;
}

/**
 * How long an instance has to hand a device over before the taker reads it
 * from the store instead: a live one answers in a round trip; one that was
 * just killed may still look subscribed for a moment.
 */
const HANDOVER_TIMEOUT_MS = 500;
/** Added to a routed request's own time, for the trips through Redis. */
const ROUTE_MARGIN_MS = 2000;
/** A call goes on from an instance that no longer owns the device to the one that does, once. */
const MAX_HOPS = 1;
/** Tokens of notifications the store did not know, not looked up again for a while. */
const UNKNOWN_TOKENS = 10_000;
const UNKNOWN_TOKEN_MS = 30_000;
/** Look-ups in Redis for datagrams of unknown devices at once, at most: a flood of forged ones costs Redis no more. */
const MAX_LOOKUPS = 500;
/** A device's own entries in its group; the others are services' (firmware campaigns). */
const DEVICE_COLLECTIONS = new Set(['registrations', 'observations', 'parked']);

/**
 * One server's part in a cluster of Node-RED instances that share a Redis
 * store: the instance that last heard from a device owns it and serves it
 * from memory; a datagram from a device it does not know makes it take the
 * device over from the store (or from its previous instance, which hands over
 * what it held), and a flow's request for a device another instance owns goes
 * there and its answer comes back.
 */
export class ServerCluster {
  readonly bus: ClusterBus;
  private readonly adopting = new Map<string, Promise<Registration | undefined>>();
  private readonly unknownTokens = new Map<string, number>();
  private subscribed = false;
  private lastWriteWarning = 0;
  private lookups = 0;

  constructor(
    private readonly host: ClusterHost,
    readonly store: RedisStateStore,
    readonly instance: string,
  ) {
    this.bus = new ClusterBus(store.link, store.prefix, instance, errorToJson, errorFromJson);
    this.bus.onCall((body, from) => this.serve(body as Call, from));
    store.on('resync', () => host.resync());
    store.on('writeFailed', (error) => {
      if (Date.now() - this.lastWriteWarning < 60_000) return;
      this.lastWriteWarning = Date.now();
      host.warn(new Error(`Redis refused a write (${error.message}): written again when Redis next reconnects`));
    });
    store.link.on('down', (reason) => host.storeProblem(`Redis unreachable: ${reason}`));
    store.link.on('up', () => {
      host.storeProblem(undefined);
      this.subscribe();
    });
  }

  /** Connects in the background: the server serves its sockets meanwhile, its status saying Redis is not there yet. */
  start(): void {
    this.host.storeProblem('Redis: connecting');
    this.store.link.open().then(
      () => this.subscribe(),
      (error: Error) => this.host.storeProblem(`Redis unreachable: ${error.message}`),
    );
  }

  stop(): void {
    this.bus.stop();
  }

  private subscribe(): void {
    if (this.subscribed) return;
    this.subscribed = true;
    this.bus.start().catch((error: Error) => {
      this.subscribed = false;
      this.host.warn(new Error(`cluster channel not subscribed: ${error.message}`));
    });
  }

  /**
   * Before the server handles a request from a device it does not know:
   * takes the device over when the store knows it (a Register of a known
   * endpoint, an Update or De-register of a registration id, a Send from a
   * registered address). Undefined when there is nothing to look up.
   */
  beforeRequest(request: IncomingRequest, transport: Transport): Promise<unknown> | undefined {
    const path = request.path;
    const { registrations } = this.host;
    if (path === '/rd' && request.method === Method.POST) {
      const query = request.queries.find((text) => text.startsWith('ep='));
      const endpoint = query?.slice(3);
      if (!endpoint || registrations.getByEndpoint(endpoint) || !this.store.link.isUp) return undefined;
      // A Register goes on without the old registration if the store fails (it makes a new one anyway), never without the name's binding.
      return Promise.all([this.adopt(endpoint).catch(() => undefined), this.lookUpBinding(endpoint)]);
    }
    let alias: string | undefined;
    let fits: (registration: Registration) => boolean = () => true;
    if (path.startsWith('/rd/')) {
      const id = path.slice(4);
      if (registrations.getById(id)) return undefined;
      alias = `rid:${id}`;
      fits = (registration) => registration.id === id;
    } else if (path === '/dp') {
      const { address, port } = request.peer;
      if (registrations.getByPeer(transport, address, port)) return undefined;
      alias = peerAlias(transport, address, port);
      fits = (registration) => registration.transport === transport && registration.address === address && registration.port === port;
    } else return undefined;
    if (!this.store.link.isUp) {
      return Promise.reject(new CoapRequestError(ResponseCode.ServiceUnavailable, `this server's state store is unreachable (${this.store.link.downReason}): try again later`));
    }
    const lookup = this.limited(() => this.adoptByAlias(alias as string, fits));
    if (!lookup) return Promise.reject(new CoapRequestError(ResponseCode.ServiceUnavailable, 'too many unknown devices at once: try again later'));
    return lookup.catch((error: Error) => {
      throw new CoapRequestError(ResponseCode.ServiceUnavailable, `this server's state store failed: ${error.message}`);
    });
  }

  /** The identity another instance bound the endpoint name to, so that no other identity registers under it here. */
  private async lookUpBinding(endpoint: string): Promise<void> {
    let json: string | undefined;
    try {
      json = await this.store.get('bindings', endpoint);
    } catch (error) {
      throw new CoapRequestError(ResponseCode.ServiceUnavailable, `this server's state store failed: ${(error as Error).message}`);
    }
    if (json === undefined) return;
    try {
      this.host.bindingFound(endpoint, JSON.parse(json) as PeerIdentity);
    } catch {
      this.host.warn(new Error(`the binding of ${endpoint} in the store is not JSON`));
    }
  }

  /** Runs a look-up unless MAX_LOOKUPS are running (then undefined). */
  private limited<T>(lookup: () => Promise<T>): Promise<T> | undefined {
    if (this.lookups >= MAX_LOOKUPS) return undefined;
    this.lookups++;
    return lookup().finally(() => this.lookups--);
  }

  /** A notification whose token this instance does not know: perhaps an observation another instance made. */
  unmatched(transport: Transport, peer: Peer, message: CoapMessage, retry: () => void): boolean {
    const token = message.token.toString('hex');
    if (token.length === 0) return false;
    const known = this.unknownTokens.get(token);
    if (known !== undefined && known > Date.now()) return false;
    // While the store is away (or too busy with unknown devices) nothing is reset: the observation may well be ours.
    const lookup = this.store.link.isUp ? this.limited(() => this.takeOverObservation(transport, peer, token)) : undefined;
    if (!lookup) return true;
    lookup.then(
      (found) => {
        if (!found) {
          if (this.unknownTokens.size >= UNKNOWN_TOKENS) this.unknownTokens.clear();
          this.unknownTokens.set(token, Date.now() + UNKNOWN_TOKEN_MS);
        }
        retry();
      },
      () => undefined,
    );
    return true;
  }

  private async takeOverObservation(transport: Transport, peer: Peer, token: string): Promise<boolean> {
    const json = await this.store.get('observations', token);
    if (json === undefined) return false;
    const saved = parseEntry<PersistedObservation>(json);
    if ((saved.transport ?? 'udp') !== transport) return false;
    const registration = this.host.registrations.getByEndpoint(saved.endpoint) ?? (await this.adopt(saved.endpoint));
    if (!registration) return false;
    if (registration.address === peer.address && registration.port === peer.port) return true;
    // From a new address (the balancer's, after a fail-over): over DTLS only under the registered identity.
    if (transport === 'dtls' && identityKey(this.host.dtls?.identityOf(peer)) !== identityKey(registration.identity)) return false;
    this.host.moved(registration, peer);
    return true;
  }

  /** A DTLS record from an address (or with a connection id) this instance has no connection for. */
  async lookupDtls(peer: Peer, cid: Buffer | undefined): Promise<void> {
    const { dtls, stateKey } = this.host;
    if (!dtls || !stateKey || !this.store.link.isUp) return;
    const found = await this.store.resolve(cid ? `dtlsCid:${cid.toString('hex')}` : `dtlsPeer:${peer.address}:${peer.port}`);
    if (!found || found.collection !== 'dtlsConnections') return;
    const record = connectionFromJson(JSON.parse(openText(stateKey, found.collection, found.id, found.json)) as ConnectionJson);
    if (!cid && (record.peer.address !== peer.address || record.peer.port !== peer.port)) return;
    if (dtls.restore([], [{ id: found.id, record }]).connections === 0) return;
    // Past anything the instance that had it may have sent: written before a record goes out under it.
    await this.host.saveDtlsNow();
  }

  /** The device's registration found under an alias, checked, then taken over. */
  private async adoptByAlias(alias: string, fits: (registration: Registration) => boolean): Promise<Registration | undefined> {
    const found = await this.store.resolve(alias);
    if (!found || found.collection !== 'registrations') return undefined;
    const registration = parseEntry<Registration>(found.json);
    if (!fits(registration)) return undefined;
    return this.adopt(registration.endpoint);
  }

  /**
   * Takes a device over: claims it, has its previous instance hand over what
   * it holds (or, when that one is gone, reads it from the store), and serves
   * it from here on. One take-over per device at a time.
   */
  adopt(endpoint: string): Promise<Registration | undefined> {
    let running = this.adopting.get(endpoint);
    if (!running) {
      running = this.takeOver(endpoint).finally(() => this.adopting.delete(endpoint));
      this.adopting.set(endpoint, running);
    }
    return running;
  }

  private async takeOver(endpoint: string): Promise<Registration | undefined> {
    const { host } = this;
    const local = host.registrations.getByEndpoint(endpoint);
    if (local) return local;
    const json = await this.store.get('registrations', endpoint);
    if (json === undefined) return undefined;
    const stored = parseEntry<Registration>(json);
    if (expiresAt(stored) <= Date.now()) return undefined;
    const previous = await this.bus.claim(endpoint, expiresAt(stored));
    let handover: Handover | undefined;
    if (previous !== undefined && previous !== this.instance) {
      handover = (await this.bus.call(previous, { op: 'drop', endpoint } satisfies Call, HANDOVER_TIMEOUT_MS).catch(() => undefined)) as Handover | undefined;
    }
    // Read after the hand-over: the previous instance has written the services' entries of the device by then.
    const group = await this.store.group(endpoint);
    const services = group.filter((entry) => !DEVICE_COLLECTIONS.has(entry.collection));
    let registration = handover?.registration;
    let observations = handover?.observations ?? [];
    let parked = handover?.parked ?? [];
    if (!registration) {
      registration = stored;
      observations = [];
      parked = [];
      for (const entry of group) {
        if (entry.collection === 'registrations') registration = parseEntry<Registration>(entry.json);
        else if (entry.collection === 'observations') observations.push(parseEntry<PersistedObservation>(entry.json));
        else if (entry.collection === 'parked') parked.push([entry.id, parseEntry<ParkedRequest>(entry.json)]);
      }
    }
    // A Register of the device may have got here meanwhile: it wins.
    const arrived = host.registrations.getByEndpoint(endpoint);
    if (arrived) return arrived;
    registration = host.adoptRegistration(registration);
    host.observations.restore(observations.filter((observation) => observation.endpoint === endpoint));
    const now = Date.now();
    host.adoptParked(parked.filter(([, request]) => request.deadline > now));
    if (registration.transport === 'dtls' && host.dtls && !host.dtls.identityOf(registration)) {
      await this.lookupDtls({ address: registration.address, port: registration.port }, undefined).catch(() => undefined);
    }
    host.adoptEntries(registration, services);
    return registration;
  }

  /** Sends a flow's request to a device this instance does not hold: through its owner, or here after taking it over when the owner is gone. */
  async send<R>(endpoint: string, request: DeviceRequest<R>, options: SendOptions): Promise<R & ResponseBase> {
    const describe = () => `${request.operation} ${request.path} on ${endpoint}`;
    const { registration, owner } = await this.locate(endpoint, describe);
    if (!owner) return this.host.client.send(endpoint, request, options);
    const context = { registration, model: this.host.model(registration) };
    let spec: CoapRequestSpec;
    try {
      spec = request.toCoap(context);
    } catch (error) {
      throw error instanceof ContentError ? new DeviceRequestError(`${describe()}: ${error.message}`, 'invalid-request') : error;
    }
    const call: Call = { op: 'send', endpoint, operation: request.operation, spec: { ...spec, path: spec.path.toString() }, timeoutMs: options.timeoutMs, ttlMs: options.ttlMs, hops: 0 };
    const message = (await this.route(owner, call, this.routeTimeout(registration, options), describe, () => this.host.client.send(endpoint, request, options))) as CoapMessage | R & ResponseBase;
    if (!isMessage(message)) return message;
    return answer(request, context, message, describe);
  }

  /** Starts an observation of a device this instance does not hold: at its owner, for the same node there (which delivers its notifications). */
  async observe(endpoint: string, request: ObserveKind, options: SendOptions, owner: string | undefined): Promise<{ observation: Observation; first: NotificationEvent; established: boolean }> {
    const describe = () => `${request.operation} ${request.path} on ${endpoint}`;
    const located = await this.locate(endpoint, describe);
    if (!located.owner) return this.host.observeHere(endpoint, request, owner, options);
    const composite = request instanceof ObserveCompositeRequest;
    const call: Call = {
      op: 'observe',
      endpoint,
      owner,
      paths: composite ? request.paths.map(String) : [request.path.toString()],
      composite,
      format: request.format,
      attributes: request.attributes,
      timeoutMs: options.timeoutMs,
      hops: 0,
    };
    const answered = (await this.route(located.owner, call, this.routeTimeout(located.registration, options), describe, () => this.host.observeHere(endpoint, request, owner, options))) as
      | ObserveAnswer
      | { observation: Observation; first: NotificationEvent; established: boolean };
    if ('observation' in answered) return answered;
    // A view of the observation the owner holds: same id, its notifications come out of the node there.
    const observation = new Observation(endpoint, request, NO_LISTENER, owner, NO_SINK, answered.id);
    const model = this.host.model(located.registration);
    const message: CoapMessage = { type: MessageType.Acknowledgement, code: answered.code, messageId: 0, token: Buffer.alloc(0), options: answered.options, payload: answered.payload };
    let records;
    try {
      records = request.fromCoap(message, { registration: located.registration, model }).records;
    } catch (error) {
      if (error instanceof ContentError) throw new DeviceRequestError(`${describe()}: ${error.message}`, 'invalid-response');
      throw error;
    }
    const contentFormat = answered.options.find((option) => option.number === OptionNumber.ContentFormat);
    return {
      observation,
      established: answered.established,
      first: {
        observation,
        records,
        model,
        code: formatCodeText(answered.code),
        contentFormat: contentFormat ? contentFormat.value.reduce((acc, byte) => acc * 256 + byte, 0) : undefined,
        raw: answered.payload,
        sequence: answered.sequence,
      },
    };
  }

  /** Cancels a node's observations of a device another instance holds; resolves with how many. */
  async cancel(owner: string, endpoint: string, paths: string | undefined, timeoutMs: number): Promise<number> {
    const describe = () => `cancel-observation on ${endpoint}`;
    const located = await this.locate(endpoint, describe).catch(() => undefined);
    if (!located) return 0;
    if (!located.owner) return this.host.cancelHere(owner, endpoint, paths, timeoutMs);
    const call: Call = { op: 'cancel', endpoint, owner, paths, timeoutMs, hops: 0 };
    return (await this.route(located.owner, call, timeoutMs + ROUTE_MARGIN_MS, describe, () => this.host.cancelHere(owner, endpoint, paths, timeoutMs))) as number;
  }

  /**
   * The device's registration in the store and the instance serving it;
   * owner undefined means this instance took it over and serves it now.
   */
  private async locate(endpoint: string, describe: () => string): Promise<{ registration: Registration; owner?: string }> {
    let json: string | undefined;
    let owner: string | undefined;
    try {
      [json, owner] = await Promise.all([this.store.get('registrations', endpoint), this.bus.ownerOf(endpoint)]);
    } catch (error) {
      throw unavailable(error as Error, describe);
    }
    const registration = json === undefined ? undefined : parseEntry<Registration>(json);
    if (!registration || expiresAt(registration) <= Date.now()) throw new DeviceRequestError(`${describe()}: device "${endpoint}" is not registered`, 'unknown-endpoint');
    if (owner !== undefined && owner !== this.instance) return { registration, owner };
    // Nobody serves it (its instance was stopped) or the store says we do: serve it here.
    const adopted = await this.adopt(endpoint).catch((error: Error) => {
      throw unavailable(error, describe);
    });
    if (!adopted) throw new DeviceRequestError(`${describe()}: device "${endpoint}" is not registered`, 'unknown-endpoint');
    return { registration: adopted };
  }

  /** Calls the owner; when it is gone, takes the device over and does it here (fallback). */
  private async route(owner: string, call: Call, timeoutMs: number, describe: () => string, fallback: () => Promise<unknown>): Promise<unknown> {
    try {
      return await this.bus.call(owner, call, timeoutMs);
    } catch (error) {
      if (error instanceof NoAnswerError && error.gone) {
        const adopted = await this.adopt(call.endpoint).catch(() => undefined);
        if (!adopted) throw new DeviceRequestError(`${describe()}: device "${call.endpoint}" is not registered`, 'unknown-endpoint');
        return fallback();
      }
      if (error instanceof NoAnswerError) throw new DeviceRequestError(`${describe()}: ${error.message}`, 'timeout');
      if (error instanceof RedisUnavailableError) throw unavailable(error, describe);
      throw error;
    }
  }

  private routeTimeout(registration: Registration, options: SendOptions): number {
    const wait = registration.queueMode ? (options.ttlMs ?? this.host.client.defaultTtlMs) : 0;
    return (options.timeoutMs ?? 10_000) + wait + ROUTE_MARGIN_MS;
  }

  /** A call from another instance. */
  private async serve(call: Call, from: string): Promise<unknown> {
    const { host } = this;
    const here = host.registrations.getByEndpoint(call.endpoint);
    switch (call.op) {
      case 'drop':
        return (await host.handOver(call.endpoint, from)) ?? null;
      case 'send': {
        const spec: CoapRequestSpec = { ...call.spec, path: Lwm2mPath.parse(call.spec.path) };
        const options = { timeoutMs: call.timeoutMs, ttlMs: call.ttlMs };
        if (here) return host.client.sendSpec(call.endpoint, call.operation, spec, options);
        return this.forward(call, () => host.client.sendSpec(call.endpoint, call.operation, spec, options));
      }
      case 'observe': {
        const paths = call.paths.map((path) => Lwm2mPath.parse(path));
        const request = call.composite ? new ObserveCompositeRequest(paths, call.format, call.attributes) : new ObserveRequest(paths[0], call.format, call.attributes);
        const observeHere = async (): Promise<ObserveAnswer> => {
          const { observation, first, established } = await host.observeHere(call.endpoint, request, call.owner, { timeoutMs: call.timeoutMs });
          const options = first.contentFormat === undefined ? [] : [uintOptionOf(OptionNumber.ContentFormat, first.contentFormat)];
          return { id: observation.id, established, code: codeNumber(first.code), options, payload: first.raw, sequence: first.sequence };
        };
        if (here) return observeHere();
        return this.forward(call, observeHere);
      }
      case 'cancel':
        if (here) return host.cancelHere(call.owner, call.endpoint, call.paths, call.timeoutMs);
        return this.forward(call, () => host.cancelHere(call.owner, call.endpoint, call.paths, call.timeoutMs));
    }
  }

  /** A call for a device that moved on from here: to its owner now (once), or here after taking it over. */
  private async forward(call: Exclude<Call, { op: 'drop' }>, here: () => Promise<unknown>): Promise<unknown> {
    const owner = await this.bus.ownerOf(call.endpoint);
    if (owner && owner !== this.instance && call.hops < MAX_HOPS) return this.bus.call(owner, { ...call, hops: call.hops + 1 }, (call.timeoutMs ?? 10_000) + ROUTE_MARGIN_MS);
    if (!(await this.adopt(call.endpoint))) throw new DeviceRequestError(`device "${call.endpoint}" is not registered`, 'unknown-endpoint');
    return here();
  }
}

/** The alias a registration is found by from its device's address (a Send, a notification). */
export function peerAlias(transport: Transport, address: string, port: number): string {
  return `peer:${transport}:${address}:${port}`;
}

function unavailable(error: Error, describe: () => string): Error {
  if (error instanceof DeviceRequestError) return error;
  return new DeviceRequestError(`${describe()}: this server's state store is unreachable, and the device is served by another instance (${error.message})`, 'unavailable');
}

function isMessage(value: unknown): value is CoapMessage {
  return typeof value === 'object' && value !== null && 'messageId' in value && 'payload' in value && 'code' in value && typeof (value as CoapMessage).code === 'number';
}

function codeNumber(code: string): number {
  const [major, minor] = code.split('.').map(Number);
  return (major << 5) | minor;
}

function formatCodeText(code: number): string {
  return `${code >> 5}.${String(code & 0x1f).padStart(2, '0')}`;
}

const NO_LISTENER: ObservationListener = { notify: () => undefined, error: () => undefined, ended: () => undefined };
const NO_SINK = { notified: () => undefined, refused: () => undefined };

function errorToJson(error: Error): ErrorJson {
  if (error instanceof DeviceRequestError) return { name: error.name, message: error.message, fields: { kind: error.kind, code: error.code, observe: error.observe } };
  return { name: error.name, message: error.message };
}

function errorFromJson(json: ErrorJson): Error {
  if (json.name === 'DeviceRequestError' && json.fields) {
    const { kind, code, observe } = json.fields as { kind: DeviceRequestError['kind']; code?: string; observe?: number };
    return new DeviceRequestError(json.message, kind, code, observe);
  }
  return new Error(json.message);
}
