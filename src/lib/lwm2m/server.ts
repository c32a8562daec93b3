import { TypedEmitter } from '../typed-emitter';
import { ResponseCode } from '../coap/codes';
import { IncomingRequest, MalformedDatagram, OutgoingResponse, diagnostic } from '../coap/endpoint';
import type { Peer } from '../coap/peer';
import type { ContentRecord } from '../content/values';
import { ObjectModel } from '../model/object-model';
import { DeviceClient, DeviceClientOptions, SendOptions } from './device-client';
import { NotificationEvent, Observation, ObservationListener, ObservationService, ObserveKind } from './observations';
import { PresenceTracker } from './presence';
import { Registration, Transport } from './registration';
import { RegistrationInterface } from './registration-interface';
import { RegistrationStore } from './registration-store';
import type { DeviceRequest, ResponseBase } from './requests/device-request';
import { SendInterface } from './send-interface';
import type { ParkedRequest, ServerState, StateStore } from './state';
import { SecurityRegistry } from './security';
import { BoundListener, ListenerOptions, Listeners } from './listeners';

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
  /** Keeps registrations, observations and parked requests across restarts. */
  stateStore?: StateStore;
}

/** Changes are written at most this often. */
const SAVE_DELAY_MS = 1000;

/** Events of an Lwm2mServer, with their arguments. */
export type Lwm2mServerEvents = {
  registered: [registration: Registration, replaced: Registration | undefined];
  updated: [registration: Registration, changes: string[]];
  deregistered: [registration: Registration];
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
};

/**
 * An LwM2M server on a plain UDP and/or a DTLS endpoint: the Registration
 * interface and store, the Send operation, observations and queue mode.
 * Requests to a device go out over the transport it registered on.
 */
export class Lwm2mServer extends TypedEmitter<Lwm2mServerEvents> {
  /** The CoAP endpoints: plain UDP and/or DTLS. */
  readonly coap: Listeners;
  readonly security: SecurityRegistry;
  readonly registrations: RegistrationStore;
  readonly observations: ObservationService;
  readonly presence: PresenceTracker;
  readonly model: ObjectModel;
  private readonly registrationInterface: RegistrationInterface;
  private readonly sendInterface: SendInterface;
  private readonly client: DeviceClient;
  private readonly stateStore?: StateStore;
  /** Requests taken back from sleeping devices, until their nodes adopt them. */
  private parked: ParkedRequest[] = [];
  private saveTimer?: NodeJS.Timeout;
  private saving: Promise<void> = Promise.resolve();
  private restored!: () => void;
  private isReady = false;
  /** Resolves once the saved state is back (or there was none) and the sockets are bound: nodes adopt their observations and requests then. */
  readonly ready = new Promise<void>((resolve) => (this.restored = resolve));

  constructor(options: Lwm2mServerOptions) {
    super();
    this.stateStore = options.stateStore;
    this.model = options.model ?? ObjectModel.builtIn();
    this.presence = new PresenceTracker(options.awakeTimeMs ?? 93_000, (registration, awake) => this.emit(awake ? 'awake' : 'sleeping', registration));
    this.registrations = new RegistrationStore((registration) => {
      this.gone(registration, 'expired');
      this.emit('expired', registration);
    });
    this.security = options.security ?? new SecurityRegistry();
    this.coap = new Listeners(options, this.security, (request) => this.handle(request), this);
    this.coap.dtls?.on('moved', (from, to) => this.followDtlsPeer(from, to));
    const endpointFor = (transport: Transport) => this.coap.for(transport);
    this.client = new DeviceClient(endpointFor, this.registrations, () => this.model, this.presence, options.client);
    this.observations = new ObservationService(
      endpointFor,
      this.registrations,
      (endpoint, request, sendOptions) => this.client.send(endpoint, request, sendOptions),
      () => this.model,
      this.presence,
      options.reobserve ?? true,
    );
    this.registrationInterface = new RegistrationInterface(this.registrations, {
      registered: (registration, replaced) => {
        this.emit('registered', registration, replaced);
        this.presence.seen(registration);
        this.observations.onRegistered(registration, replaced);
      },
      updated: (registration, changes, from) => {
        if (from) this.observations.onMoved(registration, from);
        this.emit('updated', registration, changes);
        this.presence.seen(registration);
      },
      deregistered: (registration) => {
        this.gone(registration, 'deregistered');
        this.emit('deregistered', registration);
      },
      refused: (endpoint, peer, reason) => this.emit('refused', endpoint, peer, reason),
    }, options.maxRegistrations, (endpoint, identity) => this.security.refusal(endpoint, identity));
    this.sendInterface = new SendInterface(this.registrations, () => this.model, (registration, records, format, raw) => {
      this.presence.seen(registration);
      this.emit('send', registration, records, format, raw);
    });
    for (const event of ['registered', 'updated', 'deregistered', 'expired'] as const) this.on(event, () => this.scheduleSave());
  }

  /** Restores the saved state, then binds the sockets; rejects with the first bind error (having closed the others). */
  async start(): Promise<BoundListener[]> {
    try {
      const state = await this.stateStore?.load();
      if (state) this.restore(state);
    } catch (error) {
      this.emit('warning', new Error(`saved state not restored: ${(error as Error).message}`));
    }
    // Requests from flows wait for ready: by then the sockets are bound (or failed to bind).
    try {
      return await this.coap.start();
    } finally {
      this.isReady = true;
      this.restored();
    }
  }

  /** Takes back an owner's requests that wait for sleeping devices, to hand them to its next instance. */
  parkRequests(owner: string): void {
    this.parked.push(...this.client.detach(owner));
    this.scheduleSave();
  }

  /** The requests an owner left waiting (before a redeploy or restart), whose time to live has not run out. */
  takeParked(owner: string): ParkedRequest[] {
    const now = Date.now();
    const mine = this.parked.filter((request) => request.owner === owner && request.deadline > now);
    this.parked = this.parked.filter((request) => request.owner !== owner);
    if (mine.length > 0) this.scheduleSave();
    return mine;
  }

  /** Everything that survives a restart. */
  snapshot(): ServerState {
    return {
      version: 1,
      savedAt: Date.now(),
      registrations: [...this.registrations.all()],
      observations: this.observations.persisted(),
      parked: [...this.parked],
    };
  }

  /** Saves soon, once for a burst of changes. */
  scheduleSave(): void {
    if (!this.stateStore || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.save();
    }, SAVE_DELAY_MS);
  }

  private save(): Promise<void> {
    const store = this.stateStore;
    if (!store) return Promise.resolve();
    const state = this.snapshot();
    // Saves run one after the other, so an older state never lands after a newer one.
    this.saving = this.saving
      .then(() => store.save(state))
      .catch((error: Error) => {
        this.emit('warning', new Error(`state not saved: ${error.message}`));
      });
    return this.saving;
  }

  private restore(state: ServerState): void {
    const now = Date.now();
    for (const registration of state.registrations) {
      // Lifetimes kept counting while the server was down.
      if (registration.lastUpdate + registration.lifetime * 1000 <= now) continue;
      // State saved before the field existed.
      registration.lastSeen ??= registration.lastUpdate;
      this.registrations.add(registration);
      this.presence.asleep(registration);
    }
    this.observations.restore(state.observations);
    this.parked = state.parked.filter((request) => request.deadline > now && this.registrations.getByEndpoint(request.endpoint));
  }

  /** Sends an operation to a registered device; rejects with DeviceRequestError. */
  send<R>(endpoint: string, request: DeviceRequest<R>, options?: SendOptions): Promise<R & ResponseBase> {
    // Until the saved state is back, the device may just not be known yet.
    if (!this.isReady) return this.ready.then(() => this.client.send(endpoint, request, options));
    return this.client.send(endpoint, request, options);
  }

  /** Requests for a device that are running or waiting (for its turn, or for a sleeping device to wake up). */
  pendingRequests(endpoint: string): number {
    return this.client.pending(endpoint);
  }

  /** Starts an observation; see ObservationService.observe. */
  observe(
    endpoint: string,
    request: ObserveKind,
    listener: ObservationListener,
    options?: SendOptions,
    owner?: string,
  ): Promise<{ observation: Observation; first: NotificationEvent; established: boolean }> {
    const result = this.observations.observe(endpoint, request, listener, options, owner);
    result.then(() => this.scheduleSave(), () => undefined);
    return result;
  }

  async stop(): Promise<void> {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    this.parked.push(...this.client.detach());
    await this.save();
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

  private gone(registration: Registration, reason: string): void {
    this.observations.onGone(registration, reason);
    this.presence.forget(registration.endpoint);
  }

  private handle(request: IncomingRequest): OutgoingResponse {
    const response = this.registrationInterface.handle(request) ?? this.sendInterface.handle(request);
    if (response) return response;
    return diagnostic(ResponseCode.NotFound, `no resource ${request.path}`);
  }
}
