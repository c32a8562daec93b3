import type { Node, NodeAPI, NodeDef } from 'node-red';
import { BootstrapConfigError, describeConfig, parseBootstrapConfig } from '../lib/bootstrap/bootstrap-config';
import type { Peer } from '../lib/coap/peer';
import type { BootstrapServer } from '../lib/bootstrap/bootstrap-server';
import { hostFor } from './socket-host';
import { InputError, Msg, resolveEndpoint, typedSetting } from './inputs';
import { settingsOf } from './node-defaults';
import { failureStatus } from './operation-node';

type Send = (msg: Msg) => void;
type Done = (error?: Error) => void;

export = function register(RED: NodeAPI): void {
  /**
   * lwm2m bootstrap: sets (msg.payload) or removes (msg.payload null, msg.action
   * "remove") an endpoint's configuration, which the bootstrap server keeps
   * across redeploys and restarts.
   */
  function Lwm2mBootstrapNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const settings = settingsOf('lwm2m-bootstrap', def);
    const host = hostFor<BootstrapServer>(RED, this, settings.server, 'lwm2m-bootstrap');
    if (!host) return;
    host.register(this, { followStatus: true });
    const server = host.service;
    const fail = (error: Error, done: Done) => {
      this.status(failureStatus(RED, 'lwm2m-bootstrap', error instanceof BootstrapConfigError ? new InputError(error.message) : error));
      done(error instanceof BootstrapConfigError || error instanceof InputError ? error : new Error(`unexpected failure: ${error.message}`));
    };
    const apply = (endpointSetting: string, msg: Msg, send: Send, done: Done) => {
      // Kept (sealed) in the state store before the msg goes on; the echo carries no keys.
      const finish = (out: Msg) => {
        host.countChanged();
        send(out);
        done();
      };
      try {
        const endpoint = resolveEndpoint(endpointSetting, msg);
        if (msg.action === 'remove' || msg.payload === null) {
          server.forgetConfig(endpoint).then((removed) => finish({ ...msg, endpoint, topic: 'removed', payload: { removed } }), (error: Error) => fail(error, done));
        } else {
          const config = parseBootstrapConfig(msg.payload);
          server.keepConfig(endpoint, config).then(() => finish({ ...msg, endpoint, topic: 'set', payload: describeConfig(config) }), (error: Error) => fail(error, done));
        }
      } catch (error) {
        fail(error as Error, done);
      }
    };
    this.on('input', (msg: Msg, send: Send, done: Done) => {
      const endpoint = typedSetting(RED, this, settings.endpoint, settings.endpointType, msg);
      if (typeof endpoint === 'string') return apply(endpoint, msg, send, done);
      endpoint.then(
        (value) => apply(value, msg, send, done),
        (error: Error) => fail(error, done),
      );
    });
    this.on('close', (_removed: boolean, done: () => void) => {
      host.deregister(this);
      done();
    });
  }
  RED.nodes.registerType('lwm2m-bootstrap', Lwm2mBootstrapNode);

  /** lwm2m bootstrap events: a msg when a bootstrap starts, finishes or fails (with the reason). */
  function Lwm2mBootstrapEventsNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const settings = settingsOf('lwm2m-bootstrap-events', def);
    const host = hostFor<BootstrapServer>(RED, this, settings.server, 'lwm2m-bootstrap');
    if (!host) return;
    host.register(this, { followStatus: true });
    const server = host.service;
    const listeners = {
      started: (endpoint: string, peer: Peer) => this.send({ topic: 'started', event: 'started', endpoint, payload: { address: peer.address, port: peer.port } }),
      finished: (endpoint: string, summary: Record<string, unknown>) => this.send({ topic: 'finished', event: 'finished', endpoint, payload: summary }),
      failed: (endpoint: string, reason: string, peer: Peer) =>
        this.send({ topic: 'failed', event: 'failed', endpoint, payload: { reason, address: peer.address, port: peer.port } }),
    };
    const enabled: Record<string, boolean> = { started: settings.started, finished: settings.finished, failed: settings.failed };
    const detach = server.subscribe(listeners, (event) => enabled[event]);
    this.on('close', (_removed: boolean, done: () => void) => {
      detach();
      host.deregister(this);
      done();
    });
  }
  RED.nodes.registerType('lwm2m-bootstrap-events', Lwm2mBootstrapEventsNode);
};
