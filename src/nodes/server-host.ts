import type { Node, NodeAPI, NodeStatus } from 'node-red';
import { Lwm2mServer, Lwm2mServerOptions } from '../lib/lwm2m/server';
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

/**
 * What a server config node owns: the LwM2M server with its socket and
 * store, the nodes that use it, and their status, the way the core MQTT
 * broker node owns its connection and users.
 */
export class ServerHost {
  readonly server: Lwm2mServer;
  private readonly users = new Map<string, ServerUser>();
  private phase: Phase = { name: 'starting' };
  private statusTimer?: NodeJS.Timeout;

  constructor(
    node: Node,
    private readonly RED: NodeAPI,
    options: Lwm2mServerOptions,
  ) {
    this.server = new Lwm2mServer(options);
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

  register(user: ServerUser): void {
    this.users.set(user.id, user);
    user.status(this.status());
  }

  deregister(user: ServerUser): void {
    this.users.delete(user.id);
  }

  async close(): Promise<void> {
    clearTimeout(this.statusTimer);
    this.phase = { name: 'closed' };
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
      this.pushStatus();
    }, STATUS_THROTTLE_MS);
  }

  private pushStatus(): void {
    const status = this.status();
    for (const user of this.users.values()) user.status(status);
  }
}
