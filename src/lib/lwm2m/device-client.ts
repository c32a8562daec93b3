import { OptionNumber, codeClass, formatCode } from '../coap/codes';
import { BlockwiseOptions, completeBlock2, requestBlockwise } from '../coap/block-transfer';
import type { MessageLayer } from '../coap/message-layer';
import type { Transport } from './registration';
import { identityKey } from './security';
import { touch } from '../coarse-clock';

/** The endpoint that reaches devices over a transport; undefined when the server does not listen on it. */
export type EndpointFor = (transport: Transport) => MessageLayer | undefined;
import { CoapClosedError, CoapNoConnectionError, CoapResetError, CoapResponseError, CoapTimeoutError, CoapUnverifiedPeerError } from '../coap/errors';
import type { CoapMessage } from '../coap/message';
import { uintOption } from '../coap/options';
import { ContentError } from '../content/values';
import type { ObjectModel } from '../model/object-model';
import { DeviceQueue, QueueFullError } from './device-queue';
import { DeviceGoneError, PresenceTracker, SleepTimeoutError } from './presence';
import type { NotificationHandler } from '../coap/peer';
import type { ParkedRequest } from './state';
import type { Registration } from './registration';
import type { RegistrationStore } from './registration-store';
import type { CoapRequestSpec, DeviceRequest, RequestContext, ResponseBase } from './requests/device-request';
import { contentFormatOf } from './requests/response-content';
import { randomText } from '../random-text';
import { describeErrorCode, toCoapRequest } from './requests/coap-request';

/** Why a request to a device failed. */
export type FailureKind =
  | 'unknown-endpoint'
  | 'invalid-request'
  | 'device-error'
  | 'invalid-response'
  | 'timeout'
  | 'reset'
  | 'queue-full'
  | 'parked'
  | 'no-session'
  | 'no-connection'
  | 'unverified'
  | 'closed'
  /** A shared state store (Redis) that a request to a device of another instance needs cannot be reached. */
  | 'unavailable';

/** A waiting request was taken back to be handed to its node again. */
class ParkedError extends Error {
  constructor(endpoint: string) {
    super(`the request for ${endpoint} was parked while its node restarts`);
    this.name = 'ParkedError';
  }
}

/** A DTLS or TLS device with no secure session or connection under its identity: only the device can start a handshake. */
class NoSessionError extends Error {
  constructor(registration: Registration) {
    const what = registration.transport === 'tls' ? 'TLS connection' : 'DTLS session';
    super(`no ${what} with ${registration.endpoint} at ${registration.address}:${registration.port} (it must handshake again, as it does when it next updates)`);
    this.name = 'NoSessionError';
  }
}

export class DeviceRequestError extends Error {
  constructor(
    message: string,
    readonly kind: FailureKind,
    /** The device's CoAP response code, such as "4.04", when it answered. */
    readonly code?: string,
    /** The Observe option of an answer that could not be used: the device took the request as an observation. */
    readonly observe?: number,
  ) {
    super(message);
    this.name = 'DeviceRequestError';
  }
}

export interface SendOptions {
  /** Gives up after this long (default 10 s) once sent, including retransmissions and block transfers. */
  timeoutMs?: number;
  /** For a device in queue mode: how long the request may wait for it to wake up (default 5 min). */
  ttlMs?: number;
  /** Reuses a token, in hex (cancelling an observation). */
  token?: string;
  /** Receives the notifications when the request is an observation that the device accepts. */
  onNotification?: NotificationHandler;
  /**
   * Who asked and with what msg: while the request waits for a sleeping
   * device it can be parked (detach) and handed back after a redeploy or restart.
   */
  park?: { owner: string; msg: unknown };
  /** For a large body (a firmware package): told how much of it the device has taken, block by block. */
  onProgress?: (sentBytes: number, totalBytes: number) => void;
}

/** A request waiting for a sleeping device, which detach() can turn back into its msg. */
interface Waiting {
  /** Its id as a parked request in the state store. */
  id: string;
  owner: string;
  endpoint: string;
  msg: unknown;
  deadline: number;
  controller: AbortController;
}

export interface DeviceClientOptions {
  /** Block size exponent for large request bodies (default 5: 512 bytes). */
  block1Szx?: number;
  maxWaitingPerDevice?: number;
  defaultTimeoutMs?: number;
  /** Default time to live of requests to sleeping queue-mode devices. */
  defaultTtlMs?: number;
}

/** A request that waits for a sleeping device (request) or no longer does (undefined): a shared store keeps it meanwhile. */
export type WaitingListener = (id: string, request: ParkedRequest | undefined) => void;


/**
 * Sends LwM2M operations to registered devices from the server's own socket,
 * to the address each device last registered or updated from, one at a time per device.
 */
export class DeviceClient {
  private readonly queue: DeviceQueue;
  private readonly waiting = new Set<Waiting>();

  constructor(
    private readonly endpointFor: EndpointFor,
    private readonly registrations: RegistrationStore,
    /** The object model as the device sees it (its announced object versions). */
    private readonly model: (registration: Registration) => ObjectModel,
    private readonly presence: PresenceTracker,
    private readonly options: DeviceClientOptions = {},
    private readonly waitingChanged?: WaitingListener,
  ) {
    this.queue = new DeviceQueue(options.maxWaitingPerDevice);
  }

  /** How long a request may wait for a sleeping device unless it says otherwise. */
  get defaultTtlMs(): number {
    return this.options.defaultTtlMs ?? 300_000;
  }

  /**
   * Sends an operation and resolves with its decoded answer. Written with
   * plain promise chains rather than async functions: this runs for every
   * read, and each suspended async frame is more garbage for the collector.
   */
  send<R>(endpointName: string, request: DeviceRequest<R>, options: SendOptions = {}): Promise<R & ResponseBase> {
    // Only failures are described: the text is not built for every request that succeeds.
    const describe = () => `${request.operation} ${request.path} on ${endpointName}`;
    const registration = this.registrations.getByEndpoint(endpointName);
    if (!registration) return Promise.reject(new DeviceRequestError(`${describe()}: device "${endpointName}" is not registered`, 'unknown-endpoint'));
    const context: RequestContext = { registration, model: this.model(registration) };
    let spec: CoapRequestSpec;
    try {
      spec = request.toCoap(context);
    } catch (error) {
      return Promise.reject(error instanceof ContentError ? new DeviceRequestError(`${describe()}: ${error.message}`, 'invalid-request') : error);
    }
    const sent = registration.queueMode ? this.whenAwake(registration, spec, options) : this.queue.run(endpointName, () => this.exchangeNow(endpointName, spec, options));
    return sent.then(
      (response) => {
        touch(registration);
        return answer(request, context, response, describe);
      },
      (error: unknown) => {
        throw translate(error, describe());
      },
    );
  }

  /**
   * Sends a request another server instance prepared (see ServerCluster) as
   * send() would, and resolves with the device's answer as it came.
   */
  sendSpec(endpointName: string, operation: string, spec: CoapRequestSpec, options: SendOptions = {}): Promise<CoapMessage> {
    const describe = () => `${operation} ${spec.path} on ${endpointName}`;
    const registration = this.registrations.getByEndpoint(endpointName);
    if (!registration) return Promise.reject(new DeviceRequestError(`${describe()}: device "${endpointName}" is not registered`, 'unknown-endpoint'));
    const sent = registration.queueMode ? this.whenAwake(registration, spec, options) : this.queue.run(endpointName, () => this.exchangeNow(endpointName, spec, options));
    return sent.catch((error: unknown) => {
      throw translate(error, describe());
    });
  }

  /** For a device in queue mode: waits in its lane until it is awake (or the request's time to live runs out), where it can be parked. */
  private async whenAwake(registration: Registration, spec: CoapRequestSpec, options: SendOptions): Promise<CoapMessage> {
    const endpointName = registration.endpoint;
    const ttlMs = options.ttlMs ?? this.defaultTtlMs;
    const deadline = Date.now() + ttlMs;
    const waiting: Waiting | undefined = options.park
      ? { id: randomText(12, 'base64url'), ...options.park, endpoint: endpointName, deadline, controller: new AbortController() }
      : undefined;
    if (waiting) {
      this.waiting.add(waiting);
      this.waitingChanged?.(waiting.id, { owner: waiting.owner, endpoint: endpointName, deadline, msg: waiting.msg });
    }
    const signal = waiting?.controller.signal;
    const task = async () => {
      await this.presence.waitAwake(endpointName, deadline, ttlMs, signal);
      if (waiting) this.stopWaiting(waiting);
      return this.exchangeNow(endpointName, spec, options);
    };
    try {
      return await this.queue.run(endpointName, task, { at: deadline, error: () => new SleepTimeoutError(endpointName, ttlMs) }, signal);
    } finally {
      if (waiting) this.stopWaiting(waiting);
    }
  }

  private stopWaiting(waiting: Waiting): void {
    if (this.waiting.delete(waiting)) this.waitingChanged?.(waiting.id, undefined);
  }

  /** Sends to where the device is now: an update or re-registration may have moved it while the request waited. */
  private exchangeNow(endpointName: string, spec: CoapRequestSpec, options: SendOptions): Promise<CoapMessage> {
    const current = this.registrations.getByEndpoint(endpointName);
    if (!current) return Promise.reject(new DeviceGoneError(endpointName));
    if (!current.queueMode) {
      this.presence.seen(current);
      return this.exchange(current, spec, options);
    }
    return this.exchange(current, spec, options).then((response) => {
      this.presence.seen(current);
      return response;
    });
  }

  /** Requests for a device that are running or waiting in its line. */
  pending(endpointName: string): number {
    return this.queue.pending(endpointName);
  }

  /**
   * Takes back the requests still waiting for sleeping devices (of one
   * owner, or of one device, or all), by their id: they fail with kind
   * "parked" and come back as msgs.
   */
  detach(which: { owner?: string; endpoint?: string } = {}): [string, ParkedRequest][] {
    const parked: [string, ParkedRequest][] = [];
    for (const waiting of [...this.waiting]) {
      if ((which.owner !== undefined && waiting.owner !== which.owner) || (which.endpoint !== undefined && waiting.endpoint !== which.endpoint)) continue;
      this.waiting.delete(waiting);
      parked.push([waiting.id, { owner: waiting.owner, endpoint: waiting.endpoint, deadline: waiting.deadline, msg: waiting.msg }]);
      waiting.controller.abort(new ParkedError(waiting.endpoint));
    }
    return parked;
  }

  /**
   * Fetches the rest of a notification that came as the first of several
   * Block2 blocks (RFC 7959 section 2.6), in the device's line like any
   * request: resolves with the whole notification.
   */
  completeNotification(endpointName: string, request: DeviceRequest<unknown>, first: CoapMessage): Promise<CoapMessage> {
    const describe = () => `notification of ${request.path} from ${endpointName}`;
    const registration = this.registrations.getByEndpoint(endpointName);
    if (!registration) return Promise.reject(new DeviceRequestError(`${describe()}: device "${endpointName}" is not registered`, 'unknown-endpoint'));
    const spec = request.toCoap({ registration, model: this.model(registration) });
    const timeoutMs = this.options.defaultTimeoutMs ?? 10_000;
    return this.queue
      .run(endpointName, () => {
        const current = this.registrations.getByEndpoint(endpointName);
        if (!current) return Promise.reject(new DeviceGoneError(endpointName));
        const endpoint = this.endpointTo(current);
        if (endpoint instanceof Error) return Promise.reject(endpoint);
        return completeBlock2(endpoint, current, toCoapRequest(spec, current.rootPath), first, { timeoutMs, block1Szx: this.options.block1Szx });
      })
      .catch((error: unknown) => {
        throw translate(error, describe());
      });
  }

  private exchange(registration: Registration, spec: CoapRequestSpec, options: SendOptions): Promise<CoapMessage> {
    const endpoint = this.endpointTo(registration);
    if (endpoint instanceof Error) return Promise.reject(endpoint);
    const blockwise: BlockwiseOptions = {
      timeoutMs: options.timeoutMs ?? this.options.defaultTimeoutMs ?? 10_000,
      block1Szx: this.options.block1Szx,
      token: options.token,
      onNotification: options.onNotification,
    };
    // Only a firmware package is followed block by block: every read keeps the smaller object.
    if (options.onProgress) blockwise.onProgress = options.onProgress;
    // The registration is the peer: its address and port are read now, as the request leaves.
    return requestBlockwise(endpoint, registration, toCoapRequest(spec, registration.rootPath), blockwise);
  }

  /** The endpoint that reaches the device now, or why none does. */
  private endpointTo(registration: Registration): MessageLayer | Error {
    const endpoint = this.endpointFor(registration.transport);
    if (!endpoint) return new CoapClosedError();
    // The address may now belong to another device's DTLS session or TLS connection (NAT reuse): never send it this device's requests.
    if (registration.transport === 'dtls' || registration.transport === 'tls') {
      const identity = endpoint.identityOf(registration);
      // No TLS connection at all: the endpoint refuses the request as no-connection.
      if (!(registration.transport === 'tls' && identity === undefined) && identityKey(identity) !== identityKey(registration.identity)) return new NoSessionError(registration);
    }
    return endpoint;
  }
}

/** The decoded answer, or the device's error code and reason as a DeviceRequestError. */
export function answer<R>(request: DeviceRequest<R>, context: RequestContext, response: CoapMessage, describe: () => string): R & ResponseBase {
  const code = formatCode(response.code);
  if (codeClass(response.code) !== 2) {
    throw new DeviceRequestError(`${describe()}: device answered ${describeErrorCode(code, response.payload)}`, 'device-error', code);
  }
  const observe = uintOption(response.options, OptionNumber.Observe);
  if (response.code !== request.successCode) {
    throw new DeviceRequestError(`${describe()}: device answered ${code} where ${formatCode(request.successCode)} was expected`, 'invalid-response', code, observe);
  }
  try {
    // The operation's own fresh result, completed in place rather than copied: this runs for every answer.
    const result = request.fromCoap(response, context) as R & ResponseBase;
    result.code = code;
    result.contentFormat = contentFormatOf(response);
    result.raw = response.payload;
    if (observe !== undefined) result.observe = observe;
    return result;
  } catch (error) {
    if (error instanceof ContentError) throw new DeviceRequestError(`${describe()}: ${error.message}`, 'invalid-response', code, observe);
    throw error;
  }
}

function translate(error: unknown, describe: string): Error {
  if (error instanceof CoapTimeoutError) return new DeviceRequestError(`${describe}: ${error.message}`, 'timeout');
  if (error instanceof CoapResetError) return new DeviceRequestError(`${describe}: ${error.message}`, 'reset');
  if (error instanceof CoapClosedError) return new DeviceRequestError(`${describe}: the server was stopped`, 'closed');
  if (error instanceof QueueFullError) return new DeviceRequestError(`${describe}: ${error.message}`, 'queue-full');
  if (error instanceof CoapResponseError) return new DeviceRequestError(`${describe}: ${error.message}`, 'invalid-response');
  if (error instanceof SleepTimeoutError) return new DeviceRequestError(`${describe}: ${error.message}`, 'timeout');
  if (error instanceof DeviceGoneError) return new DeviceRequestError(`${describe}: ${error.message}`, 'unknown-endpoint');
  if (error instanceof ParkedError) return new DeviceRequestError(`${describe}: ${error.message}`, 'parked');
  if (error instanceof NoSessionError) return new DeviceRequestError(`${describe}: ${error.message}`, 'no-session');
  if (error instanceof CoapNoConnectionError) return new DeviceRequestError(`${describe}: ${error.message} (the device must connect again, as it does when it next updates)`, 'no-connection');
  if (error instanceof CoapUnverifiedPeerError) return new DeviceRequestError(`${describe}: ${error.message}`, 'unverified');
  return error as Error;
}
