import { TypedEmitter } from '../typed-emitter';
import type { Lwm2mServer } from '../lwm2m/server';
import type { Registration } from '../lwm2m/registration';
import { DeviceRequestError } from '../lwm2m/device-client';
import { ReadRequest } from '../lwm2m/requests/read';
import { WriteRequest } from '../lwm2m/requests/write';
import { ExecuteRequest } from '../lwm2m/requests/execute';
import { ObserveRequest } from '../lwm2m/requests/observe';
import type { NotificationEvent, ObservationListener } from '../lwm2m/observations';
import { payloadToRecords, recordsToPayload } from '../content/payload';
import { ContentError, ContentRecord } from '../content/values';
import { Lwm2mPath, PathError } from '../model/path';
import { Onem2mClient, Onem2mClientOptions, Onem2mResponse, ResourceType, ResponseStatus } from './http-binding';
import { MirrorQueue, MirrorTask } from './mirror-queue';
import {
  aeIdOf,
  aeResource,
  aeUpdate,
  container,
  encapsulatedInstance,
  endpointResourceName,
  jsonInstance,
  nodeResource,
  nodeUpdate,
  objectContainer,
  subscription,
  valueInstance,
} from './resources';
import { RegistrationOperation, describeOutcome } from './response-codes';

export type InterworkingMode = 'transparent' | 'semantic' | 'both';

export interface IpeOptions extends Onem2mClientOptions {
  /** Transparent: device payloads as they came; semantic: a container per resource with decoded values; or both (default transparent). */
  mode?: InterworkingMode;
  /** Where the CSE delivers the notifications of the command subscriptions; without one, no commands. */
  notificationUrl?: string;
  /** Paths the IPE observes on every device, mirroring each notification. */
  observe?: string[];
  /** contentInstances kept per container (mni, default 10). */
  maxInstances?: number;
  /** CSE operations held while the CSE is unreachable (default 100,000). */
  maxQueued?: number;
}

/** A command a oneM2M application wrote into a device's commands container. */
export interface Command {
  id?: string;
  operation: 'read' | 'write' | 'execute';
  path: string;
  value?: unknown;
  arguments?: unknown;
}

export interface CommandResult {
  id?: string;
  operation?: string;
  path?: string;
  /** The device's CoAP code, such as "2.05". */
  code?: string;
  value?: unknown;
  error?: string;
}

export type IpeEvents = {
  /** A device's registration, update, de-registration or values reached the CSE. */
  mirrored: [endpoint: string, what: string];
  /** The CSE refused an operation for good, with the reason. */
  failed: [endpoint: string, what: string, reason: string];
  /** A command from a oneM2M application ran against a device. */
  command: [endpoint: string, result: CommandResult];
  /** The CSE stopped or started answering. */
  reachability: [reachable: boolean, reason?: string];
};

/** What the IPE created for one endpoint. */
interface Mirror {
  aeId: string;
  aeRn: string;
  nodeRn: string;
  /** Containers below the AE, as "3", "3/0", "3/0/9", "commands"... */
  containers: Set<string>;
  subscription?: { ri?: string; path: string };
}

/** The CSE answered something other than what the step needs: not retried. */
class CseRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CseRefusedError';
  }
}

const COMMANDS = 'commands';
const RESULTS = 'results';
const SEND = 'send';
const SUBSCRIPTION = 'lwm2m-ipe';

/**
 * The LwM2M Interworking Proxy Entity of oneM2M TS-0014: mirrors the
 * endpoints of an LwM2M server into a CSE over the HTTP binding, as <node>,
 * <AE> and <container> resources, with device data as <contentInstance>s,
 * and turns commands written by oneM2M applications into LwM2M operations.
 */
export class Lwm2mIpe extends TypedEmitter<IpeEvents> {
  readonly client: Onem2mClient;
  private readonly queue: MirrorQueue;
  private readonly mirrors = new Map<string, Mirror>();
  private readonly mode: InterworkingMode;
  private readonly maxInstances: number;
  private readonly observePaths: Lwm2mPath[];
  private detach: () => void = () => undefined;
  private readonly observationListener: ObservationListener;
  private stopped = false;

  constructor(
    private readonly server: Lwm2mServer,
    private readonly options: IpeOptions,
  ) {
    super();
    this.client = new Onem2mClient(options);
    this.mode = options.mode ?? 'transparent';
    this.maxInstances = options.maxInstances ?? 10;
    this.observePaths = (options.observe ?? []).map((path) => Lwm2mPath.parse(path));
    this.queue = new MirrorQueue(
      {
        failed: (task, error) => this.emit('failed', task.endpoint, task.what, error.message),
        done: (task) => this.emit('mirrored', task.endpoint, task.what),
        reachability: (reachable, reason) => this.emit('reachability', reachable, reason),
      },
      options.maxQueued,
    );
    this.observationListener = {
      notify: (event) => this.mirrorNotification(event),
      error: () => undefined,
      ended: () => undefined,
    };
  }

  get queued(): number {
    return this.queue.length;
  }

  get reachable(): boolean {
    return this.queue.reachable;
  }

  get mirrored(): number {
    return this.mirrors.size;
  }

  /** Mirrors the devices registered now, then follows the server's events. */
  start(): void {
    const server = this.server;
    this.detach = server.subscribe({
      registered: (registration) => this.onRegistered(registration),
      updated: (registration, changes) => {
        const copy = snapshot(registration);
        this.enqueue(registration.endpoint, 'update', () => this.update(copy, [...changes]));
      },
      deregistered: (registration) => this.enqueue(registration.endpoint, 'deregister', () => this.remove(registration)),
      expired: (registration) => this.enqueue(registration.endpoint, 'expire', () => this.remove(registration)),
      send: (registration, records, format, raw) =>
        this.enqueue(registration.endpoint, 'send', () => this.storeValues(registration.endpoint, Lwm2mPath.ROOT, records, raw, format, [SEND])),
    });
    for (const registration of server.registrations.all()) this.onRegistered(registration);
  }

  /** Stops following the server; queued operations are dropped (the next start mirrors the registered devices again). */
  stop(): void {
    this.stopped = true;
    this.detach();
    this.queue.stop();
    for (const observation of this.server.observations.list()) {
      if (observation.listener === this.observationListener) void this.server.observations.cancel(observation);
    }
  }

  /** Resolves when every queued CSE operation is done. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /**
   * A notification from the CSE (the HTTP body): subscription verification,
   * or a command contentInstance. Returns the oneM2M status to answer with.
   */
  handleNotification(body: unknown): number {
    const notification = (body as { 'm2m:sgn'?: Record<string, unknown> } | undefined)?.['m2m:sgn'];
    if (!notification || typeof notification !== 'object') return ResponseStatus.BadRequest;
    if (notification.vrq === true) return ResponseStatus.OK;
    const reference = String(notification.sur ?? '');
    const endpoint = [...this.mirrors.entries()].find(([, mirror]) => mirror.subscription && (reference === mirror.subscription.ri || reference.endsWith(mirror.subscription.path)))?.[0];
    if (!endpoint) return ResponseStatus.NotFound;
    const event = notification.nev as { rep?: Record<string, unknown> } | undefined;
    const instance = event?.rep?.['m2m:cin'] as { con?: unknown } | undefined;
    if (!instance) return ResponseStatus.OK; // other events (deletion of the subscription) need no action
    void this.runCommand(endpoint, instance.con);
    return ResponseStatus.OK;
  }

  private onRegistered(registration: Registration): void {
    const copy = snapshot(registration);
    this.enqueue(registration.endpoint, 'register', () => this.register(copy));
    for (const path of this.observePaths) {
      const observed = this.server.observations
        .list(registration.endpoint)
        .some((observation) => observation.listener === this.observationListener && observation.paths.join() === path.toString());
      if (observed) continue;
      this.server.observe(registration.endpoint, new ObserveRequest(path), this.observationListener).then(
        ({ first }) => this.mirrorNotification(first),
        (error: Error) => this.emit('failed', registration.endpoint, `observe ${path}`, error.message),
      );
    }
  }

  private enqueue(endpoint: string, what: string, run: () => Promise<void>): void {
    if (this.stopped) return;
    const task: MirrorTask = { endpoint, what, run };
    this.queue.push(task);
  }

  private mirrorNotification(event: NotificationEvent): void {
    const observation = event.observation;
    const path = Lwm2mPath.parse(observation.paths[0]);
    this.enqueue(observation.endpoint, 'notification', () =>
      this.storeValues(observation.endpoint, path, event.records, event.raw, event.contentFormat),
    );
  }

  // Register, update, de-register

  private async register(registration: Registration): Promise<void> {
    const name = endpointResourceName(registration.endpoint);
    const mirror: Mirror = { aeId: aeIdOf(registration.endpoint), aeRn: name, nodeRn: `${name}-node`, containers: new Set() };
    this.mirrors.set(registration.endpoint, mirror);
    const node = await this.createReplacing([mirror.nodeRn], () => this.client.create([], ResourceType.Node, nodeResource(registration, mirror.nodeRn)), this.client.originator);
    const nodeRi = (node.body?.['m2m:nod'] as { ri?: string } | undefined)?.ri;
    // TS-0014 6.2.2.4: a Register for an endpoint whose AE exists counts as a De-register first.
    await this.createReplacing([mirror.aeRn], () => this.client.create([], ResourceType.AE, aeResource(registration, nodeRi), mirror.aeId), mirror.aeId, 'register');
    for (const object of registration.objects) {
      await this.ensureContainer(mirror, [String(object.id)], () => objectContainer(registration, this.server.model, object.id, undefined, this.maxInstances));
      for (const instance of object.instances) {
        await this.ensureContainer(mirror, [String(object.id), String(instance)], () => objectContainer(registration, this.server.model, object.id, instance, this.maxInstances));
      }
    }
    await this.ensureContainer(mirror, [SEND], () => container(SEND, ['LWM2M-Send'], this.maxInstances));
    if (!this.options.notificationUrl) return;
    await this.ensureContainer(mirror, [RESULTS], () => container(RESULTS, ['LWM2M-Command-Results'], this.maxInstances));
    await this.ensureContainer(mirror, [COMMANDS], () => container(COMMANDS, ['LWM2M-Commands'], this.maxInstances));
    const created = await this.client.create([mirror.aeRn, COMMANDS], ResourceType.Subscription, subscription(SUBSCRIPTION, this.options.notificationUrl), mirror.aeId);
    if (created.rsc !== ResponseStatus.Created && created.rsc !== ResponseStatus.Conflict) throw this.refused('create <subscription>', created);
    mirror.subscription = {
      ri: (created.body?.['m2m:sub'] as { ri?: string } | undefined)?.ri,
      path: `/${mirror.aeRn}/${COMMANDS}/${SUBSCRIPTION}`,
    };
  }

  private async update(registration: Registration, changes: string[]): Promise<void> {
    const mirror = this.mirrors.get(registration.endpoint);
    if (!mirror) return this.register(registration);
    const ae = await this.client.update([mirror.aeRn], aeUpdate(registration), mirror.aeId);
    // The CSE lost the AE (it expired there, or the CSE was reset): mirror the device afresh.
    if (ae.rsc === ResponseStatus.NotFound) return this.register(registration);
    if (ae.rsc !== ResponseStatus.Updated) throw this.refused('update <AE>', ae, 'update');
    const node = await this.client.update([mirror.nodeRn], nodeUpdate(registration));
    if (node.rsc !== ResponseStatus.Updated && node.rsc !== ResponseStatus.NotFound) throw this.refused('update <node>', node, 'update');
    if (!changes.includes('objects')) return;
    const wanted = new Set<string>();
    for (const object of registration.objects) {
      wanted.add(String(object.id));
      for (const instance of object.instances) wanted.add(`${object.id}/${instance}`);
    }
    for (const key of [...mirror.containers]) {
      const [objectId, instanceId] = key.split('/');
      if (!/^\d+$/.test(objectId) || wanted.has(instanceId === undefined ? objectId : `${objectId}/${instanceId}`)) continue;
      const deleted = await this.client.delete([mirror.aeRn, ...key.split('/')], mirror.aeId);
      if (deleted.rsc !== ResponseStatus.Deleted && deleted.rsc !== ResponseStatus.NotFound) throw this.refused('delete <container>', deleted, 'deregister');
      for (const other of mirror.containers) if (other === key || other.startsWith(`${key}/`)) mirror.containers.delete(other);
    }
    for (const object of registration.objects) {
      await this.ensureContainer(mirror, [String(object.id)], () => objectContainer(registration, this.server.model, object.id, undefined, this.maxInstances));
      for (const instance of object.instances) {
        await this.ensureContainer(mirror, [String(object.id), String(instance)], () => objectContainer(registration, this.server.model, object.id, instance, this.maxInstances));
      }
    }
  }

  private async remove(registration: Registration): Promise<void> {
    const mirror = this.mirrors.get(registration.endpoint) ?? {
      aeId: aeIdOf(registration.endpoint),
      aeRn: endpointResourceName(registration.endpoint),
      nodeRn: `${endpointResourceName(registration.endpoint)}-node`,
      containers: new Set<string>(),
    };
    this.mirrors.delete(registration.endpoint);
    // Deleting the AE deletes its containers with it.
    const ae = await this.client.delete([mirror.aeRn], mirror.aeId);
    if (ae.rsc !== ResponseStatus.Deleted && ae.rsc !== ResponseStatus.NotFound) throw this.refused('delete <AE>', ae, 'deregister');
    const node = await this.client.delete([mirror.nodeRn]);
    if (node.rsc !== ResponseStatus.Deleted && node.rsc !== ResponseStatus.NotFound) throw this.refused('delete <node>', node, 'deregister');
  }

  /** Creates a resource; one that exists already (4105) is deleted and created again. */
  private async createReplacing(target: string[], create: () => Promise<Onem2mResponse>, originator: string, operation: RegistrationOperation = 'register'): Promise<Onem2mResponse> {
    let created = await create();
    if (created.rsc === ResponseStatus.Conflict) {
      const deleted = await this.client.delete(target, originator);
      if (deleted.rsc !== ResponseStatus.Deleted && deleted.rsc !== ResponseStatus.NotFound) throw this.refused(`replace ${target.join('/')}`, deleted, operation);
      created = await create();
    }
    if (created.rsc !== ResponseStatus.Created) throw this.refused(`create ${target.join('/')}`, created, operation);
    return created;
  }

  private async ensureContainer(mirror: Mirror, path: string[], representation: () => Record<string, unknown>): Promise<void> {
    const key = path.join('/');
    if (mirror.containers.has(key)) return;
    const created = await this.client.create([mirror.aeRn, ...path.slice(0, -1)], ResourceType.Container, representation(), mirror.aeId);
    if (created.rsc !== ResponseStatus.Created && created.rsc !== ResponseStatus.Conflict) throw this.refused(`create <container> ${key}`, created);
    mirror.containers.add(key);
  }

  private refused(step: string, response: Onem2mResponse, operation?: RegistrationOperation): CseRefusedError {
    return new CseRefusedError(`${step}: the CSE answered ${describeOutcome(response.rsc, operation)}`);
  }

  // Values: read results, notifications, Send

  /** Stores device values: the payload itself (transparent), a value per resource (semantic), or both. */
  private async storeValues(endpoint: string, target: Lwm2mPath, records: ContentRecord[], raw: Buffer, contentFormat: number | undefined, containerPath?: string[]): Promise<void> {
    const mirror = this.mirrors.get(endpoint);
    if (!mirror) return;
    if (this.mode !== 'semantic') {
      const where = containerPath ?? (await this.containerFor(mirror, target));
      const paths = containerPath ? records.map((record) => record.path.toString()) : [target.toString()];
      await this.createInstance(mirror, where, encapsulatedInstance(raw, contentFormat, paths));
    }
    if (this.mode === 'transparent') return;
    for (const record of records) {
      if (record.path.length < 3) continue;
      const [objectId, instanceId, resourceId] = [record.path.objectId, record.path.instanceId, record.path.resourceId].map(String);
      await this.ensureContainer(mirror, [objectId], () => objectContainerFallback(objectId));
      await this.ensureContainer(mirror, [objectId, instanceId], () => objectContainerFallback(instanceId));
      const resource = this.server.model.getResource(record.path.objectId, record.path.resourceId as number);
      await this.ensureContainer(mirror, [objectId, instanceId, resourceId], () =>
        container(resourceId, [`LWM2MURI:/${objectId}/${instanceId}/${resourceId}`, ...(resource ? [`LWM2MRN:${resource.name}`] : [])], this.maxInstances),
      );
      await this.createInstance(mirror, [objectId, instanceId, resourceId], valueInstance(record));
    }
  }

  /** The container of the instance (or object) a path is in, created when the registration did not list it. */
  private async containerFor(mirror: Mirror, target: Lwm2mPath): Promise<string[]> {
    const objectId = String(target.objectId);
    await this.ensureContainer(mirror, [objectId], () => objectContainerFallback(objectId));
    if (target.length < 2) return [objectId];
    const instanceId = String(target.instanceId);
    await this.ensureContainer(mirror, [objectId, instanceId], () => objectContainerFallback(instanceId));
    return [objectId, instanceId];
  }

  private async createInstance(mirror: Mirror, path: string[], representation: Record<string, unknown>): Promise<void> {
    const created = await this.client.create([mirror.aeRn, ...path], ResourceType.ContentInstance, representation, mirror.aeId);
    if (created.rsc !== ResponseStatus.Created) throw this.refused(`create <contentInstance> in ${path.join('/')}`, created);
  }

  // Commands

  private async runCommand(endpoint: string, content: unknown): Promise<void> {
    let result: CommandResult;
    let command: Command | undefined;
    try {
      command = parseCommand(content);
      result = await this.execute(endpoint, command);
    } catch (error) {
      if (!(error instanceof ContentError || error instanceof PathError || error instanceof DeviceRequestError)) throw error;
      result = {
        ...(command ? { id: command.id, operation: command.operation, path: command.path } : {}),
        ...(error instanceof DeviceRequestError && error.code ? { code: error.code } : {}),
        error: error.message,
      };
    }
    this.emit('command', endpoint, result);
    this.enqueue(endpoint, 'command result', async () => {
      const mirror = this.mirrors.get(endpoint);
      if (!mirror) return;
      await this.createInstance(mirror, [RESULTS], jsonInstance(result, ['LWM2M-Command-Result', ...(result.path ? [`LWM2MURI:${result.path}`] : [])]));
    });
  }

  private async execute(endpoint: string, command: Command): Promise<CommandResult> {
    const path = Lwm2mPath.parse(command.path);
    const base = { id: command.id, operation: command.operation, path: path.toString() };
    switch (command.operation) {
      case 'read': {
        const response = await this.server.send(endpoint, new ReadRequest(path));
        this.enqueue(endpoint, 'read result', () => this.storeValues(endpoint, path, response.records, response.raw, response.contentFormat));
        return { ...base, code: response.code, value: jsonSafe(recordsToPayload(response.records, path)) };
      }
      case 'write': {
        const response = await this.server.send(endpoint, new WriteRequest(path, payloadToRecords(command.value, path, this.server.model)));
        return { ...base, code: response.code };
      }
      case 'execute': {
        const response = await this.server.send(endpoint, new ExecuteRequest(path, command.arguments ?? ''));
        return { ...base, code: response.code };
      }
    }
  }
}

/** A container for an object or instance the registration did not announce. */
function objectContainerFallback(resourceName: string): Record<string, unknown> {
  return { 'm2m:cnt': { rn: resourceName } };
}

/** A command from a contentInstance's con: JSON text (or an object, for CSEs that parse it). */
export function parseCommand(content: unknown): Command {
  let value = content;
  if (typeof content === 'string') {
    try {
      value = JSON.parse(content);
    } catch {
      throw new ContentError(`the command is not JSON: ${content.slice(0, 80)}`);
    }
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ContentError('the command must be an object such as {"operation":"read","path":"/3/0/9"}');
  const command = value as Record<string, unknown>;
  if (command.operation !== 'read' && command.operation !== 'write' && command.operation !== 'execute') {
    throw new ContentError(`the command's operation must be read, write or execute, not ${JSON.stringify(command.operation)}`);
  }
  if (typeof command.path !== 'string') throw new ContentError('the command needs a path such as "/3/0/9"');
  if (command.id !== undefined && typeof command.id !== 'string' && typeof command.id !== 'number') throw new ContentError('the command id must be text or a number');
  return {
    operation: command.operation,
    path: command.path,
    ...(command.id !== undefined ? { id: String(command.id) } : {}),
    ...(command.value !== undefined ? { value: command.value } : {}),
    ...(command.arguments !== undefined ? { arguments: command.arguments } : {}),
  };
}

/** Opaque values as base64 in JSON results. */
function jsonSafe(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, jsonSafe(inner)]));
  return value;
}

/** A copy of a registration as it was when its event happened (registrations change in place). */
function snapshot(registration: Registration): Registration {
  return {
    ...registration,
    objects: registration.objects.map((object) => ({ ...object, instances: [...object.instances] })),
    contentFormats: [...registration.contentFormats],
  };
}
