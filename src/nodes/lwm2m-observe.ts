import type { Node, NodeAPI, NodeDef } from 'node-red';
import { namedRecords, recordsToPayload } from '../lib/content/payload';
import { ContentError } from '../lib/content/values';
import { DeviceRequestError } from '../lib/lwm2m/device-client';
import type { NotificationEvent, Observation, ObservationListener, ObserveKind } from '../lib/lwm2m/observations';
import type { Registration } from '../lib/lwm2m/registration';
import { ObserveCompositeRequest, ObserveRequest } from '../lib/lwm2m/requests/observe';
import { WriteAttributesRequest, attributesInObserve } from '../lib/lwm2m/requests/write-attributes';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import type { Lwm2mPath } from '../lib/model/path';
import { InputError, Msg, attributesOf, checkCompositeFormat, compositePaths, resolveEndpoint, resolveFormat, resolvePath, resolveTimeoutMs, typedSetting } from './inputs';
import { Settings, settingsOf } from './node-defaults';
import { failureStatus, settingsFor } from './operation-node';
import { hostFor } from './socket-host';

type Send = (msg: Msg) => void;
type Done = (error?: Error) => void;

const CANCEL_TIMEOUT_MS = 2000;

function pathsKey(request: ObserveKind): string {
  return request instanceof ObserveCompositeRequest ? request.paths.map(String).join(',') : request.path.toString();
}

export = function register(RED: NodeAPI): void {
  function Lwm2mObserveNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const settings = settingsOf('lwm2m-observe', def);
    const host = hostFor<Lwm2mServer>(RED, this, settings.server, 'lwm2m-observe');
    if (!host) return;
    const server: Lwm2mServer = host.service;
    const mine = new Set<Observation>();
    let closing = false;
    const nodeAttributes = attributesOf(settings);
    /** The node's attributes, over msg.attributes where both name one (the node wins where set); undefined for none. */
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
      node.status({ fill: 'green', shape: 'dot', text: RED._('lwm2m-observe.status.observing', { count: mine.size }) });
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
      // A msg for every observation that ends (cancelled by a msg, refused or ended by the device, the device gone), except when this node closes.
      ended: (observation, reason) => {
        if (!mine.delete(observation)) return;
        node.log(RED._('lwm2m-observe.log.ended', { endpoint: observation.endpoint, paths: observation.paths.join(','), reason }));
        showCount();
        if (closing) return;
        const paths = observation.paths;
        node.send({
          topic: reason === 'cancelled' ? 'cancelled' : 'ended',
          endpoint: observation.endpoint,
          path: paths.length === 1 ? paths[0] : [...paths],
          observation: observation.id,
          reason,
          payload: null,
        });
      },
      // In a cluster: taken over from another instance, or made for this node by its copy there.
      adopted: (observation) => {
        if (closing || mine.has(observation)) return;
        mine.add(observation);
        showCount();
      },
    };

    const requestFor = (resolved: Settings<'lwm2m-observe'>, msg: Msg): ObserveKind => {
      const format = resolveFormat(resolved.format, msg);
      const attributes = attributesFor(msg);
      if (!resolved.composite) return new ObserveRequest(resolvePath(resolved.path, msg), format, attributes);
      return new ObserveCompositeRequest(compositePaths(resolved.path, msg, 'Observe-Composite'), format, attributes);
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
    const onInput = (resolved: Settings<'lwm2m-observe'>, msg: Msg, send: Send, done: Done) => {
      try {
        const endpoint = resolveEndpoint(resolved.endpoint, msg);
        if (msg.cancel === true || msg.action === 'cancel') {
          const named = Boolean(resolved.path?.trim()) || msg.path !== undefined || msg.paths !== undefined;
          cancel(endpoint, named ? pathsKey(requestFor(resolved, msg)) : undefined).then((count) => {
            if (count === 0) node.warn(RED._('lwm2m-observe.errors.nothingToCancel', { endpoint }));
            showCount();
            done();
          }, done);
          return;
        }
        const request = requestFor(resolved, msg);
        start(endpoint, request, resolveTimeoutMs(resolved.timeout, msg)).then(
          (first) => {
            emit(first, true, msg, send);
            done();
          },
          (error: Error) => {
            if (error instanceof DeviceRequestError && error.code) msg.code = error.code;
            node.status(failureStatus(RED, 'lwm2m-observe', error));
            done(error instanceof DeviceRequestError || error instanceof ContentError ? error : new Error(`unexpected failure: ${error.message}`));
          },
        );
      } catch (error) {
        node.status(failureStatus(RED, 'lwm2m-observe', error as Error));
        done(error as Error);
      }
    };
    this.on('input', (msg: Msg, send: Send, done: Done) => {
      const resolved = settingsFor(RED, node, settings, msg);
      if (!(resolved instanceof Promise)) return onInput(resolved, msg, send, done);
      resolved.then(
        (values) => onInput(values, msg, send, done),
        (error: Error) => {
          node.status(failureStatus(RED, 'lwm2m-observe', error));
          done(error);
        },
      );
    });

    // Start on registration: every device (or the configured one) that registers gets observed.
    // One request for every device: it depends on the node's settings only, and a fleet shares it.
    let registerRequest: ObserveKind | undefined;
    const observeRegistered = (registration: Registration) => {
      let request: ObserveKind;
      try {
        request = registerRequest ??= requestFor(settings, {});
      } catch (error) {
        node.error(error as Error);
        return;
      }
      const objectId = request instanceof ObserveRequest ? request.path.objectId : undefined;
      if (objectId !== undefined && !registration.objects.some((object) => object.id === objectId)) return;
      if (isObserved(registration.endpoint, request)) return; // re-observed by the server after a re-registration
      start(registration.endpoint, request, resolveTimeoutMs(settings.timeout, {})).then(
        (first) => emit(first, true),
        (error: Error) => node.error(error, { endpoint: registration.endpoint, path: settings.path }),
      );
    };
    // The device this node is limited to: a text (empty: every device), or an env, flow or global property read at each registration.
    const fixed = (settings.endpointType || 'str') === 'str' ? settings.endpoint.trim() : undefined;
    const onRegistered = (registration: Registration) => {
      if (fixed !== undefined) {
        if (!fixed || fixed === registration.endpoint) observeRegistered(registration);
        return;
      }
      Promise.resolve(typedSetting(RED, node, settings.endpoint, settings.endpointType, {})).then(
        (endpoint) => endpoint.trim() === registration.endpoint && observeRegistered(registration),
        (error: Error) => node.error(error),
      );
    };

    // Observations this node held before a redeploy or restart come back first, so none is made twice.
    void server.ready.then(() => {
      if (closing) return;
      for (const observation of server.observations.adopt(node.id, listener)) mine.add(observation);
      if (mine.size > 0) showCount();
      if (settings.start === 'register') {
        if (settings.endpointType === 'msg') {
          node.error(RED._('lwm2m-observe.errors.msgDeviceOnRegister'));
          return;
        }
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
