import type { NodeAPI } from 'node-red';
import { recordsToPayload } from '../../lib/content/payload';
import { LogEntry, MessageLog } from '../../lib/lwm2m/message-log';
import type { NotificationEvent, ObservationListener } from '../../lib/lwm2m/observations';
import type { Registration } from '../../lib/lwm2m/registration';
import type { Lwm2mServer } from '../../lib/lwm2m/server';
import type { ServerConfigNode } from '../config-nodes';
import { DeviceSummary, deviceSummary, jsonValue } from './device-json';

/** The comms topics the runtime publishes on, followed by the server node id. */
const DEVICES_TOPIC = 'lwm2m-red/devices/';
const CONSOLE_TOPIC = 'lwm2m-red/console/';

/** Observations started from the console belong to this owner: the server keeps them across redeploys and restarts, and the console adopts them again. */
export const CONSOLE_OWNER = 'lwm2m-red/console';

/** An editor that stops asking is forgotten after this long (it asks every 20 s while open). */
export const WATCH_TTL_MS = 45_000;
/** Changes reach the editors at most this often. */
const PUBLISH_MS = 500;
/** Devices one editor may watch at once: a page of the list and its open console. */
export const MAX_WATCHED = 200;
/** Observations the console may hold per server. */
export const MAX_CONSOLE_OBSERVATIONS = 1000;

interface Watcher {
  endpoints: Set<string>;
  device?: string;
  expires: number;
}

interface ConsoleDelta {
  log: LogEntry[];
  values: { observation: string; path: string[]; value?: unknown; time: number; ended?: string }[];
  details: boolean;
}

/**
 * What the editor's devices panel and device console need from one running
 * server: who is watching which devices, the changes they get as small
 * deltas over comms, the message log of the devices open in a console, and
 * the observations started from the console. While no editor watches,
 * nothing is attached to the server: the hot paths pay nothing.
 */
export class ServerConsole {
  private readonly server: Lwm2mServer;
  private readonly watchers = new Map<string, Watcher>();
  /** Union of what the watchers see: rows of the list, devices open in a console. */
  private visible = new Set<string>();
  private open = new Set<string>();
  private detach?: () => void;
  private sweepTimer?: NodeJS.Timeout;
  private publishTimer?: NodeJS.Timeout;
  private listChanged = false;
  private readonly changed = new Set<string>();
  private readonly removed = new Set<string>();
  private readonly consoleDeltas = new Map<string, ConsoleDelta>();
  readonly log: MessageLog;
  /** Last value of each observation made from the console. */
  private readonly values = new Map<string, { payload: unknown; time: number }>();
  readonly listener: ObservationListener;

  constructor(
    private readonly RED: NodeAPI,
    readonly node: ServerConfigNode,
  ) {
    this.server = node.host.service;
    this.log = new MessageLog(() => this.server.model, (endpoint, entry) => this.delta(endpoint).log.push(entry));
    this.listener = {
      notify: (event) => this.observed(event),
      error: () => undefined,
      ended: (observation, reason) => {
        this.values.delete(observation.id);
        if (this.open.has(observation.endpoint)) {
          this.delta(observation.endpoint).values.push({ observation: observation.id, path: [...observation.paths], time: Date.now(), ended: reason });
        }
      },
    };
    void this.server.ready.then(() => this.server.observations.adopt(CONSOLE_OWNER, this.listener));
  }

  get id(): string {
    return this.node.id;
  }

  /** The last value an observation from the console delivered. */
  lastValue(observationId: string): { payload: unknown; time: number } | undefined {
    return this.values.get(observationId);
  }

  consoleObservations(): number {
    return this.server.observations.list().filter((observation) => observation.owner === CONSOLE_OWNER).length;
  }

  /** The first response of an observation made from the console. */
  observed(event: NotificationEvent): void {
    const { observation } = event;
    const value = { payload: recordsToPayload(event.records, observation.request.path), time: Date.now() };
    this.values.set(observation.id, value);
    if (this.open.has(observation.endpoint)) this.delta(observation.endpoint).values.push({ observation: observation.id, path: [...observation.paths], value: jsonValue(value.payload), time: value.time });
  }

  /** An editor says what it shows: the devices of its list page and the device open in its console (renewed every 20 s). */
  watch(client: string, endpoints: string[], device: string | undefined): void {
    this.watchers.set(client, { endpoints: new Set(endpoints.slice(0, MAX_WATCHED)), device, expires: Date.now() + WATCH_TTL_MS });
    this.recompute();
  }

  unwatch(client: string): void {
    if (this.watchers.delete(client)) this.recompute();
  }

  close(): void {
    this.watchers.clear();
    this.recompute();
  }

  private recompute(): void {
    const now = Date.now();
    for (const [client, watcher] of this.watchers) if (watcher.expires <= now) this.watchers.delete(client);
    const visible = new Set<string>();
    const open = new Set<string>();
    for (const watcher of this.watchers.values()) {
      for (const endpoint of watcher.endpoints) visible.add(endpoint);
      if (watcher.device) open.add(watcher.device);
    }
    for (const endpoint of this.open) if (!open.has(endpoint)) this.log.unwatch(endpoint);
    for (const endpoint of open) this.recordLog(endpoint);
    this.visible = visible;
    this.open = open;
    this.tapEndpoints();
    if (this.watchers.size > 0 && !this.detach) this.attach();
    if (this.watchers.size === 0 && this.detach) {
      this.detach();
      this.detach = undefined;
      clearInterval(this.sweepTimer);
      clearTimeout(this.publishTimer);
      this.sweepTimer = this.publishTimer = undefined;
      this.changed.clear();
      this.removed.clear();
      this.consoleDeltas.clear();
      this.listChanged = false;
    }
  }

  /** Records an open device's messages at its current address. */
  private recordLog(endpoint: string): void {
    const registration = this.server.registrations.getByEndpoint(endpoint);
    if (registration) this.log.watch(endpoint, registration.transport, registration.address, registration.port);
    else this.log.unwatch(endpoint);
  }

  private tapEndpoints(): void {
    const recording = this.log.watching > 0;
    const { plain, secure } = this.server.coap;
    if (plain) plain.tap = recording ? this.log.tap('udp') : undefined;
    if (secure) secure.tap = recording ? this.log.tap('dtls') : undefined;
    for (const [transport, endpoint] of this.server.coap.streams()) endpoint.tap = recording ? this.log.tap(transport) : undefined;
  }

  private attach(): void {
    const touched = (registration: Registration) => {
      if (this.visible.has(registration.endpoint) || this.open.has(registration.endpoint)) this.changed.add(registration.endpoint);
      if (this.open.has(registration.endpoint)) this.delta(registration.endpoint).details = true;
      this.schedule();
    };
    const listed = (registration: Registration) => {
      this.listChanged = true;
      touched(registration);
    };
    const gone = (registration: Registration) => {
      this.listChanged = true;
      if (this.visible.has(registration.endpoint) || this.open.has(registration.endpoint)) this.removed.add(registration.endpoint);
      if (this.open.has(registration.endpoint)) this.log.unwatch(registration.endpoint);
      this.schedule();
    };
    this.detach = this.server.subscribe({
      registered: (registration) => {
        if (this.open.has(registration.endpoint)) this.recordLog(registration.endpoint);
        this.tapEndpoints();
        listed(registration);
      },
      updated: (registration, changes) => {
        if (changes.includes('address') && this.open.has(registration.endpoint)) this.recordLog(registration.endpoint);
        touched(registration);
      },
      deregistered: gone,
      expired: gone,
      awake: touched,
      sleeping: touched,
    });
    this.sweepTimer = setInterval(() => this.recompute(), 10_000);
    this.sweepTimer.unref();
  }

  private delta(endpoint: string): ConsoleDelta {
    let delta = this.consoleDeltas.get(endpoint);
    if (!delta) {
      delta = { log: [], values: [], details: false };
      this.consoleDeltas.set(endpoint, delta);
    }
    this.schedule();
    return delta;
  }

  /** Coalesces: a registration storm becomes two small messages a second. */
  private schedule(): void {
    if (this.publishTimer || this.watchers.size === 0) return;
    this.publishTimer = setTimeout(() => {
      this.publishTimer = undefined;
      this.publish();
    }, PUBLISH_MS);
  }

  private publish(): void {
    const { RED, server } = this;
    if (this.listChanged || this.changed.size > 0 || this.removed.size > 0) {
      const changed: DeviceSummary[] = [];
      for (const endpoint of this.changed) {
        const registration = server.registrations.getByEndpoint(endpoint);
        if (registration) changed.push(deviceSummary(server, registration));
      }
      RED.comms.publish(DEVICES_TOPIC + this.id, { total: server.registrations.size, listChanged: this.listChanged, changed, removed: [...this.removed] }, false);
      this.listChanged = false;
      this.changed.clear();
      this.removed.clear();
    }
    for (const [endpoint, delta] of this.consoleDeltas) {
      RED.comms.publish(CONSOLE_TOPIC + this.id, { endpoint, ...delta }, false);
    }
    this.consoleDeltas.clear();
  }
}
