import type { Node, NodeAPI, NodeDef, NodeStatus } from 'node-red';
import { ContentError } from '../lib/content/values';
import { DeviceRequestError } from '../lib/lwm2m/device-client';
import type { DeviceRequest, ResponseBase } from '../lib/lwm2m/requests/device-request';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import { InputError, Msg, resolveEndpoint, resolveTimeoutMs, resolveTtlMs } from './inputs';
import { hostFor } from './socket-host';

export interface OperationNodeDef extends NodeDef {
  server: string;
  endpoint?: string;
  timeout?: string | number;
}

/** What distinguishes one operation node from another. */
export interface Operation<D extends OperationNodeDef, R> {
  /** Builds the request from the node's settings and the msg; throws InputError or ContentError for a bad msg. */
  request(def: D, msg: Msg, server: Lwm2mServer, node: Node): DeviceRequest<R>;
  /** Puts the response into the msg that goes out. */
  output(response: R & ResponseBase, msg: Msg, context: OutputContext<D, R>): void;
}

export interface OutputContext<D, R> {
  def: D;
  request: DeviceRequest<R>;
  server: Lwm2mServer;
}

type Send = (msg: Msg) => void;
type Done = (error?: Error) => void;

/**
 * Registers a node type that turns each msg into one LwM2M operation on a
 * device: endpoint from the node or msg.endpoint, the answer in msg.payload
 * and msg.code, failures to node.error(err, msg) so Catch nodes see them.
 */
export function registerOperationNode<D extends OperationNodeDef, R>(RED: NodeAPI, type: string, operation: Operation<D, R>): void {
  function OperationNode(this: Node, def: D) {
    RED.nodes.createNode(this, def);
    const host = hostFor<Lwm2mServer>(RED, this, def.server, 'lwm2m-operations');
    if (!host) return;
    const server = host.service;
    let closed = false;
    host.register(this);

    this.on('input', (msg: Msg, send: Send, done: Done) => {
      let request: DeviceRequest<R>;
      let endpoint: string;
      let timeoutMs: number;
      let ttlMs: number | undefined;
      try {
        endpoint = resolveEndpoint(def.endpoint, msg);
        timeoutMs = resolveTimeoutMs(def.timeout, msg);
        ttlMs = resolveTtlMs(msg);
        request = operation.request(def, msg, server, this);
      } catch (error) {
        fail(this, msg, error as Error, done);
        return;
      }
      this.status({ fill: 'blue', shape: 'dot', text: `${request.operation} ${request.path}` });
      server.send(endpoint, request, { timeoutMs, ttlMs, park: { owner: this.id, msg } }).then(
        (response) => {
          if (closed) return done();
          msg.endpoint = endpoint;
          msg.code = response.code;
          msg.contentFormat = response.contentFormat;
          operation.output(response, msg, { def, request, server });
          this.status({ fill: 'green', shape: 'dot', text: `${response.code} ${request.operation} ${request.path}` });
          send(msg);
          done();
        },
        (error: Error) => {
          // Parked: the request goes on after a restart, or at the instance that serves the device now.
          if (closed || (error instanceof DeviceRequestError && error.kind === 'parked')) return done();
          msg.endpoint = endpoint;
          fail(this, msg, error, done);
        },
      );
    });

    // Requests this node left waiting for sleeping devices before a redeploy or restart (or its copy at another instance, in a cluster) go out again, with the time they have left.
    const resend = () => {
      if (closed) return;
      for (const parked of server.takeParked(this.id)) this.receive({ ...(parked.msg as Msg), ttl: (parked.deadline - Date.now()) / 1000 });
    };
    const onParked = (owners: string[]) => {
      if (owners.includes(this.id)) resend();
    };
    server.on('parked', onParked);
    void server.ready.then(resend);

    this.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      server.off('parked', onParked);
      host.deregister(this);
      if (!removed) server.parkRequests(this.id);
      done();
    });
  }
  RED.nodes.registerType(type, OperationNode);
}

/** Reports a failure through done(err): Catch nodes get the msg with msg.error (and msg.code when the device answered). */
function fail(node: Node, msg: Msg, error: Error, done: Done): void {
  const known = error instanceof DeviceRequestError || error instanceof InputError || error instanceof ContentError;
  if (error instanceof DeviceRequestError && error.code) msg.code = error.code;
  node.status(failureStatus(error));
  done(known ? error : new Error(`unexpected failure: ${error.message}`));
}

function failureStatus(error: Error): NodeStatus {
  const text = error instanceof DeviceRequestError ? (error.code ?? error.kind) : error instanceof InputError || error instanceof ContentError ? 'invalid input' : 'error';
  return { fill: 'red', shape: 'ring', text };
}
