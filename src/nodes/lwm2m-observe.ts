import type { Node, NodeAPI, NodeDef } from 'node-red';
import { namedRecords, recordsToPayload } from '../lib/content/payload';
import { ContentError } from '../lib/content/values';
import { DeviceRequestError } from '../lib/lwm2m/device-client';
import type { NotificationEvent, Observation, ObservationListener, ObserveKind } from '../lib/lwm2m/observations';
import type { Registration } from '../lib/lwm2m/registration';
import { ObserveCompositeRequest, ObserveRequest } from '../lib/lwm2m/requests/observe';
import { ATTRIBUTE_NAMES, WriteAttributesRequest, attributesInObserve } from '../lib/lwm2m/requests/write-attributes';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import type { Lwm2mPath } from '../lib/model/path';
import { InputError, Msg, checkCompositeFormat, parsePath, resolveEndpoint, resolveFormat, resolvePath, resolveTimeoutMs } from './inputs';
import { hostFor } from './socket-host';

interface ObserveNodeDef extends NodeDef {
  server: string;
  endpoint?: string;
  path?: string;
  composite?: boolean;
  format?: string;
  /** "msg": observe when a msg arrives; "register": observe every matching device as it registers. */
  start?: 'msg' | 'register';
  timeout?: string | number;
  /** One setting per notification attribute (ATTRIBUTE_NAMES): pmin, pmax, gt, lt, st, epmin, epmax, edge, con, hqmax. */
  [attribute: string]: unknown;
}

type Send = (msg: Msg) => void;
type Done = (error?: Error) => void;

const CANCEL_TIMEOUT_MS = 2000;

function pathsKey(request: ObserveKind): string {
  return request instanceof ObserveCompositeRequest ? request.paths.map(String).join(',') : request.path.toString();
}

export = function register(RED: NodeAPI): void {
  function Lwm2mObserveNode(this: Node, def: ObserveNodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const host = hostFor<Lwm2mServer>(RED, this, def.server, 'lwm2m-observe');
    if (!host) return;
    const server: Lwm2mServer = host.service;
    const mine = new Set<Observation>();
    let closing = false;
    const nodeAttributes = Object.fromEntries(
      ATTRIBUTE_NAMES.map((name) => [name, def[name]]).filter(([, value]) => typeof value === 'string' && value.trim() !== ''),
    );
    /** The node's attributes, over msg.attributes where both name one; undefined for none. */
    const attributesFor = (msg: Msg): Record<string, unknown> | undefined => {
      const fromMsg = msg.attributes;
      if (fromMsg !== undefined && (fromMsg === null || typeof fromMsg !== 'object' || Array.isArray(fromMsg))) throw new InputError('msg.attributes must be an object such as {"pmin": 5, "gt": 30}');
      const merged = { ...(fromMsg as Record<string, unknown> | undefined), ...nodeAttributes };
      return Object.keys(merged).length > 0 ? merged : undefined;
    };
    host.register(this);

    // At most one status update per 250 ms, the first at once: a fleet that registers establishes thousands of observations a second.
    let statusTimer: NodeJS.Timeout | undefined;
    let statusStale = false;
    const showCount = (): void => {
      if (statusTimer) {
        statusStale = true;
        return;
      }
      node.status({ fill: 'green', shape: 'dot', text: RED._('lwm2m-observe.status.observing', { count: String(mine.size) }) });
      statusTimer = setTimeout(() => {
        statusTimer = undefined;
        if (statusStale && !closing) {
          statusStale = false;
          showCount();
        }
      }, 250);
    };

    const emit = (event: NotificationEvent, first: boolean, base: Msg = {}, send: Send = (msg) => node.send(msg)) => {
      const { observation } = event;
      const paths = observation.paths;
      // Built field by field: this runs for every notification of every device.
      const msg: Msg = Object.assign(base, {
        topic: paths.length === 1 ? paths[0] : paths.join(','),
        endpoint: observation.endpoint,
        path: paths.length === 1 ? paths[0] : [...paths],
        payload: recordsToPayload(event.records, observation.request.path),
        resources: namedRecords(event.records, event.model),
        code: event.code,
        contentFormat: event.contentFormat,
        observation: observation.id,
      });
      if (event.sequence !== undefined) msg.sequence = event.sequence;
      if (first) msg.first = true;
      if (server.cluster) msg.instance = server.cluster.instance;
      send(msg);
    };

    const listener: ObservationListener = {
      notify: (event) => emit(event, false),
      error: (error, observation) => node.error(error, { endpoint: observation.endpoint, path: [...observation.paths], observation: observation.id, payload: error.message }),
      ended: (observation, reason) => {
        if (!mine.delete(observation)) return;
        node.log(RED._('lwm2m-observe.log.ended', { endpoint: observation.endpoint, paths: observation.paths.join(','), reason }));
        showCount();
      },
      // In a cluster: taken over from another instance, or made for this node by its copy there.
      adopted: (observation) => {
        if (closing || mine.has(observation)) return;
        mine.add(observation);
        showCount();
      },
    };

    const requestFor = (msg: Msg): ObserveKind => {
      const format = resolveFormat(def.format, msg);
      const attributes = attributesFor(msg);
      if (!def.composite) return new ObserveRequest(resolvePath(def.path, msg), format, attributes);
      const listed: unknown = def.path?.trim() ? def.path.split(',') : msg.paths;
      if (!Array.isArray(listed) || listed.length === 0) throw new InputError('Observe-Composite needs paths: in the node (comma-separated) or in msg.paths (an array)');
      return new ObserveCompositeRequest(listed.map((path: unknown) => parsePath(typeof path === 'string' ? path.trim() : path)), format, attributes);
    };

    /**
     * Observes, with the attributes in the Observe's query for an LwM2M 1.2
     * device, or written to each path first (Write-Attributes) for an older
     * one; resolves with the first response.
     */
    const start = async (endpoint: string, request: ObserveKind, timeoutMs: number) => {
      const registration = server.registrations.getByEndpoint(endpoint);
      if (request instanceof ObserveCompositeRequest) checkCompositeFormat(node, 'fetch', request.format, registration);
      if (request.attributes && registration && !attributesInObserve(registration)) {
        const targets: Lwm2mPath[] = request instanceof ObserveCompositeRequest ? request.paths : [request.path];
        for (const path of targets) await server.send(endpoint, new WriteAttributesRequest(path, request.attributes), { timeoutMs });
      }
      const result = await server.observe(endpoint, request, listener, { timeoutMs }, node.id);
      if (!result.established) node.warn(RED._('lwm2m-observe.errors.notAccepted', { endpoint, paths: result.observation.paths.join(',') }));
      // An observation another instance holds (in a cluster) is counted by this node's copy there.
      else if (server.observations.list(endpoint).includes(result.observation)) mine.add(result.observation);
      showCount();
      return result.first;
    };

    // By the device's own list: this runs for every registering device of a fleet.
    const isObserved = (endpoint: string, request: ObserveKind) =>
      server.observations.list(endpoint).some((o) => mine.has(o) && o.paths.join(',') === pathsKey(request));

    const cancel = async (endpoint: string | undefined, paths: string | undefined) => {
      // A device's observations wherever it is served (another instance, in a cluster).
      if (endpoint) return server.cancelObservations(node.id, endpoint, paths, CANCEL_TIMEOUT_MS);
      const matching = [...mine].filter((o) => !paths || o.paths.join(',') === paths);
      await Promise.all(matching.map((o) => server.observations.cancel(o, { timeoutMs: CANCEL_TIMEOUT_MS })));
      return matching.length;
    };

    // A msg starts an observation, or with msg.cancel (or msg.action "cancel") ends the device's observations of the path (all, without a path).
    this.on('input', (msg: Msg, send: Send, done: Done) => {
      try {
        const endpoint = resolveEndpoint(def.endpoint, msg);
        if (msg.cancel === true || msg.action === 'cancel') {
          const named = Boolean(def.path?.trim()) || msg.path !== undefined || msg.paths !== undefined;
          cancel(endpoint, named ? pathsKey(requestFor(msg)) : undefined).then((count) => {
            if (count === 0) node.warn(RED._('lwm2m-observe.errors.nothingToCancel', { endpoint }));
            showCount();
            done();
          }, done);
          return;
        }
        const request = requestFor(msg);
        start(endpoint, request, resolveTimeoutMs(def.timeout, msg)).then(
          (first) => {
            emit(first, true, msg, send);
            done();
          },
          (error: Error) => {
            if (error instanceof DeviceRequestError && error.code) msg.code = error.code;
            node.status({ fill: 'red', shape: 'ring', text: error instanceof DeviceRequestError ? (error.code ?? error.kind) : 'error' });
            done(error instanceof DeviceRequestError || error instanceof ContentError ? error : new Error(`unexpected failure: ${error.message}`));
          },
        );
      } catch (error) {
        node.status({ fill: 'red', shape: 'ring', text: 'invalid input' });
        done(error as Error);
      }
    });

    // Start on registration: every device (or the configured one) that registers gets observed.
    // One request for every device: it depends on the node's settings only, and a fleet shares it.
    let registerRequest: ObserveKind | undefined;
    const onRegistered = (registration: Registration) => {
      if (def.endpoint?.trim() && def.endpoint.trim() !== registration.endpoint) return;
      let request: ObserveKind;
      try {
        request = registerRequest ??= requestFor({});
      } catch (error) {
        node.error(error as Error);
        return;
      }
      const objectId = request instanceof ObserveRequest ? request.path.objectId : undefined;
      if (objectId !== undefined && !registration.objects.some((object) => object.id === objectId)) return;
      if (isObserved(registration.endpoint, request)) return; // re-observed by the server after a re-registration
      start(registration.endpoint, request, resolveTimeoutMs(def.timeout, {})).then(
        (first) => emit(first, true),
        (error: Error) => node.error(error, { endpoint: registration.endpoint, path: def.path }),
      );
    };
    // Observations this node held before a redeploy or restart come back first, so none is made twice.
    void server.ready.then(() => {
      if (closing) return;
      for (const observation of server.observations.adopt(node.id, listener)) mine.add(observation);
      if (mine.size > 0) showCount();
      if (def.start === 'register') {
        server.on('registered', onRegistered);
        for (const registration of server.registrations.all()) onRegistered(registration);
      }
    });

    this.on('close', (removed: boolean, done: () => void) => {
      closing = true;
      clearTimeout(statusTimer);
      server.off('registered', onRegistered);
      host.deregister(this);
      if (!removed) {
        // Redeploy or restart: the observations wait for this node's next instance.
        server.observations.park(node.id);
        done();
        return;
      }
      const cancelled = cancel(undefined, undefined);
      host.finishBeforeClose(cancelled);
      const limit = new Promise((resolve) => setTimeout(resolve, CANCEL_TIMEOUT_MS + 500).unref());
      Promise.race([cancelled, limit]).then(() => done(), () => done());
    });
  }
  RED.nodes.registerType('lwm2m-observe', Lwm2mObserveNode);
};
