import { EventEmitter } from 'node:events';
import { ResponseCode, TransmissionParameters } from '../coap/codes';
import { CoapEndpoint, IncomingRequest, MalformedDatagram, OutgoingResponse, diagnostic } from '../coap/endpoint';
import type { Peer } from '../coap/peer';
import { ObjectModel } from '../model/object-model';
import { DeviceClient, DeviceClientOptions, SendOptions } from './device-client';
import { Registration } from './registration';
import type { DeviceRequest, ResponseBase } from './requests/device-request';
import { RegistrationInterface } from './registration-interface';
import { RegistrationStore } from './registration-store';

export interface Lwm2mServerOptions {
  address: string;
  port: number;
  transmission?: Partial<TransmissionParameters>;
  /** Object definitions used to type values; the OMA registry by default. */
  model?: ObjectModel;
  client?: DeviceClientOptions;
}

/** Events of an Lwm2mServer, with their arguments. */
export interface Lwm2mServerEvents {
  registered: [registration: Registration, replaced: Registration | undefined];
  updated: [registration: Registration, changes: string[]];
  deregistered: [registration: Registration];
  expired: [registration: Registration];
  /** A datagram or request that was rejected as malformed. */
  malformed: [detail: MalformedDatagram];
  /** A fault inside the server (a handler bug, a socket error); never thrown. */
  warning: [error: Error];
}

/**
 * An LwM2M server on one UDP endpoint: the Registration interface and the
 * registration store. Requests to devices go out from the same socket.
 */
export class Lwm2mServer extends EventEmitter {
  readonly endpoint: CoapEndpoint;
  readonly registrations: RegistrationStore;
  readonly model: ObjectModel;
  private readonly registrationInterface: RegistrationInterface;
  private readonly client: DeviceClient;

  constructor(options: Lwm2mServerOptions) {
    super();
    this.registrations = new RegistrationStore((registration) => this.emit('expired', registration));
    this.registrationInterface = new RegistrationInterface(this.registrations, {
      registered: (registration, replaced) => this.emit('registered', registration, replaced),
      updated: (registration, changes) => this.emit('updated', registration, changes),
      deregistered: (registration) => this.emit('deregistered', registration),
    });
    this.model = options.model ?? ObjectModel.builtIn();
    this.endpoint = new CoapEndpoint(options, (request) => this.handle(request));
    this.client = new DeviceClient(this.endpoint, this.registrations, () => this.model, options.client);
    this.endpoint.on('malformed', (detail: MalformedDatagram) => this.emit('malformed', detail));
    this.endpoint.on('socketError', (error: Error) => this.emit('warning', error));
    this.endpoint.on('handlerError', (error: Error) => this.emit('warning', error));
  }

  override on<E extends keyof Lwm2mServerEvents>(event: E, listener: (...args: Lwm2mServerEvents[E]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  override off<E extends keyof Lwm2mServerEvents>(event: E, listener: (...args: Lwm2mServerEvents[E]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }

  override emit<E extends keyof Lwm2mServerEvents>(event: E, ...args: Lwm2mServerEvents[E]): boolean {
    return super.emit(event, ...args);
  }

  /** Binds the socket; rejects with the bind error. */
  start(): Promise<Peer> {
    return this.endpoint.listen();
  }

  /** Sends an operation to a registered device; rejects with DeviceRequestError. */
  send<R>(endpoint: string, request: DeviceRequest<R>, options?: SendOptions): Promise<R & ResponseBase> {
    return this.client.send(endpoint, request, options);
  }

  async stop(): Promise<void> {
    this.registrations.clear();
    await this.endpoint.close();
  }

  private handle(request: IncomingRequest): OutgoingResponse {
    const response = this.registrationInterface.handle(request);
    if (response) return response;
    return diagnostic(ResponseCode.NotFound, `no resource ${request.path}`);
  }
}
