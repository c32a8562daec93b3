import type { Node, NodeAPI, NodeStatus } from 'node-red';
import { Lwm2mServer, Lwm2mServerOptions } from '../lib/lwm2m/server';
import { ObjectModel } from '../lib/model/object-model';
import type { Peer } from '../lib/coap/peer';

/** The lwm2m-server config node as other nodes see it. */
export interface ServerConfigNode extends Node {
  host: ServerHost;
}

/** A node that uses a server config node and shows its status. */
export interface ServerUser {
  id: string;
  status(status: NodeStatus): void;
}

type Phase = { name: 'starting' } | { name: 'listening'; bound: Peer } | { name: 'failed'; error: string } | { name: 'closed' };

const STATUS_THROTTLE_MS = 500;
/** Users' closing work may hold the socket open this long; Node-RED allows 15 s for a close. */
const CLOSING_WORK_LIMIT_MS = 3000;

/**
 * What a server config node owns: the LwM2M server with its socket and
 * store, the nodes that use it, and their status, the way the core MQTT
 * broker node owns its connection and users.
 */
export class ServerHost {
  readonly server: Lwm2mServer;
  private readonly users = new Map<string, ServerUser>();
  /** Users whose status is the server's, device count included; the others keep their own between phase changes. */
  private readonly statusFollowers = new Set<string>();
  private phase: Phase = { name: 'starting' };
  /** Work users finish while closing (cancelling observations), which the socket must outlive. */
  private readonly closingWork = new Set<Promise<unknown>>();
  private statusTimer?: NodeJS.Timeout;

  constructor(
    node: Node,
    private readonly RED: NodeAPI,
    options: Lwm2mServerOptions,
    /** Folder of custom DDF XML files added to the OMA registry objects. */
    modelFolder?: string,
  ) {
    let model: ObjectModel | undefined;
    if (modelFolder) {
      const loaded = ObjectModel.fromFolder(modelFolder);
      model = loaded.model;
      for (const problem of loaded.problems) node.warn(RED._('lwm2m-server.errors.model', { problem }));
    }
    this.server = new Lwm2mServer({ ...options, model });
    const countChanged = () => this.scheduleStatus();
    this.server.on('registered', countChanged);
    this.server.on('deregistered', countChanged);
    this.server.on('expired', countChanged);
    this.server.on('malformed', (detail) => node.debug(`rejected ${detail.peer.address}:${detail.peer.port}: ${detail.reason}`));
    this.server.on('warning', (error) => node.warn(error.message));
    this.server.start().then(
      (bound) => this.enter({ name: 'listening', bound }),
      (error: NodeJS.ErrnoException) => {
        const message = RED._('lwm2m-server.errors.bind', {
          address: options.address,
          port: String(options.port),
          error: error.code ?? error.message,
        });
        node.error(message);
        this.enter({ name: 'failed', error: error.code ?? error.message });
      },
    );
  }

  register(user: ServerUser, options: { followStatus?: boolean } = {}): void {
    this.users.set(user.id, user);
    if (options.followStatus) this.statusFollowers.add(user.id);
    user.status(this.status());
  }

  deregister(user: ServerUser): void {
    this.users.delete(user.id);
    this.statusFollowers.delete(user.id);
  }

  /** Lets a closing user's last requests go out before the socket closes (bounded, see close). */
  finishBeforeClose(work: Promise<unknown>): void {
    const tracked = work.finally(() => this.closingWork.delete(tracked));
    this.closingWork.add(tracked);
  }

  async close(): Promise<void> {
    clearTimeout(this.statusTimer);
    this.phase = { name: 'closed' };
    const limit = new Promise((resolve) => setTimeout(resolve, CLOSING_WORK_LIMIT_MS).unref());
    await Promise.race([Promise.allSettled([...this.closingWork]), limit]);
    await this.server.stop();
  }

  status(): NodeStatus {
    const RED = this.RED;
    switch (this.phase.name) {
      case 'listening':
        return {
          fill: 'green',
          shape: 'dot',
          text: RED._('lwm2m-server.status.listening', {
            port: String(this.phase.bound.port),
            count: String(this.server.registrations.size),
          }),
        };
      case 'failed':
        return { fill: 'red', shape: 'ring', text: RED._('lwm2m-server.status.failed', { error: this.phase.error }) };
      case 'starting':
        return { fill: 'yellow', shape: 'ring', text: RED._('lwm2m-server.status.starting') };
      case 'closed':
        return {};
    }
  }

  private enter(phase: Phase): void {
    if (this.phase.name === 'closed') return;
    this.phase = phase;
    this.pushStatus();
  }

  /** Registration storms change the count thousands of times a second; the editor needs it twice a second at most. */
  private scheduleStatus(): void {
    if (this.statusTimer) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      this.pushStatus(true);
    }, STATUS_THROTTLE_MS);
  }

  private pushStatus(countOnly = false): void {
    const status = this.status();
    for (const [id, user] of this.users) if (!countOnly || this.statusFollowers.has(id)) user.status(status);
  }
}
