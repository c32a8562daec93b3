import { Method, OptionNumber, ResponseCode } from '../coap/codes';
import { CoapRequestError } from '../coap/errors';
import type { IncomingRequest, OutgoingResponse } from '../coap/endpoint';
import type { Peer } from '../coap/peer';
import type { CoapOption } from '../coap/message';
import { EXPIRY_TICK, Registration, Transport } from './registration';
import { parseRegisterRequest, parseUpdateRequest, UpdateRequest } from './registration-request';
import type { RegistrationStore } from './registration-store';
import type { PeerIdentity } from '../dtls/credentials';
import { identityKey } from './security';

/** The first Location-Path segment of every registration. */
const RD_LOCATION: CoapOption = Object.freeze({ number: OptionNumber.LocationPath, value: Buffer.from('rd') });

export interface RegistrationListener {
  registered(registration: Registration, replaced: Registration | undefined): void;
  /** from: the address the device had before, when the Update came from a new one. */
  updated(registration: Registration, changes: string[], from: Peer | undefined): void;
  deregistered(registration: Registration): void;
  /** A request refused for its credentials (4.03), with the reason. */
  refused(endpoint: string, peer: Peer, reason: string): void;
}

/** Why an identity may not register as an endpoint; undefined when it may. */
export type Authorizer = (endpoint: string, identity: PeerIdentity | undefined) => string | undefined;

export interface RegistrationPolicy {
  /** New endpoints beyond this many registrations are refused with 5.03; known ones may re-register (default 500,000). */
  maxRegistrations?: number;
  /** Longer lifetimes are shortened to this many seconds (default 7 days): a registration that never expires is a forged one kept forever. */
  maxLifetime?: number;
  /** Who may act as which endpoint (Register and Update). */
  authorize?: Authorizer;
}

export const DEFAULT_MAX_LIFETIME = 7 * 24 * 3600;

/**
 * The LwM2M Registration interface (Transport spec section 6.2 / Core 5.3):
 * Register POST /rd, Update POST /rd/{id}, De-register DELETE /rd/{id}.
 */
export class RegistrationInterface {
  private readonly maxRegistrations: number;
  private readonly maxLifetime: number;
  private readonly authorize: Authorizer;

  constructor(
    private readonly store: RegistrationStore,
    private readonly listener: RegistrationListener,
    policy: RegistrationPolicy = {},
  ) {
    this.maxRegistrations = policy.maxRegistrations ?? 500_000;
    this.maxLifetime = policy.maxLifetime ?? DEFAULT_MAX_LIFETIME;
    this.authorize = policy.authorize ?? (() => undefined);
  }

  /** Answers requests under /rd (that came over transport); returns undefined for other paths. */
  handle(request: IncomingRequest, transport: Transport): OutgoingResponse | undefined {
    // Read without splitting: this runs for every Register and Update. "/rd/" (an empty last segment) is still /rd.
    const path = request.path;
    if (path !== '/rd' && !path.startsWith('/rd/')) return undefined;
    if (path.length <= 4) {
      if (request.method !== Method.POST) throw new CoapRequestError(ResponseCode.MethodNotAllowed, 'only POST is allowed on /rd');
      return this.register(request, transport);
    }
    const id = path.slice(4);
    if (id.includes('/')) throw new CoapRequestError(ResponseCode.NotFound, `no resource ${request.path}`);
    if (request.method === Method.POST) return this.update(id, request, transport);
    if (request.method === Method.DELETE) return this.deregister(id, request, transport);
    throw new CoapRequestError(ResponseCode.MethodNotAllowed, 'only POST (update) and DELETE (de-register) are allowed');
  }

  private register(request: IncomingRequest, transport: Transport): OutgoingResponse {
    // Fields read one by one: a rest pattern would copy the object (CopyDataProperties) on every Register.
    const description = parseRegisterRequest(request.queries, request.payload, request.contentFormat);
    const endpoint = description.endpoint;
    const refusal = this.authorize(endpoint, request.identity);
    if (refusal) this.refuse(endpoint, request, refusal);
    if (this.store.size >= this.maxRegistrations && !this.store.getByEndpoint(endpoint)) {
      throw new CoapRequestError(ResponseCode.ServiceUnavailable, `the server holds its limit of ${this.maxRegistrations} registrations`);
    }
    const now = Date.now();
    // Every field named, always in this order: registrations of a fleet then share one compact object layout.
    const registration: Registration = {
      id: this.store.newId(),
      endpoint,
      // The server may keep a registration shorter than asked; the device is not told (LwM2M has no way to), and registers again if it updates too late.
      lifetime: Math.min(description.lifetime, this.maxLifetime),
      lwm2mVersion: description.lwm2mVersion,
      binding: description.binding,
      queueMode: description.queueMode,
      smsNumber: description.smsNumber,
      profileId: description.profileId,
      rootPath: description.rootPath,
      objects: description.objects,
      contentFormats: description.contentFormats,
      address: request.peer.address,
      port: request.peer.port,
      transport,
      identity: request.identity,
      registeredAt: now,
      lastUpdate: now,
      lastSeen: now,
      [EXPIRY_TICK]: undefined,
    };
    const replaced = this.store.add(registration);
    this.listener.registered(registration, replaced);
    return { code: ResponseCode.Created, options: [RD_LOCATION, { number: OptionNumber.LocationPath, value: Buffer.from(registration.id, 'latin1') }] };
  }

  private update(id: string, request: IncomingRequest, transport: Transport): OutgoingResponse {
    const registration = this.requireRegistration(id, request, transport);
    const update = parseUpdateRequest(request.queries, request.payload, request.contentFormat, registration.lwm2mVersion);
    const refusal = this.authorize(registration.endpoint, request.identity);
    if (refusal) this.refuse(registration.endpoint, request, refusal);
    if (update.lifetime !== undefined && update.lifetime > this.maxLifetime) update.lifetime = this.maxLifetime;
    const changes: string[] = [];
    if (update.lifetime !== undefined && update.lifetime !== registration.lifetime) changes.push('lifetime');
    this.store.renew(registration, update.lifetime);
    applyUpdate(registration, update, changes);
    let from: Peer | undefined;
    if (registration.address !== request.peer.address || registration.port !== request.peer.port) {
      from = { address: registration.address, port: registration.port };
      this.store.move(registration, request.peer.address, request.peer.port);
      changes.push('address');
    }
    this.listener.updated(registration, changes, from);
    return { code: ResponseCode.Changed };
  }

  private deregister(id: string, request: IncomingRequest, transport: Transport): OutgoingResponse {
    const registration = this.requireRegistration(id, request, transport);
    this.store.remove(registration);
    this.listener.deregistered(registration);
    return { code: ResponseCode.Deleted };
  }

  /** The registration, if the request comes over the same transport and from the same identity as the Register did. */
  private requireRegistration(id: string, request: IncomingRequest, transport: Transport): Registration {
    const registration = this.store.getById(id);
    if (!registration) throw new CoapRequestError(ResponseCode.NotFound, `no registration ${id}`);
    if (registration.transport !== transport || identityKey(registration.identity) !== identityKey(request.identity)) {
      this.refuse(registration.endpoint, request, `registration ${id} of ${registration.endpoint} belongs to another identity or transport`);
    }
    return registration;
  }

  private refuse(endpoint: string, request: IncomingRequest, reason: string): never {
    this.listener.refused(endpoint, request.peer, reason);
    throw new CoapRequestError(ResponseCode.Forbidden, reason);
  }
}

/** Applies what changed and names the fields in changes, so flows can tell a lifetime change from a new object list. */
function applyUpdate(registration: Registration, update: UpdateRequest, changes: string[]): void {
  const target = registration as unknown as Record<string, unknown>;
  const fields = update as Record<string, unknown>;
  // for...in, not Object.entries: nothing is allocated for the common Update, which changes nothing.
  for (const field in fields) {
    const value = fields[field];
    if (value === undefined || JSON.stringify(target[field]) === JSON.stringify(value)) continue;
    target[field] = value;
    changes.push(field);
  }
}
