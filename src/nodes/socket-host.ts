import type { Node, NodeAPI, NodeStatus } from 'node-red';
import type { MalformedDatagram } from '../lib/coap/endpoint';
import type { BoundListener } from '../lib/lwm2m/listeners';
import type { Scheme } from '../lib/coap/message-layer';
import { InputError } from './inputs';

const TRANSPORT_NAMES: Record<Scheme, string> = { coap: 'udp', coaps: 'dtls', 'coap+tcp': 'tcp', 'coaps+tcp': 'tls' };

/** "udp :5683 · dtls :5684 · tcp :5683 · tls :5684", as statuses show listeners. */
export function describeListeners(listeners: { scheme: Scheme; port: number; address?: string }[], withAddress = false): string {
  return listeners.map((listener) => `${TRANSPORT_NAMES[listener.scheme]} ${withAddress ? listener.address : ''}:${listener.port}`).join(' · ');
}

/** A protocol service on its sockets that a config node owns: the LwM2M server or the bootstrap server. */
export interface HostedService {
  start(): Promise<BoundListener[]>;
  /** With forget, the service is being deleted: its saved state goes too. */
  stop(options?: { forget?: boolean }): Promise<void>;
  on(event: 'malformed', listener: (detail: MalformedDatagram) => void): unknown;
  on(event: 'warning', listener: (error: Error) => void): unknown;
  /** Why the state store cannot be used now (Redis unreachable), undefined once it can: every user's status says so. */
  on(event: 'storeProblem', listener: (problem: string | undefined) => void): unknown;
}

/** A config node that owns a service, as other nodes see it. */
export interface HostNode<S extends HostedService> extends Node {
  host: SocketHost<S>;
}

/** A node that uses a config node and shows its status. */
export interface HostUser {
  id: string;
  status(status: NodeStatus): void;
}

export interface HostSettings {
  /** Message catalogue prefix of the config node: "<prefix>.status.listening" and so on. */
  messages: string;
  /** What is configured, for the bind error. */
  listeners: { scheme: Scheme; address: string; port: number }[];
  /** What the status counts (registered devices, configured endpoints). */
  count(): number;
  /** A short warning (localized) the status shows while listening, such as a missing DTLS port. */
  warning?: string;
}

type Phase = { name: 'starting' } | { name: 'listening'; bound: BoundListener[] } | { name: 'failed'; error: string } | { name: 'closed' };

const STATUS_THROTTLE_MS = 500;
/** Users' closing work may hold the socket open this long; Node-RED allows 15 s for a close. */
const CLOSING_WORK_LIMIT_MS = 3000;

/**
 * What a config node owns: a service with its socket, the nodes that use it,
 * and their status, the way the core MQTT broker node owns its connection
 * and users. Bind errors become a status and node.error, never a throw.
 */
export class SocketHost<S extends HostedService> {
  private readonly users = new Map<string, HostUser>();
  /** Users whose status is the service's, count included; the others keep their own between phase changes. */
  private readonly statusFollowers = new Set<string>();
  private phase: Phase = { name: 'starting' };
  /** Work users finish while closing (cancelling observations), which the socket must outlive. */
  private readonly closingWork = new Set<Promise<unknown>>();
  private statusTimer?: NodeJS.Timeout;
  /** What keeps the state store from being used, shown in every status. */
  private storeProblem?: string;

  constructor(
    node: Node,
    private readonly RED: NodeAPI,
    readonly service: S,
    private readonly settings: HostSettings,
  ) {
    service.on('malformed', (detail) => node.debug(`rejected ${detail.peer.address}:${detail.peer.port}: ${detail.reason}`));
    service.on('warning', (error) => node.warn(error.message));
    service.on('storeProblem', (problem) => {
      // Connecting at start is no news; an outage is.
      if (problem && problem !== this.storeProblem && !problem.endsWith('connecting')) node.warn(problem);
      else if (!problem && this.storeProblem) node.log('state store reachable again');
      this.storeProblem = problem;
      this.pushStatus();
    });
    service.start().then(
      (bound) => this.enter({ name: 'listening', bound }),
      (error: NodeJS.ErrnoException) => {
        node.error(RED._(`${settings.messages}.errors.bind`, { listeners: describeListeners(settings.listeners, true), error: error.code ?? error.message }));
        this.enter({ name: 'failed', error: error.code ?? error.message });
      },
    );
  }

  register(user: HostUser, options: { followStatus?: boolean } = {}): void {
    this.users.set(user.id, user);
    if (options.followStatus) this.statusFollowers.add(user.id);
    user.status(this.status(options.followStatus === true));
  }

  deregister(user: HostUser): void {
    this.users.delete(user.id);
    this.statusFollowers.delete(user.id);
  }

  /** Lets a closing user's last requests go out before the socket closes (bounded, see close). */
  finishBeforeClose(work: Promise<unknown>): void {
    const tracked = work.finally(() => this.closingWork.delete(tracked));
    this.closingWork.add(tracked);
  }

  async close(options: { forget?: boolean } = {}): Promise<void> {
    clearTimeout(this.statusTimer);
    this.phase = { name: 'closed' };
    const limit = new Promise((resolve) => setTimeout(resolve, CLOSING_WORK_LIMIT_MS).unref());
    await Promise.race([Promise.allSettled([...this.closingWork]), limit]);
    await this.service.stop(options);
  }

  /** The count changed: storms change it thousands of times a second, the editor needs it twice a second at most. */
  countChanged(): void {
    if (this.statusTimer) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      this.pushStatus(true);
    }, STATUS_THROTTLE_MS);
  }

  /** The service's status; with the count for nodes that follow it, without for nodes that show their own results. */
  status(withCount = true): NodeStatus {
    const { RED, settings } = this;
    switch (this.phase.name) {
      case 'listening': {
        const listeners = describeListeners(this.phase.bound);
        const text = withCount ? RED._(`${settings.messages}.status.listening`, { listeners, count: String(settings.count()) }) : RED._(`${settings.messages}.status.ready`, { listeners });
        // Devices served here go on from memory; what needs the store fails until it is back.
        if (this.storeProblem) return { fill: 'yellow', shape: 'ring', text: `${text} · ${this.storeProblem}` };
        if (settings.warning) return { fill: 'yellow', shape: 'dot', text: `${text} · ${settings.warning}` };
        return { fill: 'green', shape: 'dot', text };
      }
      case 'failed':
        return { fill: 'red', shape: 'ring', text: RED._(`${settings.messages}.status.failed`, { error: this.phase.error }) };
      case 'starting':
        return { fill: 'yellow', shape: 'ring', text: RED._(`${settings.messages}.status.starting`) };
      case 'closed':
        return {};
    }
  }

  private enter(phase: Phase): void {
    if (this.phase.name === 'closed') return;
    this.phase = phase;
    this.pushStatus();
  }

  private pushStatus(countOnly = false): void {
    for (const [id, user] of this.users) {
      const follower = this.statusFollowers.has(id);
      if (!countOnly || follower) user.status(this.status(follower));
    }
  }
}

/** A config node whose settings cannot work (a port of 70000): it reports why once and starts nothing; its users fail every msg with the reason. */
export function refuseSettings(RED: NodeAPI, node: Node & { refused?: string }, messages: string, error: Error): void {
  node.error(RED._(`${messages}.errors.settings`, { reason: error.message }));
  node.refused = error.message;
}

/**
 * The host of the config node a node names, or undefined after reporting its
 * absence (or its refused settings): a red status, node.error, and every msg
 * failed with the reason. `messages` is the node's catalogue prefix
 * ("<prefix>.status.noServer").
 */
export function hostFor<S extends HostedService>(RED: NodeAPI, node: Node, configId: string, messages: string): SocketHost<S> | undefined {
  const configNode = RED.nodes.getNode(configId) as (HostNode<S> & { refused?: string }) | null;
  if (configNode?.host) return configNode.host;
  const refused = configNode?.refused;
  const reason = refused ? RED._(`${messages}.errors.serverSettings`, { reason: refused }) : RED._(`${messages}.errors.noServer`);
  node.status({ fill: 'red', shape: 'ring', text: RED._(`${messages}.status.${refused ? 'serverSettings' : 'noServer'}`) });
  node.error(reason);
  node.on('input', (_msg: unknown, _send: unknown, done: (error?: Error) => void) => done(new InputError(reason)));
  return undefined;
}
