import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { Registration, registrationToJson } from '../lib/lwm2m/registration';
import type { MalformedDatagram } from '../lib/coap/endpoint';
import type { Peer } from '../lib/coap/peer';
import { namedRecords, recordsToPayload } from '../lib/content/payload';
import type { ContentRecord } from '../lib/content/values';
import { Lwm2mPath } from '../lib/model/path';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import { hostFor } from './socket-host';
import { InputError, Msg, resolveEndpoint } from './inputs';

interface EventsNodeDef extends NodeDef {
  server: string;
  registered?: boolean;
  updated?: boolean;
  deregistered?: boolean;
  expired?: boolean;
  awake?: boolean;
  sleeping?: boolean;
  send?: boolean;
  rejected?: boolean;
  /** Security refusals (4.03) and failed DTLS handshakes. */
  security?: boolean;
}

type EventName = 'registered' | 'updated' | 'deregistered' | 'expired' | 'awake' | 'sleeping' | 'send';

export = function register(RED: NodeAPI): void {
  function Lwm2mEventsNode(this: Node, def: EventsNodeDef) {
    RED.nodes.createNode(this, def);
    const host = hostFor<Lwm2mServer>(RED, this, def.server, 'lwm2m-events');
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
    // Events default to on, so flows saved before an option existed keep their behaviour.
    const enabled: Record<string, boolean> = {
      registered: def.registered !== false,
      updated: def.updated !== false,
      deregistered: def.deregistered !== false,
      expired: def.expired !== false,
      awake: def.awake === true,
      sleeping: def.sleeping === true,
      send: def.send !== false,
      malformed: def.rejected === true,
      refused: def.security === true,
      handshakeFailed: def.security === true,
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
