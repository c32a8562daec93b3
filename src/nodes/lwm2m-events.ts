import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { Registration, registrationToJson } from '../lib/lwm2m/registration';
import type { MalformedDatagram } from '../lib/coap/endpoint';
import type { Peer } from '../lib/coap/peer';
import { namedRecords, recordsToPayload } from '../lib/content/payload';
import type { ContentRecord } from '../lib/content/values';
import { Lwm2mPath } from '../lib/model/path';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import { hostFor } from './socket-host';
import { settingsOf } from './node-defaults';
import { InputError, Msg, resolveEndpoint } from './inputs';

type EventName = 'registered' | 'updated' | 'deregistered' | 'expired' | 'awake' | 'sleeping' | 'send';

export = function register(RED: NodeAPI): void {
  function Lwm2mEventsNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const settings = settingsOf('lwm2m-events', def);
    const host = hostFor<Lwm2mServer>(RED, this, settings.server, 'lwm2m-events');
    if (!host) return;
    const server = host.service;
    const emit = (event: EventName, registration: Registration, extra: Record<string, unknown> = {}) => {
      const msg: NodeMessage & Record<string, unknown> = {
        topic: event,
        event,
        endpoint: registration.endpoint,
        payload: registrationToJson(registration),
        ...extra,
      };
      // In a cluster, events come once, from the instance that serves the device.
      if (server.cluster) msg.instance = server.cluster.instance;
      this.send(msg);
    };
    const listeners = {
      registered: (registration: Registration, replaced: Registration | undefined) =>
        emit('registered', registration, replaced ? { replaced: registrationToJson(replaced) } : {}),
      updated: (registration: Registration, changes: string[]) => emit('updated', registration, { changes }),
      deregistered: (registration: Registration, removedBy?: string) => emit('deregistered', registration, removedBy ? { removedBy } : {}),
      expired: (registration: Registration) => emit('expired', registration),
      awake: (registration: Registration) => emit('awake', registration),
      sleeping: (registration: Registration) => emit('sleeping', registration),
      send: (registration: Registration, records: ContentRecord[], contentFormat: number) =>
        emit('send', registration, {
          payload: recordsToPayload(records, Lwm2mPath.ROOT),
          resources: namedRecords(records, server.modelFor(registration)),
          contentFormat,
          registration: registrationToJson(registration),
        }),
      malformed: (detail: MalformedDatagram) =>
        this.send({ topic: 'rejected', event: 'rejected', payload: { ...detail.peer, reason: detail.reason } } as NodeMessage),
      refused: (endpoint: string, peer: Peer, reason: string) =>
        this.send({ topic: 'refused', event: 'refused', endpoint, payload: { endpoint, ...peer, reason } } as NodeMessage),
      handshakeFailed: (peer: Peer, reason: string) =>
        this.send({ topic: 'handshakeFailed', event: 'handshakeFailed', payload: { ...peer, reason } } as NodeMessage),
    };
    const enabled: Record<string, boolean> = {
      registered: settings.registered,
      updated: settings.updated,
      deregistered: settings.deregistered,
      expired: settings.expired,
      awake: settings.awake,
      sleeping: settings.sleeping,
      send: settings.send,
      malformed: settings.rejected,
      refused: settings.security,
      handshakeFailed: settings.security,
    };
    const detach = server.subscribe(listeners, (event) => enabled[event]);
    host.register(this, { followStatus: true });

    // msg.action "remove" takes a registration out (forged, stale): what the device de-registering would do.
    this.on('input', (msg: Msg, _send: unknown, done: (error?: Error) => void) => {
      try {
        if (msg.action !== 'remove') throw new InputError(`msg.action must be "remove" (with msg.endpoint), not ${JSON.stringify(msg.action)}`);
        const endpoint = resolveEndpoint(undefined, msg);
        const { removed, unbound } = server.remove(endpoint, 'flow', msg.forgetIdentity === true);
        if (!removed && !unbound) throw new InputError(`device "${endpoint}" is not registered`);
        done();
      } catch (error) {
        done(error as Error);
      }
    });

    this.on('close', (_removed: boolean, done: () => void) => {
      detach();
      host.deregister(this);
      done();
    });
  }
  RED.nodes.registerType('lwm2m-events', Lwm2mEventsNode);
};
