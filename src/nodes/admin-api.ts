import type { NodeAPI } from 'node-red';
import type { Request, Response } from 'express';
import { namedRecords, payloadToRecords, recordsToPayload } from '../lib/content/payload';
import { ContentError } from '../lib/content/values';
import { DeviceRequestError } from '../lib/lwm2m/device-client';
import { registrationToJson } from '../lib/lwm2m/registration';
import { DiscoverRequest } from '../lib/lwm2m/requests/discover';
import { ReadRequest } from '../lib/lwm2m/requests/read';
import { WriteRequest } from '../lib/lwm2m/requests/write';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import { Lwm2mPath, PathError } from '../lib/model/path';
import type { ServerConfigNode } from './config-nodes';

/** The running server config nodes, for the editor's devices panel. */
const servers = new Map<string, ServerConfigNode>();

/** Admin routes live under this prefix of httpAdminRoot; the editor calls them with relative URLs. */
export const ADMIN_PREFIX = '/lwm2m-red';
/** The comms topic the runtime publishes device changes on; the panel refreshes on it. */
export const DEVICES_TOPIC = 'lwm2m-red/devices';

/** Values as JSON for the editor: bytes as hex, times as ISO strings. */
function jsonValue(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return { hex: value.toString('hex') };
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, jsonValue(item)]));
  return value;
}

function describeDevice(server: Lwm2mServer, endpoint: string) {
  const registration = server.registrations.getByEndpoint(endpoint);
  if (!registration) return undefined;
  const model = server.modelFor(registration);
  return {
    ...registrationToJson(registration),
    awake: server.presence.isAwake(endpoint),
    observations: server.observations.list(endpoint).map((observation) => observation.paths),
    objects: registration.objects.map((object) => {
      const definition = model.getObject(object.id);
      return {
        id: object.id,
        name: definition?.name,
        version: object.version,
        /** The version of the definition the device's values are typed and named by (its "ver", or what its LwM2M version implies). */
        modelVersion: definition?.version,
        instances: object.instances,
        resources: Object.values(definition?.resources ?? {}).map((resource) => ({
          id: resource.id,
          name: resource.name,
          type: resource.type,
          operations: resource.operations,
          multiple: resource.multiple,
          units: resource.units,
        })),
      };
    }),
  };
}

/**
 * The editor's view of the servers: GET servers, GET servers/:id/devices,
 * GET servers/:id/devices/:endpoint/read?path= and discover?path=,
 * POST .../write {path, value}, DELETE servers/:id/devices/:endpoint (removes the registration),
 * GET model/objects. Each route checks a permission, so an editor login with
 * read-only rights can look but not write or remove.
 */
export function registerAdminApi(RED: NodeAPI): void {
  const read = RED.auth.needsPermission('lwm2m-server.read');
  const write = RED.auth.needsPermission('lwm2m-server.write');
  const server = (req: Request, res: Response): Lwm2mServer | undefined => {
    const node = servers.get(String(req.params.id));
    if (!node) res.status(404).json({ error: `no running lwm2m-server ${String(req.params.id)}` });
    return node?.host.service;
  };
  const path = (text: unknown, res: Response): Lwm2mPath | undefined => {
    try {
      return Lwm2mPath.parse(String(text ?? ''));
    } catch (error) {
      res.status(400).json({ error: (error as PathError).message });
      return undefined;
    }
  };
  const failure = (error: unknown, res: Response) => {
    if (error instanceof DeviceRequestError) res.status(error.kind === 'unknown-endpoint' ? 404 : error.kind === 'invalid-request' ? 400 : 502).json({ error: error.message, code: error.code, kind: error.kind });
    else if (error instanceof ContentError) res.status(400).json({ error: error.message });
    else res.status(500).json({ error: 'internal error' });
  };

  RED.httpAdmin.get(`${ADMIN_PREFIX}/servers`, read, (_req, res) => {
    res.json(
      [...servers.values()].map((node) => ({
        id: node.id,
        name: node.name,
        status: node.host.status(),
        devices: node.host.service.registrations.size,
        // In a cluster the panel lists the devices this instance serves (the others are in Redis, served elsewhere).
        ...(node.host.service.cluster ? { instance: node.host.service.cluster.instance } : {}),
      })),
    );
  });

  RED.httpAdmin.get(`${ADMIN_PREFIX}/servers/:id/devices`, read, (req, res) => {
    const lwm2m = server(req, res);
    if (!lwm2m) return;
    void lwm2m.ready.then(() => res.json([...lwm2m.registrations.all()].map((registration) => describeDevice(lwm2m, registration.endpoint))));
  });

  RED.httpAdmin.get(`${ADMIN_PREFIX}/servers/:id/devices/:endpoint/read`, read, (req, res) => {
    const lwm2m = server(req, res);
    const target = lwm2m && path(req.query.path, res);
    if (!lwm2m || !target) return;
    lwm2m.send(String(req.params.endpoint), new ReadRequest(target), { timeoutMs: 10_000 }).then(
      (response) =>
        res.json({
          code: response.code,
          contentFormat: response.contentFormat,
          payload: jsonValue(recordsToPayload(response.records, target)),
          resources: jsonValue(namedRecords(response.records, lwm2m.modelFor(String(req.params.endpoint)))),
        }),
      (error) => failure(error, res),
    );
  });

  RED.httpAdmin.get(`${ADMIN_PREFIX}/servers/:id/devices/:endpoint/discover`, read, (req, res) => {
    const lwm2m = server(req, res);
    const target = lwm2m && path(req.query.path, res);
    if (!lwm2m || !target) return;
    let request: DiscoverRequest;
    try {
      request = new DiscoverRequest(target);
    } catch (error) {
      failure(error, res);
      return;
    }
    lwm2m.send(String(req.params.endpoint), request, { timeoutMs: 10_000 }).then(
      (response) => res.json({ code: response.code, links: response.links.map((link) => ({ path: link.path, attributes: { ...link.attributes } })) }),
      (error) => failure(error, res),
    );
  });

  RED.httpAdmin.post(`${ADMIN_PREFIX}/servers/:id/devices/:endpoint/write`, write, (req, res) => {
    const lwm2m = server(req, res);
    const target = lwm2m && path(req.body?.path, res);
    if (!lwm2m || !target) return;
    let request: WriteRequest;
    try {
      request = new WriteRequest(target, payloadToRecords(req.body.value, target, lwm2m.modelFor(String(req.params.endpoint))));
    } catch (error) {
      failure(error, res);
      return;
    }
    lwm2m.send(String(req.params.endpoint), request, { timeoutMs: 10_000 }).then(
      (response) => res.json({ code: response.code }),
      (error) => failure(error, res),
    );
  });

  RED.httpAdmin.delete(`${ADMIN_PREFIX}/servers/:id/devices/:endpoint`, write, (req, res) => {
    const lwm2m = server(req, res);
    if (!lwm2m) return;
    const endpoint = String(req.params.endpoint);
    const { removed, unbound } = lwm2m.remove(endpoint, 'editor', req.query.forgetIdentity === 'true');
    if (!removed && !unbound) res.status(404).json({ error: `device "${endpoint}" is not registered` });
    else res.json({ removed: removed !== undefined, unbound });
  });

  RED.httpAdmin.get(`${ADMIN_PREFIX}/model/objects`, read, (_req, res) => {
    const first = servers.values().next().value as ServerConfigNode | undefined;
    const model = first?.host.service.model;
    if (!model) {
      res.json([]);
      return;
    }
    res.json(
      model.objects().map((object) => ({
        id: object.id,
        name: object.name,
        version: object.version,
        versions: model.versionsOf(object.id).map((definition) => definition.version),
        resources: Object.values(object.resources).map((r) => ({ id: r.id, name: r.name, type: r.type, operations: r.operations })),
      })),
    );
  });
}

/** Tracks a server node for the panel and tells open editors when its devices change. */
export function trackServer(RED: NodeAPI, node: ServerConfigNode): void {
  servers.set(node.id, node);
  let timer: NodeJS.Timeout | undefined;
  const changed = () => {
    if (timer) return;
    // A registration storm becomes one refresh a second in the editor.
    timer = setTimeout(() => {
      timer = undefined;
      RED.comms.publish(DEVICES_TOPIC, { server: node.id }, false);
    }, 1000);
  };
  const server = node.host.service;
  for (const event of ['registered', 'updated', 'deregistered', 'expired', 'awake', 'sleeping'] as const) server.on(event, changed);
  node.on('close', () => {
    clearTimeout(timer);
    if (servers.get(node.id) === node) servers.delete(node.id);
  });
}
