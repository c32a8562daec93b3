import type { PeerIdentity } from '../dtls/credentials';

/** What a device registered over: CoAP over UDP, DTLS, TCP or TLS. */
export type Transport = 'udp' | 'dtls' | 'tcp' | 'tls';

/** TCP and TLS: observations end with the connection and come back when the device reconnects (RFC 8323 section 7.2). */
export function isStream(transport: Transport): boolean {
  return transport === 'tcp' || transport === 'tls';
}

/** An object the client announced, with the instances it has. */
export interface ObjectInfo {
  id: number;
  /** Object version from the "ver" attribute; absent means the version the client's LwM2M version implies. */
  version?: string;
  /** The "rt" (resource type) attribute of its links, where the client gave one. */
  resourceType?: string;
  readonly instances: readonly number[];
}

/** What a Register or Update tells the server about a client. */
export interface ClientDescription {
  lifetime: number;
  lwm2mVersion: string;
  binding: string;
  queueMode: boolean;
  smsNumber?: string;
  /** Profile ID (pid) an LwM2M 1.2 client registered with. */
  profileId?: string;
  /** Alternate path of the LwM2M objects ("/" unless the client announced rt="oma.lwm2m"). */
  rootPath: string;
  /** Shared between devices that announced the same links: never changed in place, replaced by an Update. */
  objects: readonly ObjectInfo[];
  /** Content formats the client supports, from the "ct" attribute of its root link. */
  contentFormats: readonly number[];
}

/**
 * The store's group for a registration's expiry: the tick of its expiry, or
 * an earlier one (an Update that lengthened the lifetime leaves it there; the
 * sweep moves it on when that tick comes). A symbol, so never saved or shown.
 */
export const EXPIRY_TICK: unique symbol = Symbol('expiryTick');

export interface Registration extends ClientDescription {
  id: string;
  endpoint: string;
  address: string;
  port: number;
  transport: Transport;
  /** Who the device authenticated as over DTLS or TLS; absent for NoSec. */
  identity?: PeerIdentity;
  registeredAt: number;
  lastUpdate: number;
  /** When the device last sent anything: a registration message, a response, a notification, a Send. */
  lastSeen: number;
  [EXPIRY_TICK]?: number;
}

export function expiresAt(registration: Registration): number {
  return registration.lastUpdate + registration.lifetime * 1000;
}

/** A plain JSON view, as carried in msg.payload. */
export interface RegistrationJson {
  endpoint: string;
  registrationId: string;
  location: string;
  lwm2mVersion: string;
  binding: string;
  queueMode: boolean;
  lifetime: number;
  smsNumber?: string;
  profileId?: string;
  address: string;
  port: number;
  transport: string;
  /** NoSec, PSK, RPK or X.509. */
  security: string;
  /** The PSK identity, the certificate subject or the raw public key (base64 SPKI); never a secret. */
  identity?: string;
  rootPath: string;
  objects: ObjectInfo[];
  contentFormats: number[];
  registeredAt: string;
  lastUpdate: string;
  lastSeen: string;
  expiresAt: string;
}

export function registrationToJson(registration: Registration): RegistrationJson {
  return {
    endpoint: registration.endpoint,
    registrationId: registration.id,
    location: `/rd/${registration.id}`,
    lwm2mVersion: registration.lwm2mVersion,
    binding: registration.binding,
    queueMode: registration.queueMode,
    lifetime: registration.lifetime,
    ...(registration.smsNumber !== undefined ? { smsNumber: registration.smsNumber } : {}),
    ...(registration.profileId !== undefined ? { profileId: registration.profileId } : {}),
    address: registration.address,
    port: registration.port,
    transport: registration.transport,
    ...securityJson(registration.identity),
    rootPath: registration.rootPath,
    objects: registration.objects.map((object) => ({ ...object, instances: [...object.instances] })),
    contentFormats: [...registration.contentFormats],
    registeredAt: new Date(registration.registeredAt).toISOString(),
    lastUpdate: new Date(registration.lastUpdate).toISOString(),
    lastSeen: new Date(registration.lastSeen).toISOString(),
    expiresAt: new Date(expiresAt(registration)).toISOString(),
  };
}

function securityJson(identity: PeerIdentity | undefined): { security: string; identity?: string } {
  if (!identity) return { security: 'NoSec' };
  if (identity.kind === 'psk') return { security: 'PSK', identity: identity.identity };
  if (identity.kind === 'rpk') return { security: 'RPK', identity: identity.publicKey };
  return { security: 'X.509', identity: identity.subject };
}
