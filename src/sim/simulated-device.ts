import { ContentFormat, Method, OptionNumber, ResponseCode, TransmissionParameters, formatCode } from '../lib/coap/codes';
import { CoapEndpoint, IncomingRequest, OutgoingResponse, describeResponse, diagnostic } from '../lib/coap/endpoint';
import type { CoapMessage } from '../lib/coap/message';
import { pathOptions, queryOptions, stringOptions, uintOptionOf } from '../lib/coap/options';
import type { Peer } from '../lib/coap/peer';
import { Link, formatLinkFormat } from '../lib/lwm2m/link-format';
import { ObjectTree, Resource, defaultObjectTree, formatText, parseText } from './object-tree';

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
  /** Local address to bind (default: loopback of the server's family). */
  address?: string;
  transmission?: Partial<TransmissionParameters>;
  /** Sends an Update before the lifetime runs out, as a real client does. */
  autoUpdate?: boolean;
}

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

/**
 * A simulated LwM2M client on a real UDP socket: registers, updates and
 * de-registers, and answers the server's requests from its object tree.
 */
export class SimulatedDevice {
  readonly objects: ObjectTree;
  /** Requests the server sent to this device, newest last. */
  readonly received: IncomingRequest[] = [];
  private readonly endpoint: CoapEndpoint;
  private location?: string;
  private updateTimer?: NodeJS.Timeout;

  constructor(readonly options: SimulatedDeviceOptions) {
    this.objects = options.objects ?? defaultObjectTree(options.endpoint);
    const address = options.address ?? (options.server.address.includes(':') ? '::1' : '127.0.0.1');
    this.endpoint = new CoapEndpoint({ address, port: 0, transmission: options.transmission }, (request) => this.answer(request));
  }

  get registrationLocation(): string | undefined {
    return this.location;
  }

  get localAddress(): Peer | undefined {
    return this.endpoint.address;
  }

  async start(): Promise<Peer> {
    return this.endpoint.listen();
  }

  async stop(): Promise<void> {
    clearTimeout(this.updateTimer);
    await this.endpoint.close();
  }

  /** The link-format payload of Register: root link with content formats, then every object instance. */
  objectLinks(): string {
    const root = this.options.rootPath ?? '/';
    const prefix = root === '/' ? '' : root;
    const links: Link[] = [{ path: root, attributes: { rt: 'oma.lwm2m', ct: String(ContentFormat.TextPlain) } }];
    for (const [objectId, instances] of this.objects) {
      if (objectId === 0) continue; // the Security object is never announced
      if (instances.size === 0) links.push({ path: `${prefix}/${objectId}`, attributes: {} });
      for (const instanceId of instances.keys()) links.push({ path: `${prefix}/${objectId}/${instanceId}`, attributes: {} });
    }
    return formatLinkFormat(links);
  }

  async register(extraQuery: Record<string, string | true> = {}): Promise<string> {
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

  /** Sends any request to the server; for tests of malformed or unusual requests. */
  send(
    method: number,
    path: string,
    request: { query?: Record<string, string | number | true | undefined>; payload?: Buffer; contentFormat?: number },
  ): Promise<CoapMessage> {
    const options = [...pathOptions(OptionNumber.UriPath, path), ...queryOptions(request.query ?? {})];
    if (request.contentFormat !== undefined) options.push(uintOptionOf(OptionNumber.ContentFormat, request.contentFormat));
    return this.endpoint.request(this.options.server, { code: method, options, payload: request.payload });
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
    const segments = request.path.split('/').filter((segment) => segment.length > 0);
    const ids = segments.map(Number);
    if (ids.some((id) => !Number.isInteger(id) || id < 0 || id > 65535) || ids.length === 0 || ids.length > 3) {
      return diagnostic(ResponseCode.NotFound, `no object at ${request.path}`);
    }
    const [objectId, instanceId, resourceId] = ids;
    const instances = this.objects.get(objectId);
    const resources = instanceId === undefined ? undefined : instances?.get(instanceId);
    if (!instances || (instanceId !== undefined && !resources)) return diagnostic(ResponseCode.NotFound, `no object at ${request.path}`);
    if (resourceId !== undefined && !resources?.has(resourceId)) return diagnostic(ResponseCode.NotFound, `no resource at ${request.path}`);

    switch (request.method) {
      case Method.GET:
        if (resourceId === undefined || !resources) return diagnostic(ResponseCode.NotAcceptable, 'only single resources are readable as text');
        return this.read(resources.get(resourceId)!);
      case Method.PUT:
        if (resourceId === undefined || !resources) return diagnostic(ResponseCode.MethodNotAllowed, 'only single resources are writable as text');
        try {
          resources.set(resourceId, parseText(request.payload.toString('utf8'), resources.get(resourceId)));
        } catch (error) {
          return diagnostic(ResponseCode.BadRequest, (error as Error).message);
        }
        return { code: ResponseCode.Changed };
      case Method.POST: {
        const target = resourceId === undefined ? undefined : resources?.get(resourceId);
        if (typeof target !== 'function') return diagnostic(ResponseCode.MethodNotAllowed, `${request.path} is not executable`);
        target(request.payload.toString('utf8'));
        return { code: ResponseCode.Changed };
      }
      case Method.DELETE:
        if (instanceId === undefined || resourceId !== undefined) return diagnostic(ResponseCode.MethodNotAllowed, 'only instances can be deleted');
        instances.delete(instanceId);
        return { code: ResponseCode.Deleted };
      default:
        return diagnostic(ResponseCode.MethodNotAllowed, 'method not supported');
    }
  }

  private read(value: Resource): OutgoingResponse {
    if (typeof value === 'function') return diagnostic(ResponseCode.MethodNotAllowed, 'resource is executable, not readable');
    return {
      code: ResponseCode.Content,
      options: [uintOptionOf(OptionNumber.ContentFormat, ContentFormat.TextPlain)],
      payload: Buffer.from(formatText(value), 'utf8'),
    };
  }
}
