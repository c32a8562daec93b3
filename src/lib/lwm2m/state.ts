import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Peer } from '../coap/peer';
import type { Registration, Transport } from './registration';
import type { NotificationAttributes } from './requests/write-attributes';

/** An observation as kept across restarts: enough to match its notifications and hand it to its node again. */
export interface PersistedObservation {
  /** The id flows know it by (absent in state saved before ids were kept: a new one is drawn). */
  id?: string;
  endpoint: string;
  /** The node that started it (a Node-RED node id), which adopts it again. */
  owner?: string;
  paths: string[];
  composite: boolean;
  format?: number;
  token: string;
  peer?: Peer;
  /** Absent in state saved before DTLS: plain UDP. */
  transport?: Transport;
  /** The notification attributes the observation was made with (sent in its query to LwM2M 1.2 devices). */
  attributes?: NotificationAttributes;
}

/** A flow's request still waiting for a sleeping device, handed back to its node. */
export interface ParkedRequest {
  owner: string;
  endpoint: string;
  /** Time to live, as an absolute time. */
  deadline: number;
  msg: unknown;
}

/**
 * What a server keeps, one collection per kind, each entry under its own id
 * with an optional expiry: registrations (by endpoint), observations (by
 * token), parked requests, DTLS sessions and connections (sealed: see
 * sealText), the DTLS identity each endpoint name is bound to (bindings,
 * by endpoint), and whatever further kinds servers and services beside
 * them keep (bootstrap configurations, firmware campaigns). A store takes any
 * collection name: a new kind of entry needs no change here.
 */
export type CollectionName = string;

/** The collections a service beside the server writes through it (Lwm2mServer.keepEntry). */
export type ServiceCollection = 'firmware';

/** An entry as a store holds it: JSON text, and when it may be dropped (ms since the epoch). */
export interface StoredEntry {
  json: string;
  expiresAt?: number;
}

/** Per collection, the entries by id. */
export type StoredState = Record<CollectionName, Map<string, StoredEntry>>;

/** The entries of one collection of a loaded state (none when it had none). */
export function entriesOf(state: StoredState, collection: CollectionName): Map<string, StoredEntry> {
  return state[collection] ?? new Map();
}

/** What a shared store needs to find an entry by other ways than its id; a file store ignores it. */
export interface EntryLinks {
  /** The device (endpoint) the entry belongs to: an instance that takes the device over reads them together. */
  group?: string;
  /** Other names the entry is found by (a registration id, a device address); given again to delete, so the store keeps no list. */
  aliases?: string[];
}

/**
 * Where a server keeps its state, entry by entry: a file by default, or a
 * shared store (Redis: a key per entry, its expiry as the key's) for several
 * instances. Values are JSON text the server made; the store never looks
 * inside. put and delete may be batched until flush.
 */
export interface StateStore {
  /** Every entry not yet expired, per collection. */
  load(): Promise<StoredState>;
  put(collection: CollectionName, id: string, json: string, expiresAt?: number, links?: EntryLinks): void;
  delete(collection: CollectionName, id: string, links?: EntryLinks): void;
  /** Makes the puts and deletes so far durable. */
  flush(): Promise<void>;
  /** Removes everything the store holds (its server was deleted). */
  destroy(): Promise<void>;
}

/** An entry read back from a shared store. */
export interface FoundEntry {
  collection: CollectionName;
  id: string;
  json: string;
}

/**
 * A store several server instances share (Redis), read entry by entry: an
 * instance loads a device's state when it takes the device over, never the
 * whole fleet. Its flush never fails for an outage: what could not be
 * written is written again when the store is back (see RedisStateStore).
 */
export interface SharedStateStore extends StateStore {
  readonly shared: true;
  /** The group's entries (its device's) go with its registration, at this time. */
  expireGroup(group: string, expiresAt: number): void;
  get(collection: CollectionName, id: string): Promise<string | undefined>;
  /** The entry an alias names, if both are still there. */
  resolve(alias: string): Promise<FoundEntry | undefined>;
  /** The entries of a group that are still there. */
  group(group: string): Promise<FoundEntry[]>;
}

export function isShared(store: StateStore | undefined): store is SharedStateStore {
  return (store as SharedStateStore | undefined)?.shared === true;
}

function collectionIn(state: StoredState, collection: CollectionName): Map<string, StoredEntry> {
  return (state[collection] ??= new Map());
}

/** JSON with Buffers as {"$buffer": base64} and Dates as {"$date": iso}, so msgs and opaque values survive. */
function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (Buffer.isBuffer(raw)) return { $buffer: raw.toString('base64') };
  if (raw instanceof Date) return { $date: raw.toISOString() };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    if (typeof object.$buffer === 'string' && Object.keys(object).length === 1) return Buffer.from(object.$buffer, 'base64');
    if (typeof object.$date === 'string' && Object.keys(object).length === 1) return new Date(object.$date);
  }
  return value;
}

export function parseEntry<T>(json: string): T {
  return JSON.parse(json, reviver) as T;
}

/**
 * An entry as JSON text. What JSON cannot hold (circular structures such as
 * an http-in msg's req and res, functions, BigInts) is left out, each place
 * named in `dropped`, so one such value never stops the rest from being kept.
 */
export function entryJson(value: unknown, dropped: string[]): string {
  try {
    return JSON.stringify(value, replacer);
  } catch {
    return JSON.stringify(storable(value, '', new Set(), dropped), replacer);
  }
}

function storable(value: unknown, where: string, ancestors: Set<object>, dropped: string[]): unknown {
  if (typeof value === 'bigint' || typeof value === 'function' || typeof value === 'symbol') {
    dropped.push(where || '(the value)');
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value) || value instanceof Date) return value;
  if (ancestors.has(value)) {
    dropped.push(where);
    return undefined;
  }
  const prototype = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && prototype !== Object.prototype && prototype !== null) {
    // A class instance (a socket, a request, a response): its JSON form would not bring it back.
    try {
      JSON.stringify(value);
    } catch {
      dropped.push(where);
      return undefined;
    }
  }
  ancestors.add(value);
  let result: unknown;
  if (Array.isArray(value)) result = value.map((item, i) => storable(item, `${where}[${i}]`, ancestors, dropped) ?? null);
  else {
    const object: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const kept = storable(item, where ? `${where}.${key}` : key, ancestors, dropped);
      if (kept !== undefined) object[key] = kept;
    }
    result = object;
  }
  ancestors.delete(value);
  return result;
}

/**
 * Encrypts an entry with AES-256-GCM under a key derived from the server's
 * state key (a Node-RED credential), bound to its collection and id: key
 * material is never in a store in clear, and an entry cannot be moved to
 * another place unnoticed.
 */
export function sealText(stateKey: Buffer, collection: CollectionName, id: string, text: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', stateKey, iv);
  cipher.setAAD(Buffer.from(`${collection}/${id}`));
  const sealed = Buffer.concat([iv, cipher.update(text, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return JSON.stringify({ sealed: sealed.toString('base64') });
}

/** The text of a sealed entry; throws when the key is not the one it was sealed with (or the entry was changed). */
export function openText(stateKey: Buffer, collection: CollectionName, id: string, json: string): string {
  const sealed = Buffer.from((JSON.parse(json) as { sealed: string }).sealed, 'base64');
  const decipher = createDecipheriv('aes-256-gcm', stateKey, sealed.subarray(0, 12));
  decipher.setAAD(Buffer.from(`${collection}/${id}`));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]).toString('utf8');
}

/** The 32-byte sealing key from a state key of any length (HKDF-SHA256). */
export function deriveStateKey(secret: string | Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'lwm2m-red state', 'sealed entries', 32));
}

/** The file format before entries had ids (version 1): one snapshot, read and turned into entries. */
interface StateFileV1 {
  version: 1;
  registrations: Registration[];
  observations?: PersistedObservation[];
  parked?: ParkedRequest[];
}

interface StateFileV2 {
  version: 2;
  savedAt: number;
  collections: Record<CollectionName, Record<string, { expiresAt?: number; value: unknown }> | undefined>;
}

/**
 * The state in one JSON file, replaced atomically (written aside, synced,
 * renamed over the old one) at each flush, which the server calls at most
 * once a second. It keeps every entry's text in memory to write the file.
 * Temporary files a crash left behind are removed when it loads; the one of
 * a write that failed (a full disk) at once.
 */
export class FileStateStore implements StateStore {
  private state: StoredState = {};
  private loaded = false;
  private dirty = false;
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  /** Reads the file the first time; later (the next server of the same node, after a redeploy) gives back what it holds. */
  async load(): Promise<StoredState> {
    if (this.loaded) return this.state;
    await this.removeStaleTemporaries();
    let text: string;
    try {
      text = await fs.promises.readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.loaded = true;
      return (this.state = {});
    }
    const file = JSON.parse(text) as StateFileV1 | StateFileV2;
    const state: StoredState = {};
    const now = Date.now();
    if (file?.version === 1 && Array.isArray(file.registrations)) {
      for (const registration of file.registrations) collectionIn(state, 'registrations').set(registration.endpoint, { json: JSON.stringify(registration) });
      for (const observation of file.observations ?? []) collectionIn(state, 'observations').set(observation.token, { json: JSON.stringify(observation) });
      (file.parked ?? []).forEach((request, i) => collectionIn(state, 'parked').set(`v1-${i}`, { json: JSON.stringify(request), expiresAt: request.deadline }));
      this.dirty = true;
    } else if (file?.version === 2 && file.collections && typeof file.collections === 'object') {
      for (const [name, entries] of Object.entries(file.collections)) {
        const collection = collectionIn(state, name);
        for (const [id, entry] of Object.entries(entries ?? {})) {
          if (entry.expiresAt !== undefined && entry.expiresAt <= now) continue;
          collection.set(id, { json: JSON.stringify(entry.value), expiresAt: entry.expiresAt });
        }
      }
    } else throw new Error(`${this.file} is not an LwM2M server state file`);
    this.state = state;
    this.loaded = true;
    return state;
  }

  put(collection: CollectionName, id: string, json: string, expiresAt?: number): void {
    collectionIn(this.state, collection).set(id, { json, expiresAt });
    this.dirty = true;
  }

  delete(collection: CollectionName, id: string): void {
    if (this.state[collection]?.delete(id)) this.dirty = true;
  }

  /** Writes the file if anything changed; writes run one after the other, so an older state never lands after a newer one. */
  flush(): Promise<void> {
    if (!this.dirty) return this.writing;
    this.dirty = false;
    const text = this.render();
    this.writing = this.writing.catch(() => undefined).then(() => this.write(text));
    return this.writing;
  }

  async destroy(): Promise<void> {
    this.state = {};
    this.dirty = false;
    await this.writing.catch(() => undefined);
    await fs.promises.rm(this.file, { force: true });
    await this.removeStaleTemporaries();
  }

  private render(): string {
    const now = Date.now();
    const parts: string[] = [];
    for (const [name, collection] of Object.entries(this.state)) {
      const entries: string[] = [];
      for (const [id, entry] of collection) {
        if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
          collection.delete(id);
          continue;
        }
        const expiry = entry.expiresAt !== undefined ? `"expiresAt":${entry.expiresAt},` : '';
        entries.push(`${JSON.stringify(id)}:{${expiry}"value":${entry.json}}`);
      }
      parts.push(`${JSON.stringify(name)}:{${entries.join(',')}}`);
    }
    return `{"version":2,"savedAt":${now},"collections":{${parts.join(',')}}}`;
  }

  private async write(text: string): Promise<void> {
    await fs.promises.mkdir(path.dirname(this.file), { recursive: true });
    const temporary = `${this.file}.${process.pid}.tmp`;
    try {
      const handle = await fs.promises.open(temporary, 'w');
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.promises.rename(temporary, this.file);
    } catch (error) {
      this.dirty = true; // written again at the next flush
      await fs.promises.rm(temporary, { force: true });
      throw error;
    }
  }

  /** `<file>.<pid>.tmp` files: a process killed while writing leaves one. */
  private async removeStaleTemporaries(): Promise<void> {
    const directory = path.dirname(this.file);
    const prefix = `${path.basename(this.file)}.`;
    let names: string[];
    try {
      names = await fs.promises.readdir(directory);
    } catch {
      return;
    }
    await Promise.all(names.filter((name) => name.startsWith(prefix) && /\.\d+\.tmp$/.test(name)).map((name) => fs.promises.rm(path.join(directory, name), { force: true })));
  }
}
