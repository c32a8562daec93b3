import { randomBytes } from 'node:crypto';
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
import type { ContentRecord } from '../content/values';
import { Lwm2mPath } from '../model/path';
import { Command, CommandResult, commandId, parseCommand } from './commands';
import { CseRefusedError, Onem2mClient, Onem2mClientOptions, Onem2mResponse, ResourceType, ResponseStatus } from './http-binding';
import { MirrorQueue, MirrorTask, RetryTimes } from './mirror-queue';
import { aeIdOf, endpointOf, nodeNameOf, resourceNameOf } from './names';
import {
  aeResource,
  aeUpdate,
  container,
  encapsulatedInstance,
  ipeLabel,
  jsonInstance,
  nodeResource,
  nodeUpdate,
  objectContainer,
  objectContainerUpdate,
  subscription,
  subscriptionUpdate,
  valueInstance,
} from './resources';
import { RegistrationOperation, describeOutcome, describeStatus } from './response-codes';

export type InterworkingMode = 'transparent' | 'semantic' | 'both';

export interface IpeOptions extends Onem2mClientOptions {
  /** Transparent: device payloads as they came; semantic: a container per resource with decoded values; or both (default transparent). */
  mode?: InterworkingMode;
  /** Where the CSE delivers the notifications of the command subscriptions (a secret per subscription is appended); without one, no commands. */
  notificationUrl?: string;
  /** Paths the IPE observes on every device, mirroring each notification. */
  observe?: string[];
  /** contentInstances kept per container (mni, default 10). */
  maxInstances?: number;
  /** CSE operations held while the CSE is unreachable (default 100,000). */
  maxQueued?: number;
  /**
   * Names this IPE in a label of the AEs and nodes it creates
   * ("LWM2M-IPE:<name>", default the originator): at start, those of
   * endpoints that are no longer registered are deleted.
   */
  name?: string;
  /** The CSE-ID notifications must come from; default the cseID of the CSE base. */
  cseId?: string;
  /** How long to wait before trying again (tests shorten it). */
  retry?: RetryTimes;
}

/** A notification as it reached Node-RED's HTTP server. */
export interface NotificationRequest {
  /** The last segment of the notification URL: the subscription's secret. */
  secret?: string;
  /** X-M2M-Origin. */
  originator?: string;
  /** X-M2M-RI. */
  requestId?: string;
  body: unknown;
}

/** Where a failure happened: the CSE refused, or the device did not do what was asked. */
export type FailureSource = 'cse' | 'device';

export type IpeEvents = {
  /** A device's registration, update, de-registration or values reached the CSE. */
  mirrored: [endpoint: string, what: string];
  /** An operation given up for good, with the reason; the endpoint is empty for the CSE's own problems. */
  failed: [endpoint: string, what: string, reason: string, source: FailureSource];
  /** A command from a oneM2M application ran against a device. */
  command: [endpoint: string, result: CommandResult];
  /** The CSE stopped or started answering. */
  reachability: [reachable: boolean, reason?: string];
};

/** What the IPE shows on its status. */
export interface IpeHealth {
  reachable: boolean;
  /** Devices whose AE exists in the CSE. */
  mirrored: number;
  /** CSE operations waiting or running. */
  queued: number;
  /** Devices (and the CSE itself) whose last operation the CSE refused. */
  refused: number;
  /** The latest refusal, such as "4004 Not Found". */
  reason?: string;
}

/** What the IPE keeps of one endpoint's resources in the CSE. */
interface Mirror {
  endpoint: string;
  aeId: string;
  aeRn: string;
  nodeRn: string;
  /** Whether the AE exists in the CSE: only then the device counts as mirrored and its values are stored. */
  aeExists: boolean;
  /** Containers below the AE, as "3", "3/0", "3/0/5700", "commands"... */
  containers: Set<string>;
  /** The secret of the command subscription's notification URL. */
  secret?: string;
  /** Command contentInstances already run (the CSE may notify one twice). */
  commandsRun: string[];
}

/** A container to create when missing, with the path below the AE. */
interface ContainerStep {
  path: string[];
  representation: () => Record<string, unknown>;
}

const COMMANDS = 'commands';
const RESULTS = 'results';
const SEND = 'send';
const SUBSCRIPTION = 'lwm2m-ipe';
/** The lane of the CSE's own operations (probe, clean-up), which no endpoint name can take. */
const CSE_LANE = '';
const COMMANDS_REMEMBERED = 32;
const DISCOVERY_PAGE = 500;
const DISCOVERY_PAGES = 200;
const SECRET = /^[A-Za-z0-9_-]{22}$/;

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
  /** Notification URL secrets → endpoint. */
  private readonly secrets = new Map<string, string>();
  /** Devices (and CSE_LANE) whose last operation was refused → the oneM2M status, or the reason. */
  private readonly refusals = new Map<string, string>();
  private readonly mode: InterworkingMode;
  private readonly maxInstances: number;
  private readonly observePaths: Lwm2mPath[];
  private readonly name: string;
  private cseId?: string;
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
    this.name = options.name ?? options.originator;
    this.cseId = options.cseId;
    this.queue = new MirrorQueue(
      {
        failed: (task, error) => {
          this.refusals.set(task.endpoint, error instanceof CseRefusedError ? describeStatus(error.rsc) : error.message);
          this.emit('failed', task.endpoint, task.what, error.message, 'cse');
        },
        done: (task) => {
          this.refusals.delete(task.endpoint);
          if (task.endpoint !== CSE_LANE) this.emit('mirrored', task.endpoint, task.what);
        },
        reachability: (reachable, reason) => this.emit('reachability', reachable, reason),
      },
      options.maxQueued,
      options.retry,
    );
    this.observationListener = {
      notify: (event) => this.mirrorNotification(event),
      error: () => undefined,
      ended: () => undefined,
    };
  }

  /** CSE operations waiting or running. */
  get queued(): number {
    return this.queue.length;
  }

  health(): IpeHealth {
    let mirrored = 0;
    for (const mirror of this.mirrors.values()) if (mirror.aeExists) mirrored++;
    const reasons = [...this.refusals.values()];
    return { reachable: this.queue.reachable, mirrored, queued: this.queue.length, refused: reasons.length, reason: reasons.at(-1) };
  }

  /**
   * Checks the CSE base, takes over what a previous run left in the CSE for
   * the devices registered now, deletes the AEs of endpoints that are gone,
   * then follows the server's events.
   */
  start(): void {
    const server = this.server;
    this.detach = server.subscribe({
      registered: (registration) => this.onRegistered(registration, 'register'),
      updated: (registration, changes) => {
        const copy = snapshot(registration);
        this.enqueue(registration.endpoint, 'update', () => this.update(copy, [...changes]));
      },
      deregistered: (registration) => this.enqueue(registration.endpoint, 'deregister', () => this.remove(registration.endpoint)),
      expired: (registration) => this.enqueue(registration.endpoint, 'expire', () => this.remove(registration.endpoint)),
      send: (registration, records, format, raw) =>
        this.enqueue(registration.endpoint, 'send', () => this.storeValues(registration.endpoint, Lwm2mPath.ROOT, records, raw, format, [SEND])),
    });
    this.enqueue(CSE_LANE, 'check the CSE base', () => this.probe());
    this.enqueue(CSE_LANE, 'find the AEs of gone endpoints', () => this.findStale());
    for (const registration of server.registrations.all()) this.onRegistered(registration, 'adopt');
  }

  /** Stops following the server; queued operations are dropped (the next start takes over what is in the CSE). */
  stop(): void {
    this.stopped = true;
    this.detach();
    this.queue.stop();
    this.client.close();
    for (const observation of this.server.observations.list()) {
      if (observation.listener === this.observationListener) void this.server.observations.cancel(observation);
    }
  }

  /** Resolves when every queued CSE operation is done. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /**
   * A notification from the CSE: subscription verification, or a command
   * contentInstance. Only the CSE knows the subscription's secret and sends
   * from its CSE-ID; even so, a command runs only as the CSE has it (read
   * back before it runs). Returns the oneM2M status to answer with.
   */
  handleNotification(request: NotificationRequest): number {
    if (!request.originator || !request.requestId) return ResponseStatus.BadRequest;
    const endpoint = request.secret === undefined ? undefined : this.secrets.get(request.secret);
    if (endpoint === undefined) return ResponseStatus.NotFound;
    if (!this.cseId || !sameCse(request.originator, this.cseId)) return ResponseStatus.OriginatorHasNoPrivilege;
    const notification = (request.body as { 'm2m:sgn'?: unknown } | undefined)?.['m2m:sgn'];
    if (!notification || typeof notification !== 'object') return ResponseStatus.BadRequest;
    const { vrq, sud, nev } = notification as { vrq?: unknown; sud?: unknown; nev?: { rep?: Record<string, unknown> } };
    if (vrq === true) return ResponseStatus.OK;
    const mirror = this.mirrors.get(endpoint);
    if (sud === true && mirror) {
      // The CSE deleted the subscription: made again on the device's next Update.
      this.forgetSecret(mirror);
      return ResponseStatus.OK;
    }
    const instance = nev?.rep?.['m2m:cin'] as { rn?: unknown } | undefined;
    if (!instance || typeof instance.rn !== 'string') return ResponseStatus.OK; // other events need no action
    const name = instance.rn;
    this.enqueue(endpoint, 'command', () => this.readCommand(endpoint, name));
    return ResponseStatus.OK;
  }

  private onRegistered(registration: Registration, how: 'register' | 'adopt'): void {
    const copy = snapshot(registration);
    this.enqueue(registration.endpoint, how, () => (how === 'adopt' ? this.adopt(copy) : this.register(copy)));
    for (const path of this.observePaths) {
      const observed = this.server.observations
        .list(registration.endpoint)
        .some((observation) => observation.listener === this.observationListener && observation.paths.join() === path.toString());
      if (observed) continue;
      this.server.observe(registration.endpoint, new ObserveRequest(path), this.observationListener).then(
        ({ first }) => this.mirrorNotification(first),
        (error: Error) => this.emit('failed', registration.endpoint, `observe ${path}`, error.message, 'device'),
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
    this.enqueue(observation.endpoint, 'notification', () => this.storeValues(observation.endpoint, path, event.records, event.raw, event.contentFormat));
  }

  // The CSE itself

  /** Reads the CSE base: it must exist, and its CSE-ID is where notifications come from. */
  private async probe(): Promise<void> {
    const base = await this.client.retrieve([]);
    if (base.rsc !== ResponseStatus.OK) throw this.refused(`retrieve the CSE base ${this.client.urlOf([]).pathname}`, base);
    const csi = (base.body?.['m2m:cb'] as { csi?: unknown } | undefined)?.csi;
    if (!this.options.cseId && typeof csi === 'string') this.cseId = csi;
  }

  /** Finds the AEs and nodes this IPE made for endpoints that are no longer registered, and deletes them. */
  private async findStale(): Promise<void> {
    const endpoints = new Set<string>();
    for (const [type, suffix] of [
      [ResourceType.AE, ''],
      [ResourceType.Node, '_n'],
    ] as const) {
      for (const name of await this.discover(type)) {
        const endpoint = name.endsWith(suffix) ? endpointOf(name.slice(0, name.length - suffix.length)) : undefined;
        if (endpoint !== undefined && !this.server.registrations.getByEndpoint(endpoint)) endpoints.add(endpoint);
      }
    }
    for (const endpoint of endpoints) this.enqueue(endpoint, 'delete stale', () => this.removeStale(endpoint));
  }

  /** The names of the resources of a type this IPE labelled, page by page. */
  private async discover(type: number): Promise<string[]> {
    const names = new Set<string>();
    for (let page = 0; page < DISCOVERY_PAGES; page++) {
      const answer = await this.client.retrieve([], undefined, {
        fu: 1,
        drt: 1,
        ty: type,
        // The label twice: the same filter for any CSE, and Mobius (2.4) only matches labels given as a list.
        lbl: [ipeLabel(this.name), ipeLabel(this.name)],
        lim: DISCOVERY_PAGE,
        ...(page > 0 ? { ofst: page * DISCOVERY_PAGE } : {}),
      });
      if (answer.rsc !== ResponseStatus.OK) throw this.refused(`discover the IPE's resources (ty=${type})`, answer);
      const uris = answer.body?.['m2m:uril'];
      const found = Array.isArray(uris) ? uris.filter((uri): uri is string => typeof uri === 'string') : [];
      const before = names.size;
      for (const uri of found) names.add(uri.split('/').at(-1) as string);
      if (found.length < DISCOVERY_PAGE || names.size === before) break;
    }
    return [...names];
  }

  private async removeStale(endpoint: string): Promise<void> {
    // Registered again since it was found: the registration's own task takes over.
    if (this.mirrors.has(endpoint) || this.server.registrations.getByEndpoint(endpoint)) return;
    await this.deleteResources(newMirror(endpoint));
  }

  // Register, update, de-register

  /** A Register: TS-0014 6.2.2.4 counts a Register of an endpoint whose AE exists as a De-register first. */
  private async register(registration: Registration): Promise<void> {
    const mirror = this.track(registration.endpoint);
    const node = await this.createReplacing([mirror.nodeRn], () => this.client.create([], ResourceType.Node, nodeResource(registration, this.name)), this.client.originator);
    const nodeRi = (node.body?.['m2m:nod'] as { ri?: string } | undefined)?.ri;
    await this.createReplacing([mirror.aeRn], () => this.client.create([], ResourceType.AE, aeResource(registration, this.name, nodeRi), mirror.aeId), mirror.aeId, 'register');
    mirror.aeExists = true;
    await this.syncContainers(mirror, registration, false);
    await this.syncSubscription(mirror);
  }

  /**
   * A device registered before this start: its AE, node, containers and
   * subscription are taken over where they exist (values and the
   * applications' subscriptions stay), made where they are missing.
   */
  private async adopt(registration: Registration): Promise<void> {
    const mirror = this.track(registration.endpoint);
    const ae = await this.client.retrieve([mirror.aeRn], mirror.aeId);
    const aei = (ae.body?.['m2m:ae'] as { aei?: unknown } | undefined)?.aei;
    if (ae.rsc === ResponseStatus.NotFound || (ae.rsc === ResponseStatus.OK && aei !== undefined && aei !== mirror.aeId)) return this.register(registration);
    if (ae.rsc !== ResponseStatus.OK) throw this.refused('retrieve <AE>', ae, 'register');
    const nodeRi = await this.syncNode(mirror, registration);
    const updated = await this.client.update([mirror.aeRn], aeUpdate(registration, this.name, nodeRi), mirror.aeId);
    if (updated.rsc !== ResponseStatus.Updated) throw this.refused('update <AE>', updated, 'register');
    mirror.aeExists = true;
    for (const name of await this.discoverContainers(mirror)) mirror.containers.add(name);
    await this.syncContainers(mirror, registration, true);
    await this.syncSubscription(mirror);
  }

  private async update(registration: Registration, changes: string[]): Promise<void> {
    const mirror = this.mirrors.get(registration.endpoint);
    // Never mirrored (refused before, or the CSE was away): try again.
    if (!mirror?.aeExists) return this.register(registration);
    const ae = await this.client.update([mirror.aeRn], aeUpdate(registration, this.name), mirror.aeId);
    // The CSE lost the AE (it expired there, or the CSE was reset): mirror the device afresh.
    if (ae.rsc === ResponseStatus.NotFound) return this.register(registration);
    if (ae.rsc !== ResponseStatus.Updated) throw this.refused('update <AE>', ae, 'update');
    await this.syncNode(mirror, registration, true);
    await this.syncContainers(mirror, registration, true, changes.includes('objects'));
    await this.syncSubscription(mirror);
  }

  private async remove(endpoint: string): Promise<void> {
    const mirror = this.mirrors.get(endpoint) ?? newMirror(endpoint);
    this.mirrors.delete(endpoint);
    this.forgetSecret(mirror);
    await this.deleteResources(mirror);
  }

  /** Deletes a device's AE (with its containers) and node. */
  private async deleteResources(mirror: Mirror): Promise<void> {
    mirror.aeExists = false;
    const ae = await this.client.delete([mirror.aeRn], mirror.aeId);
    if (ae.rsc !== ResponseStatus.Deleted && ae.rsc !== ResponseStatus.NotFound) throw this.refused('delete <AE>', ae, 'deregister');
    const node = await this.client.delete([mirror.nodeRn]);
    if (node.rsc !== ResponseStatus.Deleted && node.rsc !== ResponseStatus.NotFound) throw this.refused('delete <node>', node, 'deregister');
  }

  /** Starts tracking an endpoint's resources afresh. */
  private track(endpoint: string): Mirror {
    const previous = this.mirrors.get(endpoint);
    if (previous) this.forgetSecret(previous);
    const mirror = newMirror(endpoint);
    this.mirrors.set(endpoint, mirror);
    return mirror;
  }

  /**
   * Updates the device's <node>; one the CSE lost is made again and the AE
   * linked to it. Returns the new node's id when it made one.
   */
  private async syncNode(mirror: Mirror, registration: Registration, relink = false): Promise<string | undefined> {
    const updated = await this.client.update([mirror.nodeRn], nodeUpdate(registration, this.name));
    if (updated.rsc === ResponseStatus.Updated) return undefined;
    if (updated.rsc !== ResponseStatus.NotFound) throw this.refused('update <node>', updated, 'update');
    const created = await this.client.create([], ResourceType.Node, nodeResource(registration, this.name));
    if (created.rsc !== ResponseStatus.Created) throw this.refused('create <node>', created, 'update');
    const nodeRi = (created.body?.['m2m:nod'] as { ri?: string } | undefined)?.ri;
    if (relink && nodeRi) {
      const linked = await this.client.update([mirror.aeRn], { 'm2m:ae': { nl: nodeRi } }, mirror.aeId);
      if (linked.rsc !== ResponseStatus.Updated) throw this.refused('link <AE> to <node>', linked, 'update');
    }
    return nodeRi;
  }

  /**
   * Brings the object and instance containers in line with the registration
   * (TS-0014 6.3.2.2): deletes those of objects it no longer lists (when the
   * object list changed), makes the missing ones, refreshes the labels and
   * expirationTime of existing ones, and makes the IPE's own containers.
   */
  private async syncContainers(mirror: Mirror, registration: Registration, refresh: boolean, objectsChanged = refresh): Promise<void> {
    const wanted = new Map<string, [number, number | undefined]>();
    for (const object of registration.objects) {
      wanted.set(String(object.id), [object.id, undefined]);
      for (const instance of object.instances) wanted.set(`${object.id}/${instance}`, [object.id, instance]);
    }
    if (objectsChanged) {
      for (const key of [...mirror.containers]) {
        const [objectId, instanceId] = key.split('/');
        if (!/^\d+$/.test(objectId) || wanted.has(instanceId === undefined ? objectId : `${objectId}/${instanceId}`)) continue;
        const deleted = await this.client.delete([mirror.aeRn, ...key.split('/')], mirror.aeId);
        if (deleted.rsc !== ResponseStatus.Deleted && deleted.rsc !== ResponseStatus.NotFound) throw this.refused('delete <container>', deleted, 'update');
        for (const other of [...mirror.containers]) if (other === key || other.startsWith(`${key}/`)) mirror.containers.delete(other);
      }
    }
    for (const [key, [objectId, instanceId]] of wanted) {
      const path = key.split('/');
      if (refresh && mirror.containers.has(key)) {
        const updated = await this.client.update([mirror.aeRn, ...path], objectContainerUpdate(registration, this.server.model, objectId, instanceId), mirror.aeId);
        if (updated.rsc === ResponseStatus.Updated) continue;
        if (updated.rsc !== ResponseStatus.NotFound) throw this.refused(`update <container> ${key}`, updated, 'update');
        mirror.containers.delete(key);
      }
      await this.ensureContainers(mirror, [{ path, representation: () => objectContainer(registration, this.server.model, objectId, instanceId, this.maxInstances) }]);
    }
    const own: ContainerStep[] = [{ path: [SEND], representation: () => container(SEND, ['LWM2M-Send'], this.maxInstances) }];
    if (this.options.notificationUrl) {
      own.push({ path: [RESULTS], representation: () => container(RESULTS, ['LWM2M-Command-Results'], this.maxInstances) });
      own.push({ path: [COMMANDS], representation: () => container(COMMANDS, ['LWM2M-Commands'], this.maxInstances) });
    }
    await this.ensureContainers(mirror, own);
  }

  /** The names of the containers below the AE ("3", "3/0"...), as the CSE has them. */
  private async discoverContainers(mirror: Mirror): Promise<string[]> {
    const answer = await this.client.retrieve([mirror.aeRn], mirror.aeId, { fu: 1, drt: 1, ty: ResourceType.Container });
    if (answer.rsc !== ResponseStatus.OK) throw this.refused('discover the containers of <AE>', answer, 'register');
    const uris = answer.body?.['m2m:uril'];
    const names: string[] = [];
    for (const uri of Array.isArray(uris) ? uris : []) {
      if (typeof uri !== 'string') continue;
      const segments = uri.split('/');
      const at = segments.indexOf(mirror.aeRn);
      if (at >= 0 && at < segments.length - 1) names.push(segments.slice(at + 1).join('/'));
    }
    return names;
  }

  /**
   * Subscribes to the device's commands container with a notification URL
   * of its own secret; takes over the subscription a previous run made (its
   * secret is in its URL) or points it at this run's URL.
   */
  private async syncSubscription(mirror: Mirror): Promise<void> {
    const base = this.options.notificationUrl;
    if (!base || mirror.secret) return;
    const target = [mirror.aeRn, COMMANDS, SUBSCRIPTION];
    const existing = await this.client.retrieve(target, mirror.aeId);
    if (existing.rsc === ResponseStatus.OK) {
      const urls = (existing.body?.['m2m:sub'] as { nu?: unknown } | undefined)?.nu;
      const secret = Array.isArray(urls) && typeof urls[0] === 'string' && urls[0].startsWith(`${base}/`) ? urls[0].slice(base.length + 1) : undefined;
      if (secret !== undefined && SECRET.test(secret)) return this.rememberSecret(mirror, secret);
      const fresh = newSecret();
      this.rememberSecret(mirror, fresh);
      const updated = await this.client.update(target, subscriptionUpdate(`${base}/${fresh}`), mirror.aeId);
      if (updated.rsc === ResponseStatus.Updated) return;
      this.forgetSecret(mirror);
      throw this.refused('update <subscription>', updated);
    }
    if (existing.rsc !== ResponseStatus.NotFound) throw this.refused('retrieve <subscription>', existing);
    const fresh = newSecret();
    // Known before the CSE verifies the URL (it may notify while creating the subscription).
    this.rememberSecret(mirror, fresh);
    const created = await this.client.create([mirror.aeRn, COMMANDS], ResourceType.Subscription, subscription(SUBSCRIPTION, `${base}/${fresh}`), mirror.aeId);
    if (created.rsc === ResponseStatus.Created) return;
    this.forgetSecret(mirror);
    throw this.refused('create <subscription>', created);
  }

  private rememberSecret(mirror: Mirror, secret: string): void {
    mirror.secret = secret;
    this.secrets.set(secret, mirror.endpoint);
  }

  private forgetSecret(mirror: Mirror): void {
    if (mirror.secret) this.secrets.delete(mirror.secret);
    mirror.secret = undefined;
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

  /** Creates the containers of the steps the CSE does not have yet, in order (parents first). */
  private async ensureContainers(mirror: Mirror, steps: ContainerStep[]): Promise<void> {
    for (const { path, representation } of steps) {
      const key = path.join('/');
      if (mirror.containers.has(key)) continue;
      const created = await this.client.create([mirror.aeRn, ...path.slice(0, -1)], ResourceType.Container, representation(), mirror.aeId);
      if (created.rsc === ResponseStatus.NotFound && path.length === 1) mirror.aeExists = false;
      if (created.rsc !== ResponseStatus.Created && created.rsc !== ResponseStatus.Conflict) throw this.refused(`create <container> ${key}`, created);
      mirror.containers.add(key);
    }
  }

  private refused(step: string, response: Onem2mResponse, operation?: RegistrationOperation): CseRefusedError {
    return new CseRefusedError(response.rsc, `${step}: the CSE answered ${describeOutcome(response.rsc, operation)}`);
  }

  // Values: read results, notifications, Send

  /** Stores device values: the payload itself (transparent), a value per resource (semantic), or both. */
  private async storeValues(endpoint: string, target: Lwm2mPath, records: ContentRecord[], raw: Buffer, contentFormat: number | undefined, containerPath?: string[]): Promise<void> {
    const mirror = this.mirrors.get(endpoint);
    // Not in the CSE (yet, or refused): the values of a device that is not mirrored are not stored.
    if (!mirror?.aeExists) return;
    // Transparent: in the container of the instance (or object) the payload is about, or the one given (Send).
    const steps = containerPath ? [] : containerSteps(target).slice(0, 2);
    const where = containerPath ?? steps.at(-1)?.path;
    if (this.mode !== 'semantic' && where) {
      const paths = containerPath ? records.map((record) => record.path.toString()) : [target.toString()];
      await this.createInstance(mirror, steps, where, encapsulatedInstance(raw, contentFormat, paths));
    }
    if (this.mode === 'transparent') return;
    for (const record of records) {
      if (record.path.length < 3) continue;
      const steps = containerSteps(record.path);
      const resource = this.server.modelFor(endpoint).getResource(record.path.objectId as number, record.path.resourceId as number);
      const [objectId, instanceId, resourceId] = steps[2].path;
      steps[2].representation = () => container(resourceId, [`LWM2MURI:/${objectId}/${instanceId}/${resourceId}`, ...(resource ? [`LWM2MRN:${resource.name}`] : [])], this.maxInstances);
      // A multi-instance resource: a container per resource instance, so that each one's latest value is its "la".
      if (steps[3]) steps[3].representation = () => container(steps[3].path[3], [`LWM2MURI:${record.path}`], this.maxInstances);
      await this.createInstance(mirror, steps, (steps.at(-1) as ContainerStep).path, valueInstance(record));
    }
  }

  /** Creates a contentInstance; when its container is gone from the CSE, the containers are made again once. */
  private async createInstance(mirror: Mirror, steps: ContainerStep[], path: string[], representation: Record<string, unknown>): Promise<void> {
    await this.ensureContainers(mirror, steps);
    let created = await this.client.create([mirror.aeRn, ...path], ResourceType.ContentInstance, representation, mirror.aeId);
    if (created.rsc === ResponseStatus.NotFound && steps.length > 0) {
      for (const step of steps) mirror.containers.delete(step.path.join('/'));
      await this.ensureContainers(mirror, steps);
      created = await this.client.create([mirror.aeRn, ...path], ResourceType.ContentInstance, representation, mirror.aeId);
    }
    if (created.rsc !== ResponseStatus.Created) throw this.refused(`create <contentInstance> in ${path.join('/')}`, created);
  }

  // Commands

  /** Reads a command the CSE notified back from the CSE, and runs it as the CSE has it. */
  private async readCommand(endpoint: string, name: string): Promise<void> {
    const mirror = this.mirrors.get(endpoint);
    if (!mirror || mirror.commandsRun.includes(name)) return;
    const stored = await this.client.retrieve([mirror.aeRn, COMMANDS, name], mirror.aeId);
    if (stored.rsc !== ResponseStatus.OK) throw this.refused(`read back command ${name} (not run)`, stored);
    mirror.commandsRun.push(name);
    if (mirror.commandsRun.length > COMMANDS_REMEMBERED) mirror.commandsRun.shift();
    // The device may take long to answer: the device's other CSE operations go on meanwhile.
    void this.runCommand(endpoint, (stored.body?.['m2m:cin'] as { con?: unknown } | undefined)?.con);
  }

  private async runCommand(endpoint: string, content: unknown): Promise<void> {
    let result: CommandResult;
    let command: Command | undefined;
    try {
      command = parseCommand(content);
      result = await this.execute(endpoint, command);
    } catch (error) {
      const id = command?.id ?? commandId(content);
      result = {
        ...(id !== undefined ? { id } : {}),
        ...(command ? { operation: command.operation, path: command.path } : {}),
        ...(error instanceof DeviceRequestError && error.code ? { code: error.code } : {}),
        error: (error as Error).message,
      };
    }
    this.emit('command', endpoint, result);
    this.enqueue(endpoint, 'command result', async () => {
      const mirror = this.mirrors.get(endpoint);
      if (!mirror?.aeExists) return;
      const labels = ['LWM2M-Command-Result', ...(result.path ? [`LWM2MURI:${result.path}`] : [])];
      await this.createInstance(mirror, [], [RESULTS], jsonInstance(result, labels));
    });
  }

  private async execute(endpoint: string, command: Command): Promise<CommandResult> {
    const path = Lwm2mPath.parse(command.path);
    const base = { ...(command.id !== undefined ? { id: command.id } : {}), operation: command.operation, path: path.toString() };
    switch (command.operation) {
      case 'read': {
        const response = await this.server.send(endpoint, new ReadRequest(path));
        this.enqueue(endpoint, 'read result', () => this.storeValues(endpoint, path, response.records, response.raw, response.contentFormat));
        return { ...base, code: response.code, value: jsonSafe(recordsToPayload(response.records, path)) };
      }
      case 'write': {
        const response = await this.server.send(endpoint, new WriteRequest(path, payloadToRecords(command.value, path, this.server.modelFor(endpoint))));
        return { ...base, code: response.code };
      }
      case 'execute': {
        const response = await this.server.send(endpoint, new ExecuteRequest(path, command.arguments ?? ''));
        return { ...base, code: response.code };
      }
    }
  }
}

function newMirror(endpoint: string): Mirror {
  return { endpoint, aeId: aeIdOf(endpoint), aeRn: resourceNameOf(endpoint), nodeRn: nodeNameOf(endpoint), aeExists: false, containers: new Set(), commandsRun: [] };
}

function newSecret(): string {
  return randomBytes(16).toString('base64url');
}

/** The containers a value of a path is stored in: object, instance, resource, resource instance (those the path has). */
function containerSteps(path: Lwm2mPath): ContainerStep[] {
  const ids = path.ids.map(String);
  return ids.map((id, index) => ({ path: ids.slice(0, index + 1), representation: () => ({ 'm2m:cnt': { rn: id } }) }));
}

/** Whether an originator is the CSE: its CSE-ID, also in absolute ("//sp/id") or relative ("id") form. */
function sameCse(originator: string, cseId: string): boolean {
  const plain = (id: string) => id.replace(/^\/\/[^/]+/, '').replace(/^\/+/, '');
  return plain(originator) === plain(cseId);
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
