import { OptionNumber, codeClass, formatCode } from '../coap/codes';
import type { CoapMessage } from '../coap/message';
import { findOption, decodeUint } from '../coap/options';
import type { NotificationHandler, Peer } from '../coap/peer';
import { randomText } from '../random-text';
import { ContentError, ContentRecord } from '../content/values';
import type { ObjectModel } from '../model/object-model';
import { hasMoreBlocks } from '../coap/block-transfer';
import { DeviceRequestError, EndpointFor, SendOptions } from './device-client';
import type { PresenceTracker } from './presence';
import { Registration, Transport, isStream } from './registration';
import type { RegistrationStore } from './registration-store';
import type { DeviceRequest, ResponseBase } from './requests/device-request';
import { CancelObservationRequest, ObserveCompositeRequest, ObserveRequest } from './requests/observe';
import { Lwm2mPath } from '../model/path';
import type { PersistedObservation } from './state';
import { contentFormatOf } from './requests/response-content';
import { touch } from '../coarse-clock';

export type ObserveKind = ObserveRequest | ObserveCompositeRequest;

/** One notification (or the first response) of an observation. */
export interface NotificationEvent {
  observation: Observation;
  records: ContentRecord[];
  /** The object model the values were typed by: the device's view (its object versions), for naming them. */
  model: ObjectModel;
  code: string;
  contentFormat?: number;
  raw: Buffer;
  /** The Observe sequence number, absent in the response that ends an observation. */
  sequence?: number;
}

export interface ObservationListener {
  notify(event: NotificationEvent): void;
  /** A notification that did not decode, or a re-observation that failed; the observation goes on where it can. */
  error(error: Error, observation: Observation): void;
  /** The observation is over: cancelled, refused by the device, or the device is gone. */
  ended(observation: Observation, reason: string): void;
  /** An observation of this listener's owner handed to it later than adopt(): taken over from another instance, or made for it there. */
  adopted?(observation: Observation): void;
}


type Sender = <R>(endpoint: string, request: DeviceRequest<R>, options?: SendOptions) => Promise<R & ResponseBase>;
/** Fetches the remaining blocks of a notification that came block-wise. */
type Completer = (endpoint: string, request: DeviceRequest<unknown>, first: CoapMessage) => Promise<CoapMessage>;

/** Notifications kept for an observation whose node is restarting. */
const PARKED_LIMIT = 100;

/** Keeps an observation's latest notifications while no node listens. */
class ParkedListener implements ObservationListener {
  private readonly events: NotificationEvent[] = [];

  notify(event: NotificationEvent): void {
    this.events.push(event);
    if (this.events.length > PARKED_LIMIT) this.events.shift();
  }

  error(): void {}

  ended(): void {}

  flushTo(listener: ObservationListener): void {
    for (const event of this.events.splice(0)) listener.notify(event);
  }
}

/** How old a notification may look before it is taken as newer anyway (RFC 7641 section 3.4). */
const REORDER_WINDOW_SECONDS = 128;

const newTokenKey = () => randomText(8, 'hex');

/** An establishment that a newer one (a re-registration, a reconnection) replaced while it was under way: its outcome is not this observation's. */
class SupersededError extends Error {
  constructor() {
    super('superseded by a newer establishment of the observation');
    this.name = 'SupersededError';
  }
}

/** How an observation hands its notifications to the service that keeps it. */
interface Sink {
  notified(observation: Observation, message: CoapMessage): void;
  /** The endpoint rejected a notification (and reset the observation at the device). */
  refused(observation: Observation, reason: string): void;
}

/**
 * One observation. Kept small on purpose (a fleet has one or more per
 * device): the token as hex only, no closure, the request shared.
 */
export class Observation implements NotificationHandler {
  readonly id: string;
  /** The token in hex, as the CoAP endpoint takes it. */
  tokenKey: string = newTokenKey();
  // Initialised even when empty: the fields then live inside the object, not in a property array added later.
  peer: Peer | undefined = undefined;
  transport: Transport = 'udp';
  private lastSequence: number | undefined = undefined;
  /** In whole seconds: a small integer is stored in place, where milliseconds would box a new number per notification. */
  private lastSecond = 0;
  private pathTexts: readonly string[] | undefined = undefined;
  /**
   * False once its token is forgotten: a block-wise notification still being
   * fetched is then dropped, and over TCP or TLS the observation waits for the
   * device to reconnect.
   */
  live = true;

  constructor(
    readonly endpoint: string,
    readonly request: ObserveKind,
    /** Who receives the notifications: the node that started it, or a parking place while that node restarts. */
    public listener: ObservationListener,
    /** The node (id) that started it, which takes it back after a redeploy or restart. */
    readonly owner: string | undefined,
    private readonly sink: Sink,
    /** Given for the view of an observation another instance holds. */
    id?: string,
  ) {
    this.id = id ?? randomText(6, 'base64url');
  }

  notified(message: CoapMessage): void {
    this.sink.notified(this, message);
  }

  refused(reason: string): void {
    this.sink.refused(this, reason);
  }

  /** The observed paths as text; computed once, since every notification's msg names them. */
  get paths(): readonly string[] {
    return (this.pathTexts ??= this.request instanceof ObserveCompositeRequest ? this.request.paths.map(String) : [this.request.path.toString()]);
  }

  /** RFC 7641 section 3.4: is this notification newer than the last one delivered (or the answer that established the observation)? Takes it as the latest if so. */
  isFresh(sequence: number): boolean {
    const now = Math.floor(Date.now() / 1000);
    const fresh = this.isNewer(sequence, now);
    if (fresh) {
      this.lastSequence = sequence;
      this.lastSecond = now;
    }
    return fresh;
  }

  /** The same test, without taking the number: for a notification whose remaining blocks are still to be fetched. */
  isNewer(sequence: number, now = Math.floor(Date.now() / 1000)): boolean {
    const last = this.lastSequence;
    return (
      last === undefined ||
      (last < sequence && sequence - last < 2 ** 23) ||
      (last > sequence && last - sequence > 2 ** 23) ||
      now > this.lastSecond + REORDER_WINDOW_SECONDS
    );
  }

  restart(): void {
    this.tokenKey = newTokenKey();
    this.lastSequence = undefined;
    this.live = true;
  }
}

/**
 * The observations of one server: established with Observe, fed by
 * notifications matched by device address and token, re-established after a
 * re-registration when wanted, followed across address changes, and ended
 * when the device goes away.
 */
export class ObservationService {
  /** Per device the observation itself, or an array when it has several: most have one, and a fleet has many devices. */
  private readonly byEndpoint = new Map<string, Observation | Observation[]>();
  /** The listener of each owner (node) that adopted its observations: observations that come later go straight to it. */
  private readonly listeners = new Map<string, ObservationListener>();
  private readonly sink: Sink = {
    notified: (observation, message) => this.onNotification(observation, message),
    refused: (observation, reason) => this.end(observation, `the server refused a notification: ${reason}`),
  };

  constructor(
    private readonly endpointFor: EndpointFor,
    private readonly registrations: RegistrationStore,
    private readonly send: Sender,
    private readonly complete: Completer,
    /** The object model as the device sees it (its object versions); the newest versions when it is gone. */
    private readonly model: (registration: Registration | undefined) => ObjectModel,
    private readonly presence: PresenceTracker,
    /** Re-establish observations when their device registers again. */
    private readonly reobserve: boolean,
  ) {}

  get size(): number {
    let count = 0;
    for (const entry of this.byEndpoint.values()) count += Array.isArray(entry) ? entry.length : 1;
    return count;
  }

  list(endpoint?: string): Observation[] {
    if (endpoint !== undefined) return [this.byEndpoint.get(endpoint) ?? []].flat();
    return [...this.byEndpoint.values()].flat();
  }

  /**
   * Starts an observation. Resolves with the first response; the observation
   * is kept when the device accepted it (Observe option in the response).
   */
  async observe(
    endpoint: string,
    request: ObserveKind,
    listener: ObservationListener,
    options: SendOptions = {},
    owner?: string,
  ): Promise<{ observation: Observation; first: NotificationEvent; established: boolean }> {
    const observation = new Observation(endpoint, request, listener, owner, this.sink);
    const { first, established } = await this.establish(observation, options);
    if (established) this.add(observation);
    return { observation, first, established };
  }

  /**
   * Sends the Observe request. An answer that cannot be used (content that
   * does not decode, the wrong code, blocks that do not fit) leaves nothing
   * behind: the token is forgotten, so the next notification gets a Reset,
   * and a device that took the observation is sent GET Observe=1 as well.
   */
  private async establish(observation: Observation, options: SendOptions): Promise<{ first: NotificationEvent; established: boolean }> {
    this.locate(observation);
    const token = observation.tokenKey;
    const peer = observation.peer;
    let response;
    try {
      response = await this.send(observation.endpoint, observation.request, {
        ...options,
        token,
        onNotification: observation,
      });
    } catch (error) {
      if (observation.tokenKey !== token) throw new SupersededError();
      this.abandon(observation, error);
      if (error instanceof DeviceRequestError && error.kind === 'invalid-response') {
        throw new DeviceRequestError(`${error.message} (the observation was not kept${error.observe === undefined ? '' : ' and is cancelled at the device'})`, error.kind, error.code, error.observe);
      }
      throw error;
    }
    if (observation.tokenKey !== token) {
      // A newer establishment runs under another token: this one's observation at the device is let go.
      if (peer) this.endpointFor(observation.transport)?.forgetObservation(peer, token);
      if (response.observe !== undefined) this.send(observation.endpoint, new CancelObservationRequest(observation.request), { token, timeoutMs: 5000 }).catch(() => undefined);
      throw new SupersededError();
    }
    this.locate(observation);
    // The answer's sequence number counts: a later notification must be newer (RFC 7641 section 3.4).
    if (response.observe !== undefined) observation.isFresh(response.observe);
    return {
      first: { observation, records: response.records, model: this.model(this.registrations.getByEndpoint(observation.endpoint)), code: response.code, contentFormat: response.contentFormat, raw: response.raw, sequence: response.observe },
      established: response.observe !== undefined,
    };
  }

  /** Where the device's notifications come from: its registered address and transport. */
  private locate(observation: Observation): void {
    const registration = this.registrations.getByEndpoint(observation.endpoint);
    if (!registration) return;
    const peer = observation.peer;
    if (peer?.address !== registration.address || peer.port !== registration.port) observation.peer = { address: registration.address, port: registration.port };
    observation.transport = registration.transport;
  }

  /** An observation that could not be established: no token kept, and the device told when it took it all the same. */
  private abandon(observation: Observation, error: unknown): void {
    this.forgetToken(observation);
    if (!(error instanceof DeviceRequestError) || error.observe === undefined) return;
    this.send(observation.endpoint, new CancelObservationRequest(observation.request), { token: observation.tokenKey, timeoutMs: 5000 }).catch(() => undefined);
  }

  /** Ends an observation: actively with GET Observe=1 when the device is there, then its notifications get a Reset. */
  async cancel(observation: Observation, options: { active?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (!this.remove(observation)) return;
    this.forgetToken(observation);
    observation.listener.ended(observation, 'cancelled');
    if (options.active === false || !this.registrations.getByEndpoint(observation.endpoint)) return;
    await this.send(observation.endpoint, new CancelObservationRequest(observation.request), { token: observation.tokenKey, timeoutMs: options.timeoutMs ?? 5000 }).catch(() => undefined);
  }

  /** A device registered; an earlier registration of it (replaced) means its observations are void. */
  onRegistered(registration: Registration, replaced: Registration | undefined): void {
    if (!replaced) return;
    for (const observation of this.list(registration.endpoint)) this.reestablish(observation, 're-registered');
  }

  /** Observes again under a new token (with Re-observe), or ends the observation with the reason. */
  private reestablish(observation: Observation, reason: string): void {
    this.forgetToken(observation);
    if (!this.reobserve) {
      this.remove(observation);
      observation.listener.ended(observation, reason);
      return;
    }
    observation.restart();
    this.establish(observation, {}).then(
      ({ established }) => {
        if (!established) {
          this.remove(observation);
          observation.listener.ended(observation, 'the device no longer accepts the observation');
        }
      },
      (error: Error) => {
        if (error instanceof SupersededError) return;
        this.remove(observation);
        observation.listener.error(error, observation);
        observation.listener.ended(observation, 're-observation failed');
      },
    );
  }

  /** The device's address changed in an Update: its notifications now come from there. */
  onMoved(registration: Registration, from: Peer): void {
    const to = { address: registration.address, port: registration.port };
    for (const observation of this.list(registration.endpoint)) {
      if (isStream(observation.transport)) continue; // see onReconnected
      this.endpointFor(observation.transport)?.moveObservation(from, to, observation.tokenKey);
      observation.peer = to;
    }
  }

  /**
   * A device over TCP or TLS talks on a connection: observations made on an
   * earlier one ended with it at the device (RFC 8323 section 7.2), so they
   * are made again on this one (with Re-observe; ended otherwise).
   */
  onReconnected(registration: Registration): void {
    for (const observation of this.list(registration.endpoint)) {
      if (!isStream(observation.transport)) continue;
      const current = observation.peer?.address === registration.address && observation.peer.port === registration.port;
      if (observation.live && current) continue;
      this.reestablish(observation, 'the connection closed');
    }
  }

  /** A device's TCP or TLS connection closed: its observations wait for it to reconnect (with Re-observe), or end. */
  onDisconnected(registration: Registration): void {
    for (const observation of this.list(registration.endpoint)) {
      if (!isStream(observation.transport) || observation.peer?.address !== registration.address || observation.peer.port !== registration.port) continue;
      this.forgetToken(observation);
      if (this.reobserve) continue;
      this.remove(observation);
      observation.listener.ended(observation, 'the connection closed');
    }
  }

  /** The device de-registered or expired. */
  onGone(registration: Registration, reason: string): void {
    for (const observation of this.list(registration.endpoint)) {
      this.forgetToken(observation);
      this.remove(observation);
      observation.listener.ended(observation, reason);
    }
  }

  /** Holds an owner's observations while its node restarts; their notifications wait for adopt(). */
  park(owner: string): void {
    this.listeners.delete(owner);
    for (const observation of this.list()) if (observation.owner === owner) observation.listener = new ParkedListener();
  }

  /** The listener an observation of this owner gets when it arrives later (see ObservationListener.adopted). */
  listenerOf(owner: string | undefined): ObservationListener {
    return (owner !== undefined && this.listeners.get(owner)) || new ParkedListener();
  }

  /** Hands an observation that came later to its owner's listener. */
  handOver(observation: Observation): void {
    if (!(observation.listener instanceof ParkedListener)) observation.listener.adopted?.(observation);
  }

  /**
   * Lets go of a device's observations without a word to the device, which
   * another instance now serves: tokens forgotten here, listeners told.
   */
  release(endpoint: string, reason: string): void {
    for (const observation of this.list(endpoint)) {
      this.forgetToken(observation);
      this.remove(observation);
      observation.listener.ended(observation, reason);
    }
  }

  /** Hands an owner its observations back (parked, or restored from a saved state), with what arrived meanwhile. */
  adopt(owner: string, listener: ObservationListener): Observation[] {
    this.listeners.set(owner, listener);
    const adopted: Observation[] = [];
    for (const observation of this.list()) {
      if (observation.owner !== owner) continue;
      const parked = observation.listener;
      observation.listener = listener;
      if (parked instanceof ParkedListener) parked.flushTo(listener);
      adopted.push(observation);
    }
    return adopted;
  }

  persisted(endpoint?: string): PersistedObservation[] {
    return this.list(endpoint).map((observation) => ({
      id: observation.id,
      endpoint: observation.endpoint,
      owner: observation.owner,
      paths: [...observation.paths],
      composite: observation.request instanceof ObserveCompositeRequest,
      format: observation.request.format,
      token: observation.tokenKey,
      peer: observation.peer,
      transport: observation.transport,
      ...(observation.request.attributes ? { attributes: observation.request.attributes } : {}),
    }));
  }

  /**
   * Brings back saved observations: their notifications are accepted at once
   * and go to their owner's listener when it adopted already (see
   * listenerOf), else parked until it does. Those over TCP or TLS ended with
   * their connection: they wait to be made again when the device reconnects
   * (with Re-observe; without, they are not brought back). Returns why
   * entries that cannot be used (paths, formats or attributes no longer
   * valid) were left out.
   */
  restore(saved: PersistedObservation[]): string[] {
    const problems: string[] = [];
    for (const entry of saved) {
      if (!this.registrations.getByEndpoint(entry.endpoint) || !entry.peer) continue;
      const stream = isStream(entry.transport ?? 'udp');
      if (stream && !this.reobserve) continue;
      let request: ObserveKind;
      try {
        const paths = entry.paths.map((path) => Lwm2mPath.parse(path));
        request = entry.composite ? new ObserveCompositeRequest(paths, entry.format, entry.attributes) : new ObserveRequest(paths[0], entry.format, entry.attributes);
      } catch (error) {
        problems.push(`observation ${entry.token} of ${entry.endpoint}: ${(error as Error).message}`);
        continue;
      }
      const observation = new Observation(entry.endpoint, request, this.listenerOf(entry.owner), entry.owner, this.sink, entry.id);
      observation.tokenKey = entry.token;
      observation.peer = entry.peer;
      observation.transport = entry.transport ?? 'udp';
      if (stream) observation.live = false;
      else this.endpointFor(observation.transport)?.adoptObservation(entry.peer, observation.tokenKey, observation);
      this.add(observation);
      this.handOver(observation);
    }
    return problems;
  }

  clear(): void {
    for (const observation of this.list()) this.forgetToken(observation);
    this.byEndpoint.clear();
  }

  private onNotification(observation: Observation, message: CoapMessage): void {
    const registration = this.registrations.getByEndpoint(observation.endpoint);
    if (registration) {
      touch(registration);
      this.presence.seen(registration);
    }
    const code = formatCode(message.code);
    const observe = findOption(message.options, OptionNumber.Observe);
    if (codeClass(message.code) !== 2) {
      this.end(observation, `the device answered ${code}`);
      return;
    }
    const sequence = observe ? decodeUint(observe.value) : undefined;
    // Over TCP and TLS notifications arrive in order: their Observe value means nothing (RFC 8323 section 7.2).
    const ordered = isStream(observation.transport);
    if (hasMoreBlocks(message, ordered)) {
      if (registration && (sequence === undefined || ordered || observation.isNewer(sequence))) this.completeBlocks(observation, message);
      return;
    }
    if (sequence !== undefined && !ordered && !observation.isFresh(sequence)) return;
    if (!registration) return;
    try {
      const model = this.model(registration);
      const { records } = observation.request.fromCoap(message, { registration, model });
      observation.listener.notify({ observation, records, model, code, contentFormat: contentFormatOf(message), raw: message.payload, sequence });
    } catch (error) {
      if (!(error instanceof ContentError)) throw error;
      observation.listener.error(new ContentError(`notification of ${observation.paths.join(', ')} from ${observation.endpoint}: ${error.message}`), observation);
    }
    // A response without Observe ends the observation (RFC 7641 section 3.2).
    if (sequence === undefined) this.end(observation, 'the device ended the observation');
  }

  /**
   * A notification that is the first of several Block2 blocks: the rest is
   * fetched (GET, or FETCH for a composite, without Observe) and the whole
   * delivered, unless a newer notification came meanwhile or the observation ended.
   */
  private completeBlocks(observation: Observation, first: CoapMessage): void {
    const token = observation.tokenKey;
    this.complete(observation.endpoint, observation.request, first).then(
      (whole) => {
        if (observation.live && observation.tokenKey === token) this.onNotification(observation, whole);
      },
      (error: Error) => {
        if (observation.live && observation.tokenKey === token) observation.listener.error(error, observation);
      },
    );
  }

  /** The device ended the observation (or we refused its notification): forget it and tell its listener. */
  private end(observation: Observation, reason: string): void {
    this.forgetToken(observation);
    if (this.remove(observation)) observation.listener.ended(observation, reason);
  }

  private forgetToken(observation: Observation): void {
    observation.live = false;
    if (observation.peer) this.endpointFor(observation.transport)?.forgetObservation(observation.peer, observation.tokenKey);
  }

  private add(observation: Observation): void {
    const entry = this.byEndpoint.get(observation.endpoint);
    if (entry === undefined) this.byEndpoint.set(observation.endpoint, observation);
    else if (Array.isArray(entry)) entry.push(observation);
    else this.byEndpoint.set(observation.endpoint, [entry, observation]);
  }

  private remove(observation: Observation): boolean {
    const entry = this.byEndpoint.get(observation.endpoint);
    if (entry === observation) {
      this.byEndpoint.delete(observation.endpoint);
      return true;
    }
    const index = Array.isArray(entry) ? entry.indexOf(observation) : -1;
    if (index < 0) return false;
    const list = entry as Observation[];
    list.splice(index, 1);
    if (list.length === 1) this.byEndpoint.set(observation.endpoint, list[0]);
    return true;
  }
}
