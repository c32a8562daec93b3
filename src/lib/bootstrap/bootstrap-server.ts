import { TypedEmitter } from '../typed-emitter';
import { ContentFormat, Method, OptionNumber, ResponseCode } from '../coap/codes';
import { serveBlock2 } from '../coap/block2-serving';
import { decodeBlock } from '../coap/block';
import { uintOption, uintOptionOf } from '../coap/options';
import { encodeContent, formatName } from '../content/formats';
import { Lwm2mPath } from '../model/path';
import { IncomingRequest, MalformedDatagram, OutgoingResponse, diagnostic } from '../coap/endpoint';
import { CoapRequestError } from '../coap/errors';
import type { Peer } from '../coap/peer';
import type { MessageLayer } from '../coap/message-layer';
import type { Transport } from '../lwm2m/registration';
import { ObjectModel } from '../model/object-model';
import { parseQueries } from '../lwm2m/registration-request';
import { BootstrapConfig, BootstrapConfigError, describeConfig, provisionedInstances } from './bootstrap-config';
import { BoundListener, ListenerOptions, Listeners } from '../lwm2m/listeners';
import { EndpointSecurity, SecurityRegistry } from '../lwm2m/security';
import { parsePublicKey } from '../dtls/credentials';
import { BootstrapSession } from './bootstrap-session';
import { KeptConfigs } from './kept-configs';
import { RedisStateStore } from '../lwm2m/redis-store';
import { StateStore, deriveStateKey } from '../lwm2m/state';

export interface BootstrapServerOptions extends ListenerOptions {
  /** Per request of a session (default 10 s). */
  requestTimeoutMs?: number;
  /**
   * Lets configurations with secret keys (PSK keys, private keys) go to
   * devices that did not authenticate (over plain UDP or TCP). Off by
   * default: anyone can ask there in any device's name.
   */
  allowKeysInClear?: boolean;
  /** Sessions run at once (default 1,000); further Bootstrap-Requests get 5.03. A forged one holds its place until its device fails to answer. */
  maxSessions?: number;
  model?: ObjectModel;
  /** Keeps the configurations flows give (keepConfig) across restarts, and with Redis for every instance. */
  stateStore?: StateStore;
  /** The secret kept configurations are sealed under (they hold keys); without one none are kept. */
  stateKey?: string | Buffer;
}

export type BootstrapServerEvents = {
  started: [endpoint: string, peer: Peer];
  finished: [endpoint: string, summary: Record<string, unknown>];
  failed: [endpoint: string, reason: string, peer: Peer];
  /** A DTLS handshake that failed, with the reason (never a key). */
  handshakeFailed: [peer: Peer, reason: string];
  malformed: [detail: MalformedDatagram];
  warning: [error: Error];
  /** Why the state store cannot be used now (Redis unreachable), or undefined once it can again. */
  storeProblem: [problem: string | undefined];
};

/**
 * An LwM2M bootstrap server on its own UDP, DTLS, TCP and/or TLS endpoints (UDP and DTLS ports 5685/5686 by default):
 * answers Bootstrap-Request (POST /bs?ep=&pct=) and provisions the device
 * with the configuration held for its endpoint name, or the default one.
 */
export class BootstrapServer extends TypedEmitter<BootstrapServerEvents> {
  /** The CoAP endpoints: plain UDP, DTLS, TCP and/or TLS. */
  readonly coap: Listeners;
  /** The credentials devices use with this bootstrap server: their bootstrap accounts. */
  readonly security = new SecurityRegistry();
  private readonly configs = new Map<string, BootstrapConfig>();
  private defaultConfig?: BootstrapConfig;
  private readonly sessions = new Map<string, BootstrapSession>();
  private readonly model: ObjectModel;
  private readonly kept?: KeptConfigs;
  /** Until the kept configurations are back from a file store. */
  private loading?: Promise<void>;

  constructor(private readonly options: BootstrapServerOptions) {
    super();
    this.model = options.model ?? ObjectModel.builtIn();
    this.coap = new Listeners(options, this.security, (request, transport) => this.handle(request, transport), this);
    const { stateStore, stateKey } = options;
    if (stateStore && stateKey !== undefined && stateKey.length > 0) {
      const apply = (endpoint: string, config: BootstrapConfig | undefined) => {
        if (!config) this.removeConfig(endpoint);
        else this.setConfig(endpoint, config);
      };
      this.kept = new KeptConfigs(stateStore, deriveStateKey(stateKey), apply, (error) => this.emit('warning', error));
    }
  }

  /**
   * Binds the sockets at once while the kept configurations come back (with
   * Redis as soon as it is reached): Bootstrap-Requests wait for them.
   */
  start(): Promise<BoundListener[]> {
    const store = this.options.stateStore;
    if (store instanceof RedisStateStore) {
      store.link.on('down', (reason) => this.emit('storeProblem', `Redis unreachable: ${reason}`));
      store.link.on('up', () => this.emit('storeProblem', undefined));
      this.emit('storeProblem', 'Redis: connecting');
      store.link.open().catch((error: Error) => this.emit('storeProblem', `Redis unreachable: ${error.message}`));
    } else if (this.kept) {
      const loading = this.kept.load().finally(() => (this.loading = undefined));
      this.loading = loading;
    }
    return this.coap.start();
  }

  /** With forget, the server node is deleted: its kept configurations go too. */
  async stop(options: { forget?: boolean } = {}): Promise<void> {
    for (const session of this.sessions.values()) session.cancel();
    this.sessions.clear();
    if (options.forget) await this.options.stateStore?.destroy();
    await this.coap.stop();
  }

  /** Sets an endpoint's configuration and keeps it in the state store (see KeptConfigs); resolves once written. */
  async keepConfig(endpoint: string, config: BootstrapConfig): Promise<void> {
    this.setConfig(endpoint, config);
    await this.kept?.keep(endpoint, config);
  }

  /** Removes an endpoint's configuration here and from the state store. */
  async forgetConfig(endpoint: string): Promise<boolean> {
    const removed = this.removeConfig(endpoint);
    await this.kept?.forget(endpoint);
    return removed;
  }

  /** Sets an endpoint's configuration; its bootstrap account (if secure) says how the device must authenticate here. */
  setConfig(endpoint: string, config: BootstrapConfig): void {
    try {
      const security = bootstrapSecurity(config);
      if (security) this.security.set(endpoint, security);
      else this.security.remove(endpoint);
    } catch (error) {
      throw new BootstrapConfigError(`bootstrapServer of ${endpoint}: ${(error as Error).message}`);
    }
    this.configs.set(endpoint, config);
  }

  removeConfig(endpoint: string): boolean {
    this.security.remove(endpoint);
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

  private handle(request: IncomingRequest, transport: Transport): OutgoingResponse | Promise<OutgoingResponse> {
    if (this.loading) return this.loading.then(() => this.handle(request, transport));
    if (request.path === '/bspack') return this.bootstrapPack(request);
    if (request.path !== '/bs') return diagnostic(ResponseCode.NotFound, `no resource ${request.path}`);
    if (request.method !== Method.POST) throw new CoapRequestError(ResponseCode.MethodNotAllowed, 'only POST is allowed on /bs');
    const parameters = parseQueries(request.queries);
    const { name, config } = this.admit(request, parameters);
    const pctText = parameters.get('pct');
    let preferredFormat: number | undefined;
    if (pctText !== undefined) {
      if (typeof pctText !== 'string' || !/^\d{1,5}$/.test(pctText)) throw new CoapRequestError(ResponseCode.BadRequest, `invalid preferred content format (pct) ${JSON.stringify(pctText)}`);
      preferredFormat = Number(pctText);
    }
    if (this.sessions.size >= (this.options.maxSessions ?? 1000) && !this.sessions.has(name)) {
      throw new CoapRequestError(ResponseCode.ServiceUnavailable, `${this.sessions.size} bootstrap sessions are running: try again later`);
    }
    this.sessions.get(name)?.cancel();
    const session = new BootstrapSession(this.coap.for(transport) as MessageLayer, request.peer, name, config, this.model, { timeoutMs: this.options.requestTimeoutMs ?? 10_000, preferredFormat });
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

  /**
   * Who may be bootstrapped with what, the same for a Bootstrap-Request and
   * a Bootstrap-Pack-Request: the endpoint's name, a peer that proves the
   * identity its bootstrap account binds it to, and its configuration (or
   * the default one). Refusals are answered and reported as 'failed'.
   */
  private admit(request: IncomingRequest, parameters: Map<string, string | true>): { name: string; config: BootstrapConfig } {
    const name = parameters.get('ep');
    if (typeof name !== 'string' || name.length === 0) throw new CoapRequestError(ResponseCode.BadRequest, 'missing endpoint client name (ep)');
    const refusal = this.security.refusal(name, request.identity);
    if (refusal) {
      this.emit('failed', name, refusal, request.peer);
      throw new CoapRequestError(ResponseCode.Forbidden, refusal);
    }
    const config = this.configs.get(name) ?? this.defaultConfig;
    if (!config) {
      const reason = `no bootstrap configuration for "${name}"`;
      this.emit('failed', name, reason, request.peer);
      throw new CoapRequestError(ResponseCode.BadRequest, reason);
    }
    // Anyone can ask in any device's name over plain UDP or TCP: keys go only to a device that proved who it is.
    const secrets = request.identity || this.options.allowKeysInClear ? [] : secretsIn(config);
    if (secrets.length > 0) {
      const reason = `the configuration for "${name}" holds secret keys (${secrets.join(', ')}), which go only to a device that authenticated (DTLS or TLS): bootstrap it over coaps, or allow keys in the clear`;
      this.emit('failed', name, reason, request.peer);
      throw new CoapRequestError(ResponseCode.Forbidden, reason);
    }
    return { name, config };
  }

  /**
   * Bootstrap-Pack-Request (LwM2M 1.2: GET /bspack?ep=): the whole
   * configuration in one answer, in the format the device accepts (SenML
   * CBOR unless it asks for SenML JSON or LwM2M CBOR), in Block2 blocks when
   * large. The instances are those a bootstrap session writes, with the
   * device's bootstrap account taken to be /0/0 (it cannot be discovered
   * first): a configured bootstrap account goes there, server accounts from
   * /0/1. Every block request makes the answer again; the first is reported
   * as 'started' and 'finished'.
   */
  private bootstrapPack(request: IncomingRequest): OutgoingResponse {
    if (request.method !== Method.GET) throw new CoapRequestError(ResponseCode.MethodNotAllowed, 'only GET is allowed on /bspack');
    const accept = uintOption(request.message.options, OptionNumber.Accept) ?? ContentFormat.SenmlCbor;
    if (!PACK_FORMATS.includes(accept)) {
      throw new CoapRequestError(ResponseCode.NotAcceptable, `a Bootstrap-Pack is SenML CBOR (112), SenML JSON (110) or LwM2M CBOR (11544), not ${formatName(accept)}`);
    }
    const { name, config } = this.admit(request, parseQueries(request.queries));
    const instances = provisionedInstances(config, [0], true);
    const response = serveBlock2(request.message, {
      code: ResponseCode.Content,
      options: [uintOptionOf(OptionNumber.ContentFormat, accept)],
      payload: encodeContent(instances.flatMap((instance) => instance.records), accept, Lwm2mPath.ROOT, this.model),
    });
    // Only the first block reports the bootstrap: the others are follow-ups of the same answer.
    const block = uintOption(request.message.options, OptionNumber.Block2);
    if (block === undefined || decodeBlock(block)?.num === 0) {
      this.emit('started', name, request.peer);
      this.emit('finished', name, { ...describeConfig(config), device: { format: formatName(accept), written: instances.map((instance) => instance.path.toString()), notes: ['Bootstrap-Pack-Request'] } });
    }
    return response;
  }
}

/** Which accounts of a configuration carry key material, by name (never the key). */
function secretsIn(config: BootstrapConfig): string[] {
  const secrets = config.servers.filter((server) => server.secretKey?.length).map((server) => `${server.securityMode === 'psk' ? 'PSK key' : 'private key'} of server ${server.shortServerId}`);
  if (config.bootstrapServer?.secretKey?.length) secrets.push(`${config.bootstrapServer.securityMode === 'psk' ? 'PSK key' : 'private key'} of the bootstrap account`);
  return secrets;
}

/** The formats a Bootstrap-Pack can be asked in (LwM2M 1.2). */
const PACK_FORMATS: number[] = [ContentFormat.SenmlCbor, ContentFormat.SenmlJson, ContentFormat.Lwm2mCbor];

/** How a device must authenticate to the bootstrap server: the security of its bootstrap account. */
function bootstrapSecurity(config: BootstrapConfig): EndpointSecurity | undefined {
  const account = config.bootstrapServer;
  if (!account || account.securityMode === 'nosec') return undefined;
  if (account.securityMode === 'x509') return { mode: 'x509' };
  const publicKeyOrIdentity = account.publicKeyOrIdentity as Buffer;
  if (account.securityMode === 'psk') return { mode: 'psk', identity: publicKeyOrIdentity.toString('utf8'), key: account.secretKey as Buffer };
  return { mode: 'rpk', publicKey: parsePublicKey(publicKeyOrIdentity.toString('hex')) };
}
