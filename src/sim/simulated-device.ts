import { ContentFormat, Method, OptionNumber, ResponseCode, TransmissionParameters, formatCode } from '../lib/coap/codes';
import { serveBlock2 } from '../lib/coap/block2-serving';
import { requestBlockwise } from '../lib/coap/block-transfer';
import { DtlsClient, DtlsClientOptions } from '../lib/dtls/dtls-client';
import { CoapEndpoint, IncomingRequest, OutgoingResponse, describeResponse, diagnostic } from '../lib/coap/endpoint';
import { StreamEndpoint } from '../lib/coap/stream-endpoint';
import { StreamClientTransport } from '../lib/coap/stream-transport';
import type { CoapMessage } from '../lib/coap/message';
import { pathOptions, queryOptions, stringOptions, uintOption, uintOptionOf } from '../lib/coap/options';
import type { Peer } from '../lib/coap/peer';
import { decodeContent, encodeContent, isSupportedFormat } from '../lib/content/formats';
import { decodeSenmlPatch, decodeSenmlPaths } from '../lib/content/senml';
import { ContentError, ContentRecord, ResourceValue, inferType } from '../lib/content/values';
import { Link, formatLinkFormat } from '../lib/lwm2m/link-format';
import { ObjectModel } from '../lib/model/object-model';
import { Lwm2mPath, PathError } from '../lib/model/path';
import { DeviceRefusal, ObjectTree, Resource, defaultObjectTree } from './object-tree';

export interface SimulatedDeviceOptions {
  endpoint: string;
  server: Peer;
  lifetime?: number;
  lwm2mVersion?: string;
  binding?: string;
  queueMode?: boolean;
  /** Alternate root path announced with rt="oma.lwm2m", e.g. "/lwm2m". */
  rootPath?: string;
  objects?: ObjectTree;
  /** Content formats announced in ct and accepted (default: all LwM2M formats; for LwM2M 1.2 SenML-ETCH too). */
  contentFormats?: number[];
  /** Object versions announced with "ver" (</3>;ver=1.1): the device's values are those versions' types. */
  objectVersions?: Record<number, string>;
  /** Format for multi-value answers when the server asks for none (default TLV). */
  preferredFormat?: number;
  /** Largest answer sent in one datagram before Block2 is used (default 1024 bytes). */
  maxBlockBytes?: number;
  /** Local address to bind (default: loopback of the server's family). */
  address?: string;
  transmission?: Partial<TransmissionParameters>;
  /** Sends an Update before the lifetime runs out, as a real client does. */
  autoUpdate?: boolean;
  /** Notifications as confirmable messages (default non-confirmable). */
  confirmableNotifications?: boolean;
  /** The bootstrap server to ask for provisioning (bootstrap()). */
  bootstrapServer?: Peer;
  /** Talks to the server over DTLS with this PSK (the handshake is part of start()). */
  dtls?: { identity: string; key: Buffer; connectionId?: boolean; cipherSuite?: DtlsClientOptions['cipherSuite'] };
  /** Paths (and what is below them) whose Observe requests are answered as plain reads, as by a device that cannot observe them. */
  unobservable?: string[];
  /** Largest request body taken through Block1 (default 64 KiB; firmware packages need more). */
  maxRequestBodyBytes?: number;
  /** Talks to the server over TCP (RFC 8323; the connection is made in start()). */
  tcp?: boolean;
  /** Talks to the server over TLS with this PSK (RFC 8323; connection and handshake in start()). */
  tls?: { identity: string; key: Buffer };
}

/** A provisioned LwM2M server account: where, over what, with which PSK. */
interface Account {
  server: Peer;
  stream: boolean;
  psk?: { identity: string; key: Buffer };
}

/** A resource written through a handler of its own (a firmware Package) instead of being stored; it may refuse. */
export type WriteHandler = (value: ResourceValue) => void | DeviceRefusal;

/** Told as a body comes in Block1 blocks: the request path, the bytes so far, and whether more follow. */
export type Block1Listener = (path: string, received: number, more: boolean) => void;

/** An observation the server holds on this device. */
interface Observer {
  token: Buffer;
  peer: Peer;
  paths: Lwm2mPath[];
  /** The request's target: a path, or the root for Observe-Composite. */
  target: Lwm2mPath;
  accept?: number;
  sequence: number;
  /** Notification attributes the Observe carried in its query (LwM2M 1.2). */
  attributes: Record<string, string>;
}

/** How many non-confirmable notifications are remembered, to match a Reset to its observer. */
const RECENT_NOTIFICATIONS = 4096;

/** The server answered a device request with an error code. */
export class ServerRejectedError extends Error {
  constructor(readonly response: CoapMessage) {
    super(`server answered ${describeResponse(response)}`);
    this.name = 'ServerRejectedError';
  }

  get responseCode(): string {
    return formatCode(this.response.code);
  }
}

const ALL_FORMATS = [
  ContentFormat.TextPlain,
  ContentFormat.OctetStream,
  ContentFormat.Cbor,
  ContentFormat.SenmlJson,
  ContentFormat.SenmlCbor,
  ContentFormat.Tlv,
  ContentFormat.Lwm2mJson,
  ContentFormat.Lwm2mCbor,
];

function isRefusal(value: unknown): value is DeviceRefusal {
  return typeof value === 'object' && value !== null && typeof (value as DeviceRefusal).code === 'number';
}

/** What an LwM2M 1.2 client speaks besides: SenML FETCH and PATCH packs (RFC 8790). */
const FORMATS_1_2 = [...ALL_FORMATS.slice(0, 5), ContentFormat.SenmlEtchJson, ContentFormat.SenmlEtchCbor, ...ALL_FORMATS.slice(5)];

/** A request was answered with an error code and reason. */
class Refusal extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A simulated LwM2M client on a real UDP socket: registers, updates and
 * de-registers, and answers Read, Write, Execute, Create, Delete, Discover,
 * Write-Attributes and the composite operations from its object tree in
 * every LwM2M content format, with Block2 for large answers.
 */
export class SimulatedDevice {
  readonly objects: ObjectTree;
  /** Requests the server sent to this device, newest last. */
  readonly received: IncomingRequest[] = [];
  /** Attributes written per path, as Discover reports them. */
  readonly attributes = new Map<string, Record<string, string>>();
  /** The object model in the versions this device announces. */
  readonly model: ObjectModel;
  /** Resources with behaviour of their own, by path ("/5/0/0"). */
  readonly writeHandlers = new Map<string, WriteHandler>();
  /** Objects whose new instances (Create without values) start with resources of their own, by object id. */
  readonly instanceFactories = new Map<number, (instanceId: number) => Map<number, Resource>>();
  private readonly block1Listeners = new Set<Block1Listener>();
  /** Registers sent (a firmware update that reboots the device sends one more). */
  registrations = 0;
  /** Talks to the LwM2M server; after a bootstrap, over what the account it was given says (coap://, coaps://, coap+tcp://, coaps+tcp:// with its PSK). */
  private endpoint: CoapEndpoint | StreamEndpoint;
  private dtls?: DtlsClient;
  /** Talks to the bootstrap server: the endpoint the device started with. */
  private readonly bootstrapEndpoint: CoapEndpoint | StreamEndpoint;
  private location?: string;
  private updateTimer?: NodeJS.Timeout;
  private readonly observers = new Map<string, Observer>();
  /** The binding (and handshake) of an endpoint made for a provisioned account, once started. */
  private connecting?: Promise<unknown>;
  /** Set while a bootstrap server provisions this device: resolved by Bootstrap-Finish. */
  private bootstrapping?: { finish(): void };
  private readonly recentNotifications = new Map<number, string>();
  /** The connection's PSK over TLS: the option's, or the provisioned account's. */
  private streamPsk: { identity: string; key: Buffer } | undefined;

  constructor(readonly options: SimulatedDeviceOptions) {
    this.objects = options.objects ?? defaultObjectTree(options.endpoint);
    const versions = Object.entries(options.objectVersions ?? {}).map(([id, version]) => ({ id: Number(id), version }));
    this.model = ObjectModel.builtIn().forDevice({ objects: versions, lwm2mVersion: options.lwm2mVersion ?? '1.1' });
    const server = this.objects.get(1)?.get(0);
    if (server && typeof server.get(9) === 'function') this.addServerTriggers(server);
    if (options.dtls) this.dtls = new DtlsClient({ ...options.dtls, address: options.server.address, port: options.server.port, localAddress: options.address });
    const stream = options.tcp === true || options.tls !== undefined;
    this.streamPsk = options.tls;
    this.endpoint = this.bootstrapEndpoint = stream ? this.newStreamEndpoint(options.server, options.tls) : this.newEndpoint(options.server, this.dtls);
  }

  /** Over TCP, or TLS with a PSK: one connection to the server, on which it also sends its requests. */
  private newStreamEndpoint(server: Peer, psk: { identity: string; key: Buffer } | undefined): StreamEndpoint {
    const address = this.options.address ?? (server.address.includes(':') ? '::1' : '127.0.0.1');
    return new StreamEndpoint({ transport: new StreamClientTransport(server, psk, address) }, (request) => this.answer(request));
  }

  private newEndpoint(server: Peer, transport: DtlsClient | undefined): CoapEndpoint {
    const address = this.options.address ?? (server.address.includes(':') ? '::1' : '127.0.0.1');
    const endpoint = new CoapEndpoint(
      { address, port: 0, transmission: this.options.transmission, transport, maxRequestBodyBytes: this.options.maxRequestBodyBytes },
      (request) => this.answer(request),
    );
    endpoint.on('block1', (_peer: Peer, path: string, received: number, more: boolean) => {
      for (const listener of this.block1Listeners) listener(path, received, more);
    });
    // A Reset for a notification cancels its observation (RFC 7641 section 3.6).
    endpoint.on('reset', (_peer: Peer, messageId: number) => {
      const tokenKey = this.recentNotifications.get(messageId);
      if (tokenKey) this.observers.delete(tokenKey);
    });
    return endpoint;
  }

  /** Observations the server holds on this device, as "path" lists. */
  get observations(): string[][] {
    return [...this.observers.values()].map((observer) => observer.paths.map(String));
  }

  /** The notification attributes each observation was made with (LwM2M 1.2: in the Observe's query). */
  get observationAttributes(): Record<string, string>[] {
    return [...this.observers.values()].map((observer) => ({ ...observer.attributes }));
  }

  get registrationLocation(): string | undefined {
    return this.location;
  }

  get localAddress(): Peer | undefined {
    return this.endpoint.address;
  }

  /** Binds the socket (and completes the DTLS handshake when the device uses DTLS; connects over TCP or TLS). */
  async start(): Promise<Peer> {
    return this.endpoint.listen();
  }

  /**
   * Over TCP or TLS: drops the connection and makes a new one (from a new
   * port), as a device does after a network outage; the server learns of it
   * at the next Update (or at once, over TLS, by the device's identity).
   */
  async reconnect(): Promise<Peer> {
    const options = this.options;
    if (!(this.endpoint instanceof StreamEndpoint)) throw new Error('reconnect() is for TCP and TLS devices');
    const previous = this.endpoint;
    this.endpoint = this.newStreamEndpoint(options.server, previous.transport.scheme === 'coaps+tcp' ? this.streamPsk : undefined);
    await previous.close();
    // Observations end with their connection (RFC 8323 section 7.2).
    this.observers.clear();
    const bound = await this.endpoint.listen();
    this.connecting = Promise.resolve();
    return bound;
  }


  /** Moves a DTLS device to a new local port, as a NAT rebinding does: it keeps its session only with a connection id. */
  async rebind(): Promise<Peer> {
    if (!this.dtls) throw new Error('rebind() is for DTLS devices');
    return this.dtls.rebind((error) => this.endpoint.emit('socketError', error));
  }

  /**
   * Talks to another server address from now on, as a device behind a load
   * balancer does when the instance serving it changes: its requests, its
   * notifications and (over DTLS) its records, in the session it has.
   */
  moveTo(server: Peer): void {
    this.options.server = server;
    for (const observer of this.observers.values()) observer.peer = server;
    this.dtls?.moveTo(server);
  }

  async stop(): Promise<void> {
    clearTimeout(this.updateTimer);
    await Promise.all([this.endpoint.close(), this.bootstrapEndpoint.close()]);
  }

  private get formats(): number[] {
    return this.options.contentFormats ?? (this.options.lwm2mVersion === '1.2' ? FORMATS_1_2 : ALL_FORMATS);
  }

  /** The link-format payload of Register: root link with content formats, then every object instance. */
  objectLinks(): string {
    const root = this.options.rootPath ?? '/';
    const prefix = root === '/' ? '' : root;
    const links: Link[] = [{ path: root, attributes: { rt: 'oma.lwm2m', ct: this.formats.join(' ') } }];
    for (const [objectId, instances] of this.objects) {
      if (objectId === 0) continue; // the Security object is never announced
      const version = this.options.objectVersions?.[objectId];
      if (version !== undefined) links.push({ path: `${prefix}/${objectId}`, attributes: { ver: version } });
      else if (instances.size === 0) links.push({ path: `${prefix}/${objectId}`, attributes: {} });
      for (const instanceId of instances.keys()) links.push({ path: `${prefix}/${objectId}/${instanceId}`, attributes: {} });
    }
    return formatLinkFormat(links);
  }

  /** Registers; like a client that starts afresh, it drops the observations of an earlier registration. */
  async register(extraQuery: Record<string, string | true> = {}): Promise<string> {
    this.observers.clear();
    this.registrations++;
    const { endpoint, lifetime = 60, lwm2mVersion = '1.1', binding = 'U', queueMode = false } = this.options;
    const response = await this.send(Method.POST, '/rd', {
      query: { ep: endpoint, lt: lifetime, lwm2m: lwm2mVersion, b: binding, Q: queueMode ? true : undefined, ...extraQuery },
      payload: Buffer.from(this.objectLinks(), 'utf8'),
      contentFormat: ContentFormat.LinkFormat,
    });
    if (response.code !== ResponseCode.Created) throw new ServerRejectedError(response);
    this.location = '/' + stringOptions(response.options, OptionNumber.LocationPath).join('/');
    this.scheduleUpdate();
    return this.location;
  }

  async update(query: Record<string, string | number | true> = {}, withObjects = false): Promise<void> {
    const location = this.requireLocation();
    const response = await this.send(Method.POST, location, {
      query,
      ...(withObjects ? { payload: Buffer.from(this.objectLinks(), 'utf8'), contentFormat: ContentFormat.LinkFormat } : {}),
    });
    if (response.code !== ResponseCode.Changed) throw new ServerRejectedError(response);
    if (typeof query.lt === 'number') this.options.lifetime = query.lt;
    this.scheduleUpdate();
  }

  async deregister(): Promise<void> {
    const location = this.requireLocation();
    clearTimeout(this.updateTimer);
    const response = await this.send(Method.DELETE, location, {});
    this.location = undefined;
    if (response.code !== ResponseCode.Deleted) throw new ServerRejectedError(response);
  }

  /**
   * Client-initiated bootstrap: Bootstrap-Request to the bootstrap server,
   * then the server's deletes and writes until Bootstrap-Finish. The LwM2M
   * server to register with is then read from the Security object.
   */
  async bootstrap(timeoutMs = 10_000): Promise<Peer> {
    const bootstrapServer = this.options.bootstrapServer;
    if (!bootstrapServer) throw new Error(`${this.options.endpoint} has no bootstrap server`);
    const finished = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no Bootstrap-Finish within the time limit')), timeoutMs);
      this.bootstrapping = {
        finish: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
    finished.catch(() => undefined);
    const response = await this.bootstrapEndpoint.request(bootstrapServer, {
      code: Method.POST,
      options: [...pathOptions(OptionNumber.UriPath, '/bs'), ...queryOptions({ ep: this.options.endpoint, pct: this.options.preferredFormat })],
    });
    if (response.code !== ResponseCode.Changed) {
      this.bootstrapping = undefined;
      throw new ServerRejectedError(response);
    }
    await finished;
    this.bootstrapping = undefined;
    await this.useAccount(this.provisionedAccount());
    return this.options.server;
  }

  /**
   * Bootstrap-Pack-Request (LwM2M 1.2): GET /bspack?ep= in the format asked
   * for (SenML CBOR by default), the answer fetched block-wise if large, then
   * applied as a bootstrap session would: everything deleted but the
   * bootstrap account and the Device object, every instance of the pack
   * written. The LwM2M server to register with is then read from the Security object.
   */
  async bootstrapPack(accept: number = ContentFormat.SenmlCbor, timeoutMs = 10_000): Promise<Peer> {
    const bootstrapServer = this.options.bootstrapServer;
    if (!bootstrapServer) throw new Error(`${this.options.endpoint} has no bootstrap server`);
    const response = await requestBlockwise(
      this.bootstrapEndpoint,
      bootstrapServer,
      { code: Method.GET, options: [...pathOptions(OptionNumber.UriPath, '/bspack'), ...queryOptions({ ep: this.options.endpoint }), uintOptionOf(OptionNumber.Accept, accept)] },
      { timeoutMs },
    );
    if (response.code !== ResponseCode.Content) throw new ServerRejectedError(response);
    const format = uintOption(response.options, OptionNumber.ContentFormat);
    if (format !== accept) throw new Error(`the Bootstrap-Pack came in content format ${format}, not ${accept}`);
    const records = decodeContent(response.payload, format, Lwm2mPath.ROOT, this.model);
    this.bootstrapDelete(Lwm2mPath.ROOT);
    for (const record of records) {
      const instance = Lwm2mPath.of(record.path.objectId!, record.path.instanceId!);
      if (!this.objects.has(instance.objectId!)) this.objects.set(instance.objectId!, new Map());
      const instances = this.objects.get(instance.objectId!)!;
      if (!instances.has(instance.instanceId!)) {
        const created = new Map<number, Resource>();
        if (instance.objectId === 1) this.addServerTriggers(created);
        instances.set(instance.instanceId!, created);
      }
    }
    this.write(records, Lwm2mPath.ROOT, false);
    await this.useAccount(this.provisionedAccount());
    return this.options.server;
  }

  /**
   * Talks to the provisioned server as its account says: plain CoAP for
   * coap://, DTLS with the account's PSK identity and key for coaps://
   * (a session of its own, from its own socket).
   */
  private async useAccount(account: Account): Promise<void> {
    this.options.server = account.server;
    const previous = this.endpoint;
    if (account.stream) {
      this.streamPsk = account.psk;
      this.endpoint = this.newStreamEndpoint(account.server, account.psk);
    } else {
      if (!account.psk && !this.dtls && previous instanceof CoapEndpoint) return;
      this.dtls = account.psk ? new DtlsClient({ ...account.psk, address: account.server.address, port: account.server.port, localAddress: this.options.address }) : undefined;
      this.endpoint = this.newEndpoint(account.server, this.dtls);
    }
    // Bound (and the handshake made) when the device first talks to the server, as a real client does.
    this.connecting = undefined;
    if (previous !== this.bootstrapEndpoint) await previous.close();
  }

  /** The server endpoint, bound and (over DTLS) connected. */
  private connected(): Promise<unknown> {
    this.connecting ??= this.endpoint === this.bootstrapEndpoint
      ? Promise.resolve()
      : this.endpoint.listen().catch((error: Error) => {
          this.connecting = undefined; // tried again at the next request
          throw error;
        });
    return this.connecting;
  }

  /** The executable resources of a Server instance: Registration Update Trigger (8) and Bootstrap-Request Trigger (9). */
  private addServerTriggers(instance: Map<number, Resource>): void {
    instance.set(8, () => {
      setImmediate(() => this.update().catch(() => undefined));
    });
    instance.set(9, () => {
      if (!this.options.bootstrapServer) return;
      setImmediate(() => this.bootstrap().then(() => this.register()).catch(() => undefined));
    });
  }

  /** The LwM2M server account of the first non-bootstrap Security instance: where, over what, and with which PSK for coaps:// and coaps+tcp://. */
  private provisionedAccount(): Account {
    for (const resources of this.objects.get(0)?.values() ?? []) {
      if (resources.get(1) === true) continue;
      const uri = resources.get(0);
      const match = typeof uri === 'string' ? /^(coaps?)(\+tcp)?:\/\/(\[([^\]]+)\]|[^/:]+)(?::(\d+))?/.exec(uri) : null;
      if (!match) continue;
      const secure = match[1] === 'coaps';
      const stream = match[2] !== undefined;
      const server = { address: match[4] ?? match[3], port: Number(match[5] ?? (secure ? 5684 : 5683)) };
      if (!secure) return { server, stream };
      const [mode, identity, key] = [resources.get(2), resources.get(3), resources.get(5)];
      if (mode !== 0 || !Buffer.isBuffer(identity) || !Buffer.isBuffer(key)) throw new Error(`the account for ${uri} is not a PSK account this device can use`);
      return { server, stream, psk: { identity: identity.toString('utf8'), key } };
    }
    throw new Error('the bootstrap server wrote no LwM2M server account');
  }

  /** Sends any request to the server; for tests of malformed or unusual requests. */
  send(
    method: number,
    path: string,
    request: { query?: Record<string, string | number | true | undefined>; payload?: Buffer; contentFormat?: number },
  ): Promise<CoapMessage> {
    const options = [...pathOptions(OptionNumber.UriPath, path), ...queryOptions(request.query ?? {})];
    if (request.contentFormat !== undefined) options.push(uintOptionOf(OptionNumber.ContentFormat, request.contentFormat));
    return this.connected().then(() => this.endpoint.request(this.options.server, { code: method, options, payload: request.payload }));
  }

  /** Sets a resource value as the device's own sensors would, and notifies its observers. */
  setResource(path: string, value: ResourceValue): Promise<void> {
    const target = Lwm2mPath.parse(path);
    const resources = this.objects.get(target.objectId!)?.get(target.instanceId!);
    if (!resources || target.resourceId === undefined) throw new Error(`no instance for ${path}`);
    resources.set(target.resourceId, value);
    return this.notify(target);
  }

  /** Sends a notification to every observer of the path (or of everything), as values change. */
  async notify(changed?: Lwm2mPath, confirmable = this.options.confirmableNotifications ?? false): Promise<void> {
    const sends: Promise<unknown>[] = [];
    for (const [tokenKey, observer] of this.observers) {
      if (changed && !observer.paths.some((path) => changed.startsWith(path) || path.startsWith(changed))) continue;
      observer.sequence = (observer.sequence + 1) & 0xffffff;
      const content = this.content(observer.paths.flatMap((path) => this.collect(path)), observer.target, observer.accept);
      const sent = this.endpoint
        .notify(observer.peer, { ...content, options: [...(content.options ?? []), uintOptionOf(OptionNumber.Observe, observer.sequence)], token: observer.token, confirmable })
        .then(
          (messageId) => {
            if (confirmable) return;
            this.recentNotifications.set(messageId, tokenKey);
            if (this.recentNotifications.size > RECENT_NOTIFICATIONS) this.recentNotifications.delete(this.recentNotifications.keys().next().value as number);
          },
          () => this.observers.delete(tokenKey),
        );
      sends.push(sent);
    }
    await Promise.all(sends);
  }

  /** Follows request bodies that come in Block1 blocks (a firmware package being pushed). */
  onBlock1(listener: Block1Listener): void {
    this.block1Listeners.add(listener);
  }

  /**
   * Downloads a file as a device does for a Package URI: coap:// from its own
   * socket (coaps:// over its DTLS session with the server) in Block2 blocks
   * of 2^(szx+4) bytes, http(s):// with the platform's HTTP client.
   */
  async download(uri: string, options: { szx?: number; timeoutMs?: number; maxBytes?: number } = {}): Promise<Buffer> {
    const url = new URL(uri);
    const scheme = url.protocol.slice(0, -1);
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (scheme === 'http' || scheme === 'https') {
      const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) throw new Error(`HTTP ${response.status} for ${url.pathname}`);
      return Buffer.from(await response.arrayBuffer());
    }
    if (!['coap', 'coaps', 'coap+tcp', 'coaps+tcp'].includes(scheme)) throw new Error(`unsupported protocol ${scheme}`);
    // The device fetches over the connection it has with its server (its DTLS session, its TCP or TLS connection).
    if (scheme !== this.endpoint.scheme) throw new Error(`${scheme}:// is not what this device talks to its server`);
    await this.connected();
    const peer = { address: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (scheme.startsWith('coaps') ? 5684 : 5683)) };
    const response = await requestBlockwise(
      this.endpoint,
      peer,
      { code: Method.GET, options: pathOptions(OptionNumber.UriPath, decodeURIComponent(url.pathname)) },
      { block2Szx: options.szx ?? 6, timeoutMs, maxResponseBytes: options.maxBytes ?? 64 * 1024 * 1024 },
    );
    if (response.code !== ResponseCode.Content) throw new ServerRejectedError(response);
    return response.payload;
  }

  /** Notifies the observers of each path (values the device's own logic changed in its tree). */
  async notifyPaths(paths: string[]): Promise<void> {
    // A notification that cannot be built (its instance deleted meanwhile) is not sent; the others are.
    await Promise.all(paths.map((path) => this.notify(Lwm2mPath.parse(path)).catch(() => undefined)));
  }

  /** Reports values with the Send operation (POST /dp). */
  async sendValues(paths: string[], format: number = ContentFormat.SenmlCbor): Promise<CoapMessage> {
    const records = paths.flatMap((path) => this.collect(Lwm2mPath.parse(path)));
    return this.send(Method.POST, '/dp', { payload: encodeContent(records, format, Lwm2mPath.ROOT, this.model), contentFormat: format });
  }

  getResource(path: string): Resource | undefined {
    const target = Lwm2mPath.parse(path);
    return this.objects.get(target.objectId!)?.get(target.instanceId!)?.get(target.resourceId!);
  }

  private requireLocation(): string {
    if (!this.location) throw new Error(`${this.options.endpoint} is not registered`);
    return this.location;
  }

  private scheduleUpdate(): void {
    clearTimeout(this.updateTimer);
    if (!this.options.autoUpdate) return;
    const lifetime = this.options.lifetime ?? 60;
    this.updateTimer = setTimeout(() => {
      this.update().catch(() => this.register().catch(() => undefined));
    }, lifetime * 900).unref();
  }

  private answer(request: IncomingRequest): OutgoingResponse {
    this.received.push(request);
    try {
      return serveBlock2(request.message, this.route(request), this.options.maxBlockBytes, this.endpoint instanceof StreamEndpoint);
    } catch (error) {
      if (error instanceof Refusal) return diagnostic(error.code, error.message);
      if (error instanceof ContentError || error instanceof PathError) return diagnostic(ResponseCode.BadRequest, error.message);
      throw error;
    }
  }

  private route(request: IncomingRequest): OutgoingResponse {
    if (request.path === '/bs' && request.method === Method.POST) {
      if (!this.bootstrapping) throw new Refusal(ResponseCode.MethodNotAllowed, 'not bootstrapping');
      this.bootstrapping.finish();
      return { code: ResponseCode.Changed };
    }
    const target = this.targetOf(request.path);
    if (this.bootstrapping && request.method === Method.DELETE) return this.bootstrapDelete(target);
    if (this.bootstrapping && request.method === Method.PUT && target.isInstance() && !this.objects.get(target.objectId!)?.has(target.instanceId!)) {
      if (!this.objects.has(target.objectId!)) this.objects.set(target.objectId!, new Map());
      const created = new Map<number, Resource>();
      if (target.objectId === 1) this.addServerTriggers(created);
      this.objects.get(target.objectId!)!.set(target.instanceId!, created);
    }
    const accept = uintOption(request.message.options, OptionNumber.Accept);
    const observe = uintOption(request.message.options, OptionNumber.Observe);
    switch (request.method) {
      case Method.GET:
        if (accept === ContentFormat.LinkFormat) return this.discover(target, request.queries);
        return this.observed(request, observe, [target], target, accept, this.content(this.collect(target), target, accept));
      case Method.FETCH: {
        const body = request.contentFormat ?? ContentFormat.SenmlJson;
        if (!this.formats.includes(body)) throw new Refusal(ResponseCode.UnsupportedContentFormat, `content format ${body} is not supported`);
        const paths = decodeSenmlPaths(request.payload, body);
        // A Fetch Pack (SenML-ETCH) is answered in the plain SenML of its encoding unless another format is asked for.
        const format = accept ?? (body === ContentFormat.SenmlEtchCbor ? ContentFormat.SenmlCbor : body === ContentFormat.SenmlEtchJson ? ContentFormat.SenmlJson : body);
        return this.observed(request, observe, paths, Lwm2mPath.ROOT, format, this.content(paths.flatMap((path) => this.collect(path)), Lwm2mPath.ROOT, format));
      }
      case Method.PUT:
        if (request.queries.length > 0 && request.payload.length === 0) return this.writeAttributes(target, request.queries);
        this.write(this.decode(request, target), target, true);
        return { code: ResponseCode.Changed };
      case Method.IPATCH:
        if (request.contentFormat === ContentFormat.SenmlEtchJson || request.contentFormat === ContentFormat.SenmlEtchCbor) return this.patch(request);
        this.write(this.decode(request, Lwm2mPath.ROOT), Lwm2mPath.ROOT, false);
        return { code: ResponseCode.Changed };
      case Method.POST:
        if (target.isResource()) return this.execute(target, request.payload.toString('utf8'));
        if (target.isInstance()) {
          this.write(this.decode(request, target), target, false);
          return { code: ResponseCode.Changed };
        }
        // No payload: an instance with defaults, its id the device's choice.
        if (target.isObject()) return this.create(request.payload.length === 0 ? [] : this.decode(request, target), target);
        throw new Refusal(ResponseCode.MethodNotAllowed, `POST is not allowed on ${target}`);
      case Method.DELETE:
        if (!target.isInstance()) throw new Refusal(ResponseCode.MethodNotAllowed, 'only object instances can be deleted');
        this.instances(target).delete(target.instanceId!);
        return { code: ResponseCode.Deleted };
      default:
        throw new Refusal(ResponseCode.MethodNotAllowed, 'method not supported');
    }
  }

  /** Bootstrap-Delete: everything under the path but the bootstrap account and the Device object. */
  private bootstrapDelete(target: Lwm2mPath): OutgoingResponse {
    for (const [objectId, instances] of this.objects) {
      if (objectId === 3 || (target.objectId !== undefined && objectId !== target.objectId)) continue;
      for (const [instanceId, resources] of instances) {
        if (target.instanceId !== undefined && instanceId !== target.instanceId) continue;
        if (objectId === 0 && resources.get(1) === true) continue;
        instances.delete(instanceId);
      }
    }
    return { code: ResponseCode.Deleted };
  }

  /**
   * Write-Composite with a Patch Pack (RFC 8790): the values written, and the
   * resource instances whose value is null removed (LwM2M 1.2).
   */
  private patch(request: IncomingRequest): OutgoingResponse {
    if (!this.formats.includes(request.contentFormat!)) throw new Refusal(ResponseCode.UnsupportedContentFormat, `content format ${request.contentFormat} is not supported`);
    const { records, removals } = decodeSenmlPatch(request.payload, request.contentFormat!, this.model);
    for (const path of removals) {
      if (!path.isResourceInstance()) throw new Refusal(ResponseCode.BadRequest, `only resource instances can be removed, not ${path}`);
    }
    this.write(records, Lwm2mPath.ROOT, false);
    for (const path of removals) {
      const resource = this.instances(path).get(path.instanceId!)!.get(path.resourceId!);
      if (resource instanceof Map) resource.delete(path.resourceInstanceId!);
    }
    return { code: ResponseCode.Changed };
  }

  /**
   * Registers (Observe 0) or removes (Observe 1) an observer, and marks the
   * answer as a notification. Attributes in the query of an Observe are
   * LwM2M 1.2 (an older client refuses them).
   */
  private observed(request: IncomingRequest, observe: number | undefined, paths: Lwm2mPath[], target: Lwm2mPath, accept: number | undefined, response: OutgoingResponse): OutgoingResponse {
    const tokenKey = request.message.token.toString('hex');
    if (observe === 1) this.observers.delete(tokenKey);
    if (observe !== 0) return response;
    if (this.options.unobservable?.some((prefix) => paths.some((path) => path.startsWith(Lwm2mPath.parse(prefix))))) return response;
    if (request.queries.length > 0 && (this.options.lwm2mVersion ?? '1.1') !== '1.2') throw new Refusal(ResponseCode.BadRequest, 'attributes in an Observe are LwM2M 1.2');
    const attributes = this.parseAttributes(request.queries);
    this.observers.set(tokenKey, { token: Buffer.from(request.message.token), peer: request.peer, paths, target, accept, sequence: 1, attributes });
    return { ...response, options: [...(response.options ?? []), uintOptionOf(OptionNumber.Observe, 1)] };
  }

  /** The LwM2M path of a request, below the device's alternate root path. */
  private targetOf(uriPath: string): Lwm2mPath {
    const root = this.options.rootPath && this.options.rootPath !== '/' ? this.options.rootPath : '';
    if (root && !uriPath.startsWith(root + '/') && uriPath !== root) throw new Refusal(ResponseCode.NotFound, `no resource ${uriPath}`);
    try {
      return Lwm2mPath.parse(uriPath.slice(root.length) || '/');
    } catch (error) {
      throw new Refusal(ResponseCode.NotFound, (error as PathError).message);
    }
  }

  private instances(target: Lwm2mPath): Map<number, Map<number, Resource>> {
    const instances = this.objects.get(target.objectId!);
    if (!instances) throw new Refusal(ResponseCode.NotFound, `no object ${target.objectId}`);
    if (target.instanceId !== undefined && !instances.has(target.instanceId)) throw new Refusal(ResponseCode.NotFound, `no instance ${target}`);
    return instances;
  }

  /** Every readable value at or below a path, as records. */
  private collect(target: Lwm2mPath): ContentRecord[] {
    if (target.isRoot()) throw new Refusal(ResponseCode.MethodNotAllowed, 'the root cannot be read');
    const records: ContentRecord[] = [];
    const instances = this.instances(target);
    for (const [instanceId, resources] of instances) {
      if (target.instanceId !== undefined && instanceId !== target.instanceId) continue;
      for (const [resourceId, resource] of resources) {
        if (target.resourceId !== undefined && resourceId !== target.resourceId) continue;
        if (typeof resource === 'function') {
          if (target.resourceId !== undefined) throw new Refusal(ResponseCode.MethodNotAllowed, `${target} is executable`);
          continue;
        }
        const path = Lwm2mPath.of(target.objectId!, instanceId, resourceId);
        if (resource instanceof Map) {
          for (const [resourceInstanceId, value] of resource) {
            if (target.resourceInstanceId !== undefined && resourceInstanceId !== target.resourceInstanceId) continue;
            records.push(this.record(path.child(resourceInstanceId), value));
          }
        } else records.push(this.record(path, resource));
      }
    }
    if (records.length === 0 && target.length >= 3) throw new Refusal(ResponseCode.NotFound, `no resource ${target}`);
    return records;
  }

  private record(path: Lwm2mPath, value: ResourceValue): ContentRecord {
    return { path, value, type: this.model.typeOf(path) ?? inferType(value) };
  }

  private content(records: ContentRecord[], target: Lwm2mPath, accept: number | undefined): OutgoingResponse {
    const single = records.length === 1 && records[0].path.equals(target);
    const format = accept ?? (single ? (records[0].type === 'opaque' ? ContentFormat.OctetStream : ContentFormat.TextPlain) : this.options.preferredFormat ?? ContentFormat.Tlv);
    if (!this.formats.includes(format) || !isSupportedFormat(format)) throw new Refusal(ResponseCode.NotAcceptable, `content format ${format} is not supported`);
    let payload: Buffer;
    try {
      payload = encodeContent(records, format, target, this.model);
    } catch (error) {
      throw new Refusal(ResponseCode.NotAcceptable, (error as Error).message);
    }
    return { code: ResponseCode.Content, options: [uintOptionOf(OptionNumber.ContentFormat, format)], payload };
  }

  private decode(request: IncomingRequest, target: Lwm2mPath): ContentRecord[] {
    const format = request.contentFormat ?? ContentFormat.TextPlain;
    if (!this.formats.includes(format)) throw new Refusal(ResponseCode.UnsupportedContentFormat, `content format ${format} is not supported`);
    return decodeContent(request.payload, format, target, this.model);
  }

  private write(records: ContentRecord[], target: Lwm2mPath, replace: boolean): void {
    if (!target.isRoot()) this.instances(target);
    if (replace && target.isResource()) {
      const resources = this.instances(target).get(target.instanceId!)!;
      if (resources.get(target.resourceId!) instanceof Map) resources.set(target.resourceId!, new Map());
    }
    for (const record of records) {
      const handler = this.writeHandlers.get(record.path.toString());
      if (handler) {
        const refusal: unknown = handler(record.value);
        if (isRefusal(refusal)) throw new Refusal(refusal.code, refusal.reason);
        continue;
      }
      const resources = this.instances(record.path).get(record.path.instanceId!)!;
      const current = resources.get(record.path.resourceId!);
      if (typeof current === 'function') throw new Refusal(ResponseCode.MethodNotAllowed, `${record.path} is executable`);
      if (record.path.isResourceInstance()) {
        const instances = current instanceof Map ? current : new Map<number, ResourceValue>();
        instances.set(record.path.resourceInstanceId!, record.value);
        resources.set(record.path.resourceId!, instances);
      } else resources.set(record.path.resourceId!, record.value);
    }
  }

  private execute(target: Lwm2mPath, args: string): OutgoingResponse {
    const resource = this.instances(target).get(target.instanceId!)!.get(target.resourceId!);
    if (resource === undefined) throw new Refusal(ResponseCode.NotFound, `no resource ${target}`);
    if (typeof resource !== 'function') throw new Refusal(ResponseCode.MethodNotAllowed, `${target} is not executable`);
    const refusal: unknown = resource(args);
    // Handlers written in JavaScript may return anything; only a {code, reason} refuses.
    if (isRefusal(refusal)) throw new Refusal(refusal.code, refusal.reason);
    return { code: ResponseCode.Changed };
  }

  private create(records: ContentRecord[], target: Lwm2mPath): OutgoingResponse {
    const instances = this.instances(target);
    let instanceId = records[0]?.path.instanceId ?? 0;
    if (records.length === 0) while (instances.has(instanceId)) instanceId++;
    if (instances.has(instanceId)) throw new Refusal(ResponseCode.BadRequest, `instance ${target}/${instanceId} already exists`);
    instances.set(instanceId, this.instanceFactories.get(target.objectId!)?.(instanceId) ?? new Map());
    this.write(records, target, false);
    return { code: ResponseCode.Created, options: pathOptions(OptionNumber.LocationPath, `${target}/${instanceId}`) };
  }

  private discover(target: Lwm2mPath, queries: string[]): OutgoingResponse {
    if (target.isRoot()) return this.discoverRoot();
    const links: Link[] = [];
    const add = (path: Lwm2mPath) => links.push({ path: path.toString(), attributes: { ...(this.attributes.get(path.toString()) ?? {}) } });
    const depthQuery = queries.find((q) => q.startsWith('depth='));
    const maxLength = depthQuery ? target.length + Number(depthQuery.slice(6)) : Math.max(3, target.length + 1);
    add(target);
    const instances = this.instances(target);
    for (const [instanceId, resources] of instances) {
      if (target.instanceId !== undefined && instanceId !== target.instanceId) continue;
      const instancePath = Lwm2mPath.of(target.objectId!, instanceId);
      if (!target.isInstance() && !target.isResource() && maxLength >= 2) add(instancePath);
      for (const [resourceId, resource] of resources) {
        if (target.resourceId !== undefined && resourceId !== target.resourceId) continue;
        const resourcePath = instancePath.child(resourceId);
        if (!target.isResource() && maxLength >= 3) {
          links.push({ path: resourcePath.toString(), attributes: { ...(resource instanceof Map ? { dim: String(resource.size) } : {}), ...(this.attributes.get(resourcePath.toString()) ?? {}) } });
        }
        if (resource instanceof Map && maxLength >= 4) for (const id of resource.keys()) add(resourcePath.child(id));
      }
    }
    return {
      code: ResponseCode.Content,
      options: [uintOptionOf(OptionNumber.ContentFormat, ContentFormat.LinkFormat)],
      payload: Buffer.from(formatLinkFormat(links), 'utf8'),
    };
  }

  /**
   * Bootstrap-Discover of "/": the LwM2M version and every object instance,
   * with the short server id of each server account and the URI of its
   * Security instance (LwM2M 1.1 section 5.2.7.3); the bootstrap account has no ssid.
   */
  private discoverRoot(): OutgoingResponse {
    const links: Link[] = [{ path: '/', attributes: { lwm2m: this.options.lwm2mVersion ?? '1.1' } }];
    for (const [objectId, instances] of this.objects) {
      if (instances.size === 0) links.push({ path: `/${objectId}`, attributes: {} });
      for (const [instanceId, resources] of instances) {
        const attributes: Record<string, string> = {};
        const ssid = objectId === 0 ? (resources.get(1) === true ? undefined : resources.get(10)) : objectId === 1 ? resources.get(0) : undefined;
        if (typeof ssid === 'number') attributes.ssid = String(ssid);
        if (objectId === 0 && typeof ssid === 'number' && typeof resources.get(0) === 'string') attributes.uri = resources.get(0) as string;
        links.push({ path: `/${objectId}/${instanceId}`, attributes });
      }
    }
    return {
      code: ResponseCode.Content,
      options: [uintOptionOf(OptionNumber.ContentFormat, ContentFormat.LinkFormat)],
      payload: Buffer.from(formatLinkFormat(links), 'utf8'),
    };
  }

  private writeAttributes(target: Lwm2mPath, queries: string[]): OutgoingResponse {
    this.instances(target);
    const current = { ...(this.attributes.get(target.toString()) ?? {}) };
    for (const [name, value] of Object.entries(this.parseAttributes(queries))) {
      if (value === '') delete current[name];
      else current[name] = value;
    }
    this.attributes.set(target.toString(), current);
    return { code: ResponseCode.Changed };
  }

  /** Notification attributes from a query, as the client's LwM2M version knows them ("" for one without value: removed). */
  private parseAttributes(queries: string[]): Record<string, string> {
    const version = this.options.lwm2mVersion ?? '1.1';
    const known = ['pmin', 'pmax', 'gt', 'lt', 'st', ...(version === '1.0' ? [] : ['epmin', 'epmax']), ...(version === '1.2' ? ['edge', 'con', 'hqmax'] : [])];
    const attributes: Record<string, string> = {};
    for (const query of queries) {
      const [name, value = ''] = query.split('=');
      if (!known.includes(name)) throw new Refusal(ResponseCode.BadRequest, `unknown attribute ${name}`);
      if ((name === 'edge' || name === 'con') && value !== '' && value !== '0' && value !== '1') throw new Refusal(ResponseCode.BadRequest, `${name} must be 0 or 1`);
      if (value !== '' && !/^-?\d+(\.\d+)?$/.test(value)) throw new Refusal(ResponseCode.BadRequest, `${name}=${value} is not a number`);
      attributes[name] = value;
    }
    return attributes;
  }
}
