import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Peer } from '../coap/peer';
import type { DtlsCredentials, PeerIdentity } from './credentials';
import { CIPHER_SUITES, CipherSuite } from './record-protection';

/** What a client resumes (RFC 5246 7.3): the master secret of a full handshake and who it proved to be. */
export interface DtlsSession {
  /** 32 random bytes, given in the ServerHello of the full handshake. */
  id: Buffer;
  master: Buffer;
  suite: CipherSuite;
  identity: PeerIdentity;
  extendedMasterSecret: boolean;
  createdAt: number;
  /** For PSK sessions, a MAC of the key (see pskKeyCheck): a changed or removed key ends the session. */
  keyCheck?: Buffer;
}

/** What an established connection needs to go on after a redeploy or restart. */
export interface ConnectionRecord {
  peer: Peer;
  session: DtlsSession;
  clientRandom: Buffer;
  serverRandom: Buffer;
  cid?: Buffer;
  peerCid?: Buffer;
  /** The next write sequence number of epoch 1, reserved ahead of any used. */
  writeSequence: number;
  /** The newest sequence number received: anything at or below is taken as a replay. */
  readHighest: number;
  lastActivity: number;
}

/** Sessions and connections as JSON (bytes in base64), as a state store keeps them (sealed). */
export interface SessionJson {
  id: string;
  master: string;
  suite: number;
  identity: PeerIdentity;
  ems: boolean;
  createdAt: number;
  keyCheck?: string;
}

export interface ConnectionJson {
  peer: Peer;
  session: SessionJson;
  clientRandom: string;
  serverRandom: string;
  cid?: string;
  peerCid?: string;
  writeSequence: number;
  readHighest: number;
  lastActivity: number;
}

export function sessionToJson(session: DtlsSession): SessionJson {
  return {
    id: session.id.toString('base64'),
    master: session.master.toString('base64'),
    suite: session.suite.id,
    identity: session.identity,
    ems: session.extendedMasterSecret,
    createdAt: session.createdAt,
    ...(session.keyCheck ? { keyCheck: session.keyCheck.toString('base64') } : {}),
  };
}

export function sessionFromJson(json: SessionJson): DtlsSession {
  const suite = CIPHER_SUITES.find((candidate) => candidate.id === json.suite);
  if (!suite) throw new Error(`unknown cipher suite ${json.suite}`);
  return {
    id: Buffer.from(json.id, 'base64'),
    master: Buffer.from(json.master, 'base64'),
    suite,
    identity: json.identity,
    extendedMasterSecret: json.ems,
    createdAt: json.createdAt,
    keyCheck: json.keyCheck ? Buffer.from(json.keyCheck, 'base64') : undefined,
  };
}

export function connectionToJson(record: ConnectionRecord): ConnectionJson {
  return {
    peer: { address: record.peer.address, port: record.peer.port },
    session: sessionToJson(record.session),
    clientRandom: record.clientRandom.toString('base64'),
    serverRandom: record.serverRandom.toString('base64'),
    ...(record.cid ? { cid: record.cid.toString('base64') } : {}),
    ...(record.peerCid ? { peerCid: record.peerCid.toString('base64') } : {}),
    writeSequence: record.writeSequence,
    readHighest: record.readHighest,
    lastActivity: record.lastActivity,
  };
}

export function connectionFromJson(json: ConnectionJson): ConnectionRecord {
  return {
    peer: json.peer,
    session: sessionFromJson(json.session),
    clientRandom: Buffer.from(json.clientRandom, 'base64'),
    serverRandom: Buffer.from(json.serverRandom, 'base64'),
    cid: json.cid ? Buffer.from(json.cid, 'base64') : undefined,
    peerCid: json.peerCid ? Buffer.from(json.peerCid, 'base64') : undefined,
    writeSequence: json.writeSequence,
    readHighest: json.readHighest,
    lastActivity: json.lastActivity,
  };
}

/**
 * Whether the credentials still admit a session's identity: a PSK identity
 * still configured with the same key (checked through a MAC over the master
 * secret, so the key itself is never kept), a raw public key still trusted,
 * a certificate identity while authorities are configured.
 */
export function stillTrusted(session: DtlsSession, credentials: DtlsCredentials): boolean {
  const identity = session.identity;
  switch (identity.kind) {
    case 'psk': {
      const key = credentials.pskKey?.(identity.identity);
      if (!key || !session.keyCheck) return false;
      const now = pskKeyCheck(session.master, key);
      return now.length === session.keyCheck.length && timingSafeEqual(now, session.keyCheck);
    }
    case 'rpk':
      return credentials.trustsRawPublicKey?.(Buffer.from(identity.publicKey, 'base64')) ?? false;
    case 'x509':
      return (credentials.certificateAuthorities?.length ?? 0) > 0;
  }
}

/** A MAC of the PSK under the session's master secret: tells a changed key without keeping the key. */
export function pskKeyCheck(master: Buffer, key: Buffer): Buffer {
  return createHmac('sha256', master).update('psk key check').update(key).digest().subarray(0, 16);
}

/**
 * The sessions clients may resume, by id: bounded in number (the oldest go
 * first) and in age.
 */
export class SessionCache {
  private readonly sessions = new Map<string, DtlsSession>();
  /** Session ids added or removed since the last takeChanges(). */
  private readonly changed = new Set<string>();

  constructor(
    private readonly maxSessions: number,
    readonly lifetimeMs: number,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  add(session: DtlsSession): void {
    if (session.id.length === 0 || this.maxSessions === 0) return;
    const key = session.id.toString('hex');
    this.sessions.delete(key);
    this.sessions.set(key, session);
    this.changed.add(key);
    while (this.sessions.size > this.maxSessions) this.remove(this.sessions.keys().next().value as string);
  }

  /** The session with this id while it is young enough; the caller checks the rest (suite, extensions, credentials). */
  get(id: Buffer): DtlsSession | undefined {
    if (id.length === 0) return undefined;
    const key = id.toString('hex');
    const entry = this.sessions.get(key);
    if (entry && Date.now() - entry.createdAt >= this.lifetimeMs) {
      this.remove(key);
      return undefined;
    }
    return entry;
  }

  remove(key: string): void {
    if (this.sessions.delete(key)) this.changed.add(key);
  }

  sweep(now = Date.now()): void {
    for (const [key, entry] of this.sessions) if (now - entry.createdAt >= this.lifetimeMs) this.remove(key);
  }

  /** Every session is to be saved again (the store lost them). */
  markAllChanged(): void {
    for (const key of this.sessions.keys()) this.changed.add(key);
  }

  /** What changed since the last call: sessions to save and ids (hex) to delete. */
  takeChanges(): { saved: DtlsSession[]; removed: string[] } {
    const saved: DtlsSession[] = [];
    const removed: string[] = [];
    for (const key of this.changed) {
      const entry = this.sessions.get(key);
      if (entry) saved.push(entry);
      else removed.push(key);
    }
    this.changed.clear();
    return { saved, removed };
  }
}
