import { TypedEmitter } from '../typed-emitter';
import { Method, ResponseCode, TransmissionParameters } from '../coap/codes';
import { CoapEndpoint, IncomingRequest, MalformedDatagram, OutgoingResponse, diagnostic } from '../coap/endpoint';
import { CoapRequestError } from '../coap/errors';
import type { Peer } from '../coap/peer';
import { ObjectModel } from '../model/object-model';
import { parseQueries } from '../lwm2m/registration-request';
import { BootstrapConfig, describeConfig } from './bootstrap-config';
import { BootstrapSession } from './bootstrap-session';

export interface BootstrapServerOptions {
  address: string;
  port: number;
  transmission?: Partial<TransmissionParameters>;
  /** Per request of a session (default 10 s). */
  requestTimeoutMs?: number;
  model?: ObjectModel;
}

export type BootstrapServerEvents = {
  started: [endpoint: string, peer: Peer];
  finished: [endpoint: string, summary: Record<string, unknown>];
  failed: [endpoint: string, reason: string, peer: Peer];
  malformed: [detail: MalformedDatagram];
  warning: [error: Error];
};

/**
 * An LwM2M bootstrap server on its own UDP endpoint (port 5685 by default):
 * answers Bootstrap-Request (POST /bs?ep=&pct=) and provisions the device
 * with the configuration held for its endpoint name, or the default one.
 */
export class BootstrapServer extends TypedEmitter<BootstrapServerEvents> {
  readonly endpoint: CoapEndpoint;
  private readonly configs = new Map<string, BootstrapConfig>();
  private defaultConfig?: BootstrapConfig;
  private readonly sessions = new Map<string, BootstrapSession>();
  private readonly model: ObjectModel;

  constructor(private readonly options: BootstrapServerOptions) {
    super();
    this.model = options.model ?? ObjectModel.builtIn();
    this.endpoint = new CoapEndpoint(options, (request) => this.handle(request));
    this.endpoint.on('malformed', (detail: MalformedDatagram) => this.emit('malformed', detail));
    this.endpoint.on('socketError', (error: Error) => this.emit('warning', error));
    this.endpoint.on('handlerError', (error: Error) => this.emit('warning', error));
  }

  start(): Promise<Peer> {
    return this.endpoint.listen();
  }

  async stop(): Promise<void> {
    for (const session of this.sessions.values()) session.cancel();
    this.sessions.clear();
    await this.endpoint.close();
  }

  setConfig(endpoint: string, config: BootstrapConfig): void {
    this.configs.set(endpoint, config);
  }

  removeConfig(endpoint: string): boolean {
    return this.configs.delete(endpoint);
  }

  getConfig(endpoint: string): BootstrapConfig | undefined {
    return this.configs.get(endpoint);
  }

  /** The configuration for endpoints that have none of their own; undefined refuses them. */
  setDefaultConfig(config: BootstrapConfig | undefined): void {
    this.defaultConfig = config;
  }

  endpoints(): string[] {
    return [...this.configs.keys()];
  }

  private handle(request: IncomingRequest): OutgoingResponse {
    if (request.path !== '/bs') return diagnostic(ResponseCode.NotFound, `no resource ${request.path}`);
    if (request.method !== Method.POST) throw new CoapRequestError(ResponseCode.MethodNotAllowed, 'only POST is allowed on /bs');
    const parameters = parseQueries(request.queries);
    const name = parameters.get('ep');
    if (typeof name !== 'string' || name.length === 0) throw new CoapRequestError(ResponseCode.BadRequest, 'missing endpoint client name (ep)');
    const pctText = parameters.get('pct');
    let preferredFormat: number | undefined;
    if (pctText !== undefined) {
      if (typeof pctText !== 'string' || !/^\d{1,5}$/.test(pctText)) throw new CoapRequestError(ResponseCode.BadRequest, `invalid preferred content format (pct) ${JSON.stringify(pctText)}`);
      preferredFormat = Number(pctText);
    }
    const config = this.configs.get(name) ?? this.defaultConfig;
    if (!config) {
      const reason = `no bootstrap configuration for "${name}"`;
      this.emit('failed', name, reason, request.peer);
      throw new CoapRequestError(ResponseCode.BadRequest, reason);
    }
    this.sessions.get(name)?.cancel();
    const session = new BootstrapSession(this.endpoint, request.peer, name, config, this.model, { timeoutMs: this.options.requestTimeoutMs ?? 10_000, preferredFormat });
    this.sessions.set(name, session);
    this.emit('started', name, request.peer);
    // The session's requests start after our 2.04 is on its way.
    setImmediate(() => {
      session.run().then(
        (findings) => this.emit('finished', name, { ...describeConfig(config), device: findings }),
        (error: Error) => this.emit('failed', name, error.message, request.peer),
      ).finally(() => {
        if (this.sessions.get(name) === session) this.sessions.delete(name);
      });
    });
    return { code: ResponseCode.Changed };
  }
}
