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
      this.send(msg);
    };
    const listeners = {
      registered: (registration: Registration, replaced: Registration | undefined) =>
        emit('registered', registration, replaced ? { replaced: registrationToJson(replaced) } : {}),
      updated: (registration: Registration, changes: string[]) => emit('updated', registration, { changes }),
      deregistered: (registration: Registration) => emit('deregistered', registration),
      expired: (registration: Registration) => emit('expired', registration),
      awake: (registration: Registration) => emit('awake', registration),
      sleeping: (registration: Registration) => emit('sleeping', registration),
      send: (registration: Registration, records: ContentRecord[], contentFormat: number) =>
        emit('send', registration, {
          payload: recordsToPayload(records, Lwm2mPath.ROOT),
          resources: namedRecords(records, server.model),
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

    this.on('close', (_removed: boolean, done: () => void) => {
      detach();
      host.deregister(this);
      done();
    });
  }
  RED.nodes.registerType('lwm2m-events', Lwm2mEventsNode);
};
