import type { Node, NodeAPI, NodeDef } from 'node-red';
import { BootstrapConfigError, describeConfig, parseBootstrapConfig } from '../lib/bootstrap/bootstrap-config';
import type { Peer } from '../lib/coap/peer';
import type { BootstrapServer } from '../lib/bootstrap/bootstrap-server';
import { hostFor } from './socket-host';
import { InputError, Msg, resolveEndpoint } from './inputs';

interface BootstrapNodeDef extends NodeDef {
  server: string;
  endpoint?: string;
  started?: boolean;
  finished?: boolean;
  failed?: boolean;
}

type Send = (msg: Msg) => void;
type Done = (error?: Error) => void;

export = function register(RED: NodeAPI): void {
  /** lwm2m bootstrap: sets (msg.payload) or removes (msg.payload null, msg.action "remove") an endpoint's configuration. */
  function Lwm2mBootstrapNode(this: Node, def: BootstrapNodeDef) {
    RED.nodes.createNode(this, def);
    const host = hostFor<BootstrapServer>(RED, this, def.server, 'lwm2m-bootstrap');
    if (!host) return;
    host.register(this, { followStatus: true });
    const server = host.service;
    this.on('input', (msg: Msg, send: Send, done: Done) => {
      const fail = (error: Error) => {
        this.status({ fill: 'red', shape: 'ring', text: 'invalid input' });
        done(error instanceof BootstrapConfigError || error instanceof InputError ? error : new Error(`unexpected failure: ${error.message}`));
      };
      // Kept (sealed) in the state store before the msg goes on; the echo carries no keys.
      const finish = (out: Msg) => {
        host.countChanged();
        send(out);
        done();
      };
      try {
        const endpoint = resolveEndpoint(def.endpoint, msg);
        if (msg.action === 'remove' || msg.payload === null) {
          server.forgetConfig(endpoint).then((removed) => finish({ ...msg, endpoint, topic: 'removed', payload: { removed } }), fail);
        } else {
          const config = parseBootstrapConfig(msg.payload);
          server.keepConfig(endpoint, config).then(() => finish({ ...msg, endpoint, topic: 'set', payload: describeConfig(config) }), fail);
        }
      } catch (error) {
        fail(error as Error);
      }
    });
    this.on('close', (_removed: boolean, done: () => void) => {
      host.deregister(this);
      done();
    });
  }
  RED.nodes.registerType('lwm2m-bootstrap', Lwm2mBootstrapNode);

  /** lwm2m bootstrap events: a msg when a bootstrap starts, finishes or fails (with the reason). */
  function Lwm2mBootstrapEventsNode(this: Node, def: BootstrapNodeDef) {
    RED.nodes.createNode(this, def);
    const host = hostFor<BootstrapServer>(RED, this, def.server, 'lwm2m-bootstrap');
    if (!host) return;
    host.register(this, { followStatus: true });
    const server = host.service;
    const listeners = {
      started: (endpoint: string, peer: Peer) => this.send({ topic: 'started', event: 'started', endpoint, payload: { address: peer.address, port: peer.port } }),
      finished: (endpoint: string, summary: Record<string, unknown>) => this.send({ topic: 'finished', event: 'finished', endpoint, payload: summary }),
      failed: (endpoint: string, reason: string, peer: Peer) =>
        this.send({ topic: 'failed', event: 'failed', endpoint, payload: { reason, address: peer.address, port: peer.port } }),
    };
    const enabled: Record<string, boolean> = { started: def.started !== false, finished: def.finished !== false, failed: def.failed !== false };
    const detach = server.subscribe(listeners, (event) => enabled[event]);
    this.on('close', (_removed: boolean, done: () => void) => {
      detach();
      host.deregister(this);
      done();
    });
  }
  RED.nodes.registerType('lwm2m-bootstrap-events', Lwm2mBootstrapEventsNode);
};
