import type { NodeAPI } from 'node-red';
import type { Request, RequestHandler, Response } from 'express';
import { namedRecords, payloadToRecords, recordsToPayload } from '../lib/content/payload';
import { ContentError } from '../lib/content/values';
import { parseContentFormat } from '../lib/content/formats';
import { DeviceRequestError } from '../lib/lwm2m/device-client';
import { SORT_KEYS, SortKey, completeEndpoints, queryRegistrations } from '../lib/lwm2m/registration-query';
import { CreateRequest } from '../lib/lwm2m/requests/create';
import { DeleteRequest } from '../lib/lwm2m/requests/delete';
import type { DeviceRequest, ResponseBase } from '../lib/lwm2m/requests/device-request';
import { DiscoverRequest } from '../lib/lwm2m/requests/discover';
import { ExecuteRequest } from '../lib/lwm2m/requests/execute';
import { ObserveRequest } from '../lib/lwm2m/requests/observe';
import { ReadRequest } from '../lib/lwm2m/requests/read';
import { WriteAttributesRequest } from '../lib/lwm2m/requests/write-attributes';
import { WriteRequest } from '../lib/lwm2m/requests/write';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import { Lwm2mPath, PathError } from '../lib/model/path';
import type { ServerConfigNode } from './config-nodes';
import { deviceDetails, deviceSummary, jsonValue, objectJson, valueFromJson } from './admin/device-json';
import { CONSOLE_OWNER, MAX_CONSOLE_OBSERVATIONS, MAX_WATCHED, ServerConsole, WATCH_TTL_MS } from './admin/server-console';

/** The running server config nodes and their consoles, for the editor's devices panel. */
const consoles = new Map<string, ServerConsole>();

/** Admin routes live under this prefix of httpAdminRoot; the editor calls them with relative URLs. */
const ADMIN_PREFIX = '/lwm2m-red';

/** A page of the devices list holds at most this many devices. */
const PAGE_LIMIT = 50;
/** Completion answers hold at most this many entries. */
const COMPLETION_LIMIT = 20;
const PATH_COMPLETION_LIMIT = 50;
/** Requests from the console wait this long for the device. */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * Runs the synchronous work of an answer and reports its CPU time in a
 * Server-Timing header: what a request costs the runtime, whatever else the
 * machine is busy with (the fleet test checks it).
 */
function timed<T>(res: Response, work: () => T): T {
  const started = process.cpuUsage();
  const result = work();
  const used = process.cpuUsage(started);
  res.set('Server-Timing', `cpu;dur=${((used.user + used.system) / 1000).toFixed(2)}`);
  return result;
}

/** A request the console cannot make, with the reason (400). */
class BadRequest extends Error {}

type Handler = (req: Request, res: Response, console: ServerConsole, server: Lwm2mServer) => unknown;

/**
 * The editor's view of the servers: the devices list (paged, searched,
 * sorted on the server), completion, the object model by object, and the
 * device console's operations and message log. Every route checks
 * lwm2m-server.read or lwm2m-server.write with RED.auth.needsPermission, so
 * an editor login with read-only rights can look but not change anything.
 * No answer grows with the fleet.
 */
export function registerAdminApi(RED: NodeAPI): void {
  const read = RED.auth.needsPermission('lwm2m-server.read');
  const write = RED.auth.needsPermission('lwm2m-server.write');
  const route = (handler: Handler): RequestHandler => (req, res) => {
    const serverConsole = consoles.get(String(req.params.id));
    if (!serverConsole) {
      res.status(404).json({ error: `no running lwm2m-server ${String(req.params.id)}` });
      return;
    }
    try {
      const answer = handler(req, res, serverConsole, serverConsole.node.host.service);
      if (answer instanceof Promise) answer.catch((error: unknown) => failure(error, res));
    } catch (error) {
      failure(error, res);
    }
  };
  const base = `${ADMIN_PREFIX}/servers/:id`;
  const device = `${base}/devices/:endpoint`;

  RED.httpAdmin.get(`${ADMIN_PREFIX}/servers`, read, (_req, res) => {
    res.json(
      [...consoles.values()].map(({ node }) => ({
        id: node.id,
        name: node.name,
        status: node.host.status(),
        devices: node.host.service.registrations.size,
        // In a cluster the panel lists the devices this instance serves (the others are in Redis, served elsewhere).
        ...(node.host.service.cluster ? { instance: node.host.service.cluster.instance } : {}),
      })),
    );
  });

  RED.httpAdmin.get(`${base}/devices`, read, route(async (req, res, _console, server) => {
    await server.ready;
    const sort = text(req.query.sort, 'endpoint') as SortKey;
    if (!SORT_KEYS.includes(sort)) throw new BadRequest(`sort by ${SORT_KEYS.join(', ')}`);
    const answer = timed(res, () => {
      const page = queryRegistrations(server.registrations.all(), {
        search: text(req.query.search, ''),
        match: req.query.match === 'substring' ? 'substring' : 'prefix',
        sort,
        descending: req.query.order === 'desc',
        after: optional(req.query.after),
        before: optional(req.query.before),
        limit: Math.min(PAGE_LIMIT, Math.max(1, Number(req.query.limit) || PAGE_LIMIT)),
      });
      return { ...page, items: page.items.map((registration) => deviceSummary(server, registration)) };
    });
    res.json(answer);
  }));

  RED.httpAdmin.get(device, read, route(async (req, res, serverConsole, server) => {
    await server.ready;
    const registration = server.registrations.getByEndpoint(String(req.params.endpoint));
    if (!registration) {
      res.status(404).json({ error: `${String(req.params.endpoint)} is not registered` });
      return;
    }
    res.json(deviceDetails(server, registration, (id) => serverConsole.lastValue(id), CONSOLE_OWNER));
  }));

  RED.httpAdmin.get(`${device}/log`, read, route((req, res, serverConsole) => {
    res.json({ recording: serverConsole.log.isWatched(String(req.params.endpoint)), entries: serverConsole.log.entries(String(req.params.endpoint)) });
  }));

  RED.httpAdmin.post(`${base}/watch`, read, route((req, res, serverConsole) => {
    const body = (req.body ?? {}) as { client?: unknown; endpoints?: unknown; device?: unknown };
    if (typeof body.client !== 'string' || body.client.length === 0 || body.client.length > 64) throw new BadRequest('client must be a short text');
    const endpoints = Array.isArray(body.endpoints) ? body.endpoints.filter((item): item is string => typeof item === 'string').slice(0, MAX_WATCHED) : [];
    if (body.endpoints === null) serverConsole.unwatch(body.client);
    else serverConsole.watch(body.client, endpoints, typeof body.device === 'string' && body.device ? body.device : undefined);
    res.json({ ttl: WATCH_TTL_MS });
  }));

  RED.httpAdmin.get(`${base}/complete/endpoints`, read, route(async (req, res, _console, server) => {
    await server.ready;
    const search = text(req.query.q, '');
    const limit = COMPLETION_LIMIT;
    res.json(timed(res, () => completeEndpoints(server.registrations.all(), search, limit)));
  }));

  RED.httpAdmin.get(`${base}/complete/paths`, read, route(async (req, res, _console, server) => {
    await server.ready;
    res.json(timed(res, () => completePaths(server, text(req.query.endpoint, ''), text(req.query.q, ''))));
  }));

  RED.httpAdmin.get(`${base}/objects/:objectId`, read, route((req, res, _console, server) => {
    // The version the device announced (or its LwM2M version implies): the closest the model holds.
    const definition = server.model.getObject(Number(req.params.objectId), optional(req.query.version));
    if (!definition || !/^\d+$/.test(String(req.params.objectId))) {
      res.status(404).json({ error: `object ${String(req.params.objectId)} is not in the object model` });
      return;
    }
    // The editor keeps each object per id and version: it asks once per editor session.
    res.set('Cache-Control', 'private, max-age=3600');
    res.json({ ...objectJson(definition), requested: optional(req.query.version), versions: server.model.versionsOf(definition.id).map((known) => known.version) });
  }));

  // The device console: one route per LwM2M operation.
  const operation = (build: (body: Record<string, unknown>, server: Lwm2mServer) => DeviceRequest<unknown>, answer: (response: ResponseBase & Record<string, unknown>, request: DeviceRequest<unknown>, server: Lwm2mServer, endpoint: string) => object) =>
    route(async (req, res, _console, server) => {
      const body = { ...(req.query as Record<string, unknown>), ...((req.body ?? {}) as Record<string, unknown>), endpoint: String(req.params.endpoint) };
      const request = build(body, server);
      const response = (await server.send(String(req.params.endpoint), request, { timeoutMs: REQUEST_TIMEOUT_MS })) as ResponseBase & Record<string, unknown>;
      res.json({ code: response.code, contentFormat: response.contentFormat, ...answer(response, request, server, String(req.params.endpoint)) });
    });
  const values = (response: ResponseBase & Record<string, unknown>, request: DeviceRequest<unknown>, server: Lwm2mServer, endpoint: string) => {
    const records = response.records as Parameters<typeof recordsToPayload>[0];
    return { payload: jsonValue(recordsToPayload(records, request.path)), resources: jsonValue(namedRecords(records, server.modelFor(endpoint))) };
  };
  const nothing = () => ({});

  RED.httpAdmin.get(`${device}/read`, read, operation((body) => new ReadRequest(pathOf(body.path), formatOf(body.format)), values));
  RED.httpAdmin.get(`${device}/discover`, read, operation((body) => new DiscoverRequest(pathOf(body.path)), (response) => ({
    links: (response.links as { path: string; attributes: Record<string, unknown> }[]).map((link) => ({ path: link.path, attributes: { ...link.attributes } })),
  })));
  RED.httpAdmin.post(`${device}/write`, write, operation((body, server) => {
    const target = pathOf(body.path);
    const mode = body.mode === 'update' ? 'update' : 'replace';
    return new WriteRequest(target, payloadToRecords(valueFromJson(body.value), target, server.modelFor(String(body.endpoint))), mode, formatOf(body.format));
  }, nothing));
  RED.httpAdmin.post(`${device}/execute`, write, operation((body) => new ExecuteRequest(pathOf(body.path), body.args ?? ''), nothing));
  RED.httpAdmin.post(`${device}/create`, write, operation((body, server) => {
    const target = pathOf(body.path);
    if (!target.isObject()) throw new BadRequest(`create needs an object path such as /3303, not ${target}`);
    const instanceId = body.instanceId === undefined || body.instanceId === '' ? undefined : Number(body.instanceId);
    if (instanceId !== undefined && (!Number.isInteger(instanceId) || instanceId < 0 || instanceId > 65534)) throw new BadRequest('instance id must be 0..65534');
    const registration = server.registrations.getByEndpoint(String(body.endpoint ?? ''));
    const id = instanceId ?? (registration ? CreateRequest.instanceFor(target.objectId!, undefined, { registration }) : 0);
    return new CreateRequest(target, payloadToRecords(valueFromJson(body.value ?? {}), target.child(id), server.modelFor(registration)), id, formatOf(body.format));
  }, (response) => ({ instanceId: response.instanceId, location: response.location })));
  RED.httpAdmin.post(`${device}/delete`, write, operation((body) => new DeleteRequest(pathOf(body.path)), nothing));
  RED.httpAdmin.post(`${device}/attributes`, write, operation((body) => new WriteAttributesRequest(pathOf(body.path), body.attributes), nothing));

  // De-register (forget the registration) and optionally unbind the DTLS identity the name was bound to.
  RED.httpAdmin.delete(device, write, route(async (req, res, _console, server) => {
    await server.ready;
    const endpoint = String(req.params.endpoint);
    const { removed, unbound } = server.remove(endpoint, 'editor', req.query.forgetIdentity === 'true');
    if (!removed && !unbound) res.status(404).json({ error: `device "${endpoint}" is not registered` });
    else res.json({ removed: removed !== undefined, unbound });
  }));

  RED.httpAdmin.post(`${device}/observe`, write, route(async (req, res, serverConsole, server) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (serverConsole.consoleObservations() >= MAX_CONSOLE_OBSERVATIONS) throw new BadRequest(`the console holds ${MAX_CONSOLE_OBSERVATIONS} observations already: cancel some first`);
    const request = new ObserveRequest(pathOf(body.path), formatOf(body.format));
    const result = await server.observe(String(req.params.endpoint), request, serverConsole.listener, { timeoutMs: REQUEST_TIMEOUT_MS }, CONSOLE_OWNER);
    if (result.established) serverConsole.observed(result.first);
    res.json({
      observation: result.established ? result.observation.id : undefined,
      code: result.first.code,
      payload: jsonValue(recordsToPayload(result.first.records, request.path)),
    });
  }));

  RED.httpAdmin.post(`${device}/cancel`, write, route(async (req, res, _console, server) => {
    const id = String(((req.body ?? {}) as Record<string, unknown>).observation ?? '');
    const observation = server.observations.list(String(req.params.endpoint)).find((candidate) => candidate.id === id);
    if (!observation) {
      res.status(404).json({ error: `no observation ${id} of ${String(req.params.endpoint)}` });
      return;
    }
    await server.observations.cancel(observation, { timeoutMs: REQUEST_TIMEOUT_MS });
    server.scheduleSave();
    res.json({ cancelled: id });
  }));
}

/** The paths the editor offers for a device (its objects and instances with the model's resources), or from the model alone. */
function completePaths(server: Lwm2mServer, endpoint: string, search: string): { value: string; label: string }[] {
  const wanted = search.trim().toLowerCase();
  const results: { value: string; label: string }[] = [];
  const offer = (value: string, label: string) => {
    if (results.length < PATH_COMPLETION_LIMIT && (!wanted || value.startsWith(wanted) || label.toLowerCase().includes(wanted))) results.push({ value, label });
  };
  const registration = endpoint ? server.registrations.getByEndpoint(endpoint) : undefined;
  const model = server.modelFor(registration);
  const objects = registration ? registration.objects.map((object) => ({ id: object.id, instances: object.instances })) : model.objects().map((object) => ({ id: object.id, instances: [0] }));
  for (const object of objects) {
    const definition = model.getObject(object.id);
    offer(`/${object.id}`, `/${object.id} ${definition?.name ?? ''}`.trim());
    for (const instance of object.instances) {
      const base = `/${object.id}/${instance}`;
      offer(base, `${base} ${definition?.name ?? ''}`.trim());
      for (const resource of Object.values(definition?.resources ?? {})) offer(`${base}/${resource.id}`, `${base}/${resource.id} ${resource.name}`);
      if (results.length >= PATH_COMPLETION_LIMIT) return results;
    }
  }
  return results;
}

function text(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

function optional(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function pathOf(value: unknown): Lwm2mPath {
  try {
    return Lwm2mPath.parse(String(value ?? ''));
  } catch (error) {
    throw new BadRequest((error as PathError).message);
  }
}

function formatOf(value: unknown): number | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  return parseContentFormat(value);
}

function failure(error: unknown, res: Response): void {
  if (res.headersSent) return;
  if (error instanceof DeviceRequestError) res.status(error.kind === 'unknown-endpoint' ? 404 : error.kind === 'invalid-request' ? 400 : 502).json({ error: error.message, code: error.code, kind: error.kind });
  else if (error instanceof ContentError || error instanceof BadRequest) res.status(400).json({ error: error.message });
  else res.status(500).json({ error: 'internal error' });
}

/** Tracks a running server node for the panel; its console is dropped when the node closes. */
export function trackServer(RED: NodeAPI, node: ServerConfigNode): void {
  const serverConsole = new ServerConsole(RED, node);
  consoles.set(node.id, serverConsole);
  node.on('close', () => {
    serverConsole.close();
    if (consoles.get(node.id) === serverConsole) consoles.delete(node.id);
  });
}
