import { TypedEmitter } from '../typed-emitter';
import { ResponseCode, TransmissionParameters } from '../coap/codes';
import { CoapEndpoint, IncomingRequest, MalformedDatagram, OutgoingResponse, diagnostic } from '../coap/endpoint';
import type { Peer } from '../coap/peer';
import type { ContentRecord } from '../content/values';
import { ObjectModel } from '../model/object-model';
import { DeviceClient, DeviceClientOptions, SendOptions } from './device-client';
import { NotificationEvent, Observation, ObservationListener, ObservationService, ObserveKind } from './observations';
import { PresenceTracker } from './presence';
import { Registration } from './registration';
import { RegistrationInterface } from './registration-interface';
import { RegistrationStore } from './registration-store';
import type { DeviceRequest, ResponseBase } from './requests/device-request';
import { SendInterface } from './send-interface';

export interface Lwm2mServerOptions {
  address: string;
  port: number;
  transmission?: Partial<TransmissionParameters>;
  /** Object definitions used to type values; the OMA registry by default. */
  model?: ObjectModel;
  client?: DeviceClientOptions;
  /** How long a queue-mode device counts as awake after it last talked (default 93 s, MAX_TRANSMIT_WAIT). */
  awakeTimeMs?: number;
  /** Re-establish observations when their device registers again (default true). */
  reobserve?: boolean;
  /** Registrations held at most; new endpoints beyond get 5.03 (default 500,000). */
  maxRegistrations?: number;
  /** Remote addresses tracked at once (default 200,000). */
  maxPeers?: number;
}

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
  send: [registration: Registration, records: ContentRecord[], contentFormat: number];
  /** A datagram or request that was rejected as malformed. */
  malformed: [detail: MalformedDatagram];
  /** A fault inside the server (a handler bug, a socket error); never thrown. */
  warning: [error: Error];
};

/**
 * An LwM2M server on one UDP endpoint: the Registration interface and store,
 * the Send operation, observations and queue mode. Requests to devices go
 * out from the same socket.
 */
export class Lwm2mServer extends TypedEmitter<Lwm2mServerEvents> {
  readonly endpoint: CoapEndpoint;
  readonly registrations: RegistrationStore;
  readonly observations: ObservationService;
  readonly presence: PresenceTracker;
  readonly model: ObjectModel;
  private readonly registrationInterface: RegistrationInterface;
  private readonly sendInterface: SendInterface;
  private readonly client: DeviceClient;

  constructor(options: Lwm2mServerOptions) {
    super();
    this.model = options.model ?? ObjectModel.builtIn();
    this.presence = new PresenceTracker(options.awakeTimeMs ?? 93_000, (registration, awake) => this.emit(awake ? 'awake' : 'sleeping', registration));
    this.registrations = new RegistrationStore((registration) => {
      this.gone(registration, 'expired');
      this.emit('expired', registration);
    });
    this.endpoint = new CoapEndpoint(options, (request) => this.handle(request));
    this.client = new DeviceClient(this.endpoint, this.registrations, () => this.model, this.presence, options.client);
    this.observations = new ObservationService(
      this.endpoint,
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
    }, options.maxRegistrations);
    this.sendInterface = new SendInterface(this.registrations, () => this.model, (registration, records, format) => {
      this.presence.seen(registration);
      this.emit('send', registration, records, format);
    });
    this.endpoint.on('malformed', (detail: MalformedDatagram) => this.emit('malformed', detail));
    this.endpoint.on('socketError', (error: Error) => this.emit('warning', error));
    this.endpoint.on('handlerError', (error: Error) => this.emit('warning', error));
  }

  /** Binds the socket; rejects with the bind error. */
  start(): Promise<Peer> {
    return this.endpoint.listen();
  }

  /** Sends an operation to a registered device; rejects with DeviceRequestError. */
  send<R>(endpoint: string, request: DeviceRequest<R>, options?: SendOptions): Promise<R & ResponseBase> {
    return this.client.send(endpoint, request, options);
  }

  /** Starts an observation; see ObservationService.observe. */
  observe(endpoint: string, request: ObserveKind, listener: ObservationListener, options?: SendOptions): Promise<{ observation: Observation; first: NotificationEvent; established: boolean }> {
    return this.observations.observe(endpoint, request, listener, options);
  }

  async stop(): Promise<void> {
    this.observations.clear();
    this.presence.clear();
    this.registrations.clear();
    await this.endpoint.close();
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
