import type { Node, NodeAPI, NodeDef, NodeStatus } from 'node-red';
import { ContentError } from '../lib/content/values';
import { DeviceRequestError } from '../lib/lwm2m/device-client';
import type { DeviceRequest, ResponseBase } from '../lib/lwm2m/requests/device-request';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import { InputError, Msg, resolveEndpoint, resolveTimeoutMs, resolveTtlMs, typedSetting } from './inputs';
import { Settings, settingsOf } from './node-defaults';
import { hostFor } from './socket-host';

export type OperationType = 'lwm2m-read' | 'lwm2m-write' | 'lwm2m-execute' | 'lwm2m-create' | 'lwm2m-delete' | 'lwm2m-discover' | 'lwm2m-write-attributes';

/** What distinguishes one operation node from another; its settings come with the device and path already read for the msg. */
export interface Operation<T extends OperationType, R> {
  /** Builds the request from the node's settings and the msg; throws InputError or ContentError for a bad msg. */
  request(settings: Settings<T>, msg: Msg, server: Lwm2mServer, node: Node): DeviceRequest<R>;
  /** Puts the response into the msg that goes out. */
  output(response: R & ResponseBase, msg: Msg, context: OutputContext<T, R>): void;
}

export interface OutputContext<T extends OperationType, R> {
  settings: Settings<T>;
  request: DeviceRequest<R>;
  server: Lwm2mServer;
}

type Send = (msg: Msg) => void;
type Done = (error?: Error) => void;

/** The node's settings for one msg: the device and the path read from where they are set to come from. */
export function settingsFor<T extends OperationType | 'lwm2m-observe'>(RED: NodeAPI, node: Node, settings: Settings<T>, msg: Msg): Settings<T> | Promise<Settings<T>> {
  const { endpoint, endpointType, path, pathType } = settings as unknown as Settings<'lwm2m-read'>;
  const device = typedSetting(RED, node, endpoint, endpointType, msg);
  const target = typedSetting(RED, node, path, pathType, msg);
  if (typeof device === 'string' && typeof target === 'string') return settings;
  return Promise.all([device, target]).then(([endpointValue, pathValue]) => ({ ...settings, endpoint: endpointValue, path: pathValue }));
}

/**
 * Registers a node type that turns each msg into one LwM2M operation on a
 * device: endpoint from the node or msg.endpoint, the answer in msg.payload
 * and msg.code, failures to node.error(err, msg) so Catch nodes see them.
 */
export function registerOperationNode<T extends OperationType, R>(RED: NodeAPI, type: T, operation: Operation<T, R>): void {
  function OperationNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const settings = settingsOf(type, def);
    const host = hostFor<Lwm2mServer>(RED, this, settings.server, 'lwm2m-operations');
    if (!host) return;
    const server = host.service;
    let closed = false;
    host.register(this);

    const run = (resolved: Settings<T>, msg: Msg, send: Send, done: Done) => {
      let request: DeviceRequest<R>;
      let endpoint: string;
      let timeoutMs: number;
      let ttlMs: number | undefined;
      try {
        endpoint = resolveEndpoint(resolved.endpoint, msg);
        timeoutMs = resolveTimeoutMs(resolved.timeout, msg);
        ttlMs = resolveTtlMs(msg);
        request = operation.request(resolved, msg, server, this);
      } catch (error) {
        fail(RED, this, msg, error as Error, done);
        return;
      }
      this.status({ fill: 'blue', shape: 'dot', text: RED._('lwm2m-operations.status.requesting', { operation: request.operation, path: String(request.path) }) });
      server.send(endpoint, request, { timeoutMs, ttlMs, park: { owner: this.id, msg } }).then(
        (response) => {
          if (closed) return done();
          msg.endpoint = endpoint;
          msg.code = response.code;
          msg.contentFormat = response.contentFormat;
          operation.output(response, msg, { settings: resolved, request, server });
          this.status({ fill: 'green', shape: 'dot', text: RED._('lwm2m-operations.status.answered', { code: response.code, operation: request.operation, path: String(request.path) }) });
          send(msg);
          done();
        },
        (error: Error) => {
          // Parked: the request goes on after a restart, or at the instance that serves the device now.
          if (closed || (error instanceof DeviceRequestError && error.kind === 'parked')) return done();
          msg.endpoint = endpoint;
          fail(RED, this, msg, error, done);
        },
      );
    };

    this.on('input', (msg: Msg, send: Send, done: Done) => {
      const resolved = settingsFor(RED, this, settings, msg);
      if (!(resolved instanceof Promise)) return run(resolved, msg, send, done);
      resolved.then(
        (values) => run(values, msg, send, done),
        (error: Error) => fail(RED, this, msg, error, done),
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
function fail(RED: NodeAPI, node: Node, msg: Msg, error: Error, done: Done): void {
  const known = error instanceof DeviceRequestError || error instanceof InputError || error instanceof ContentError;
  if (error instanceof DeviceRequestError && error.code) msg.code = error.code;
  node.status(failureStatus(RED, 'lwm2m-operations', error));
  done(known ? error : new Error(`unexpected failure: ${error.message}`));
}

/** A red status for a failed request, in the editor's language: the device's code, or why there was none ("<messages>.failure.<kind>"). */
export function failureStatus(RED: NodeAPI, messages: string, error: Error): NodeStatus {
  let text: string;
  if (error instanceof DeviceRequestError) text = error.code ?? RED._(`${messages}.failure.${error.kind}`);
  else if (error instanceof InputError || error instanceof ContentError) text = RED._(`${messages}.failure.invalid-input`);
  else text = RED._(`${messages}.failure.error`);
  return { fill: 'red', shape: 'ring', text };
}
