import { TypedEmitter } from '../typed-emitter';
import type { RedisLink } from '../cluster/redis-link';
import type { CollectionName, EntryLinks, FoundEntry, SharedStateStore, StoredState } from './state';

const SCAN_BATCH = 1000;

type RedisStoreEvents = {
  /** Redis is back after an outage (or a write failed): the server writes all it holds again. */
  resync: [];
  /** A write failed while Redis looked up (out of memory, a wrong type): written again at the next resync. */
  writeFailed: [error: Error];
};

/**
 * The state of a server in Redis, one key per entry with the entry's expiry
 * as the key's (`<prefix>e:<collection>:<id>`), aliases as small keys naming
 * their entry (`<prefix>a:<alias>`) and the entries of a device as a set
 * (`<prefix>g:<endpoint>`), so an instance that takes a device over reads its
 * state in two round trips. Nothing is kept in memory but the writes of the
 * current batch; a batch goes out as one pipeline. While Redis is away,
 * writes are dropped and the server writes everything it holds again when it
 * is back (resync).
 */
export class RedisStateStore extends TypedEmitter<RedisStoreEvents> implements SharedStateStore {
  readonly shared = true;
  private batch: string[][] = [];
  private upBefore = false;

  constructor(
    readonly link: RedisLink,
    /** Every key of this store starts with it: the user's prefix and the node id. */
    readonly prefix: string,
  ) {
    super();
    link.on('up', () => {
      // The first connection has nothing to catch up with.
      if (this.upBefore) this.emit('resync');
      this.upBefore = true;
    });
  }

  private entryKey(collection: CollectionName, id: string): string {
    return `${this.prefix}e:${collection}:${id}`;
  }

  private aliasKey(alias: string): string {
    return `${this.prefix}a:${alias}`;
  }

  private groupKey(group: string): string {
    return `${this.prefix}g:${group}`;
  }

  async load(): Promise<StoredState> {
    const state: StoredState = {};
    const entryPrefix = `${this.prefix}e:`;
    await this.scan(`${entryPrefix}*`, async (keys) => {
      const now = Date.now();
      const [values, ttls] = await Promise.all([
        this.link.command(['MGET', ...keys]) as Promise<(string | null)[]>,
        Promise.all(keys.map((key) => this.link.command(['PTTL', key]) as Promise<number>)),
      ]);
      keys.forEach((key, i) => {
        const json = values[i];
        if (json === null) return;
        const rest = key.slice(entryPrefix.length);
        const colon = rest.indexOf(':');
        const collection = rest.slice(0, colon);
        (state[collection] ??= new Map()).set(rest.slice(colon + 1), { json, expiresAt: ttls[i] >= 0 ? now + ttls[i] : undefined });
      });
    });
    return state;
  }

  put(collection: CollectionName, id: string, json: string, expiresAt?: number, links?: EntryLinks): void {
    if (expiresAt !== undefined && expiresAt <= Date.now()) {
      this.delete(collection, id, links);
      return;
    }
    const expiry = expiresAt === undefined ? [] : ['PXAT', String(Math.ceil(expiresAt))];
    this.batch.push(['SET', this.entryKey(collection, id), json, ...expiry]);
    for (const alias of links?.aliases ?? []) this.batch.push(['SET', this.aliasKey(alias), `${collection}/${id}`, ...expiry]);
    if (links?.group !== undefined) this.batch.push(['SADD', this.groupKey(links.group), `${collection}/${id}`]);
  }

  delete(collection: CollectionName, id: string, links?: EntryLinks): void {
    this.batch.push(['DEL', this.entryKey(collection, id), ...(links?.aliases ?? []).map((alias) => this.aliasKey(alias))]);
    if (links?.group !== undefined) this.batch.push(['SREM', this.groupKey(links.group), `${collection}/${id}`]);
  }

  expireGroup(group: string, expiresAt: number): void {
    this.batch.push(['PEXPIREAT', this.groupKey(group), String(Math.ceil(expiresAt))]);
  }

  /**
   * Sends the batch as one pipeline. Never rejects: while Redis is away the
   * batch is dropped (the resync when it is back writes it all again); a
   * write Redis refuses is reported and written again at the next resync.
   */
  async flush(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0 || !this.link.isUp) return;
    const results = await Promise.allSettled(batch.map((command) => this.link.command(command)));
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed && this.link.isUp) this.emit('writeFailed', failed.reason as Error);
  }

  async get(collection: CollectionName, id: string): Promise<string | undefined> {
    return ((await this.link.command(['GET', this.entryKey(collection, id)])) as string | null) ?? undefined;
  }

  async resolve(alias: string): Promise<FoundEntry | undefined> {
    const target = (await this.link.command(['GET', this.aliasKey(alias)])) as string | null;
    if (target === null) return undefined;
    const slash = target.indexOf('/');
    const collection = target.slice(0, slash);
    const id = target.slice(slash + 1);
    const json = await this.get(collection, id);
    return json === undefined ? undefined : { collection, id, json };
  }

  async group(group: string): Promise<FoundEntry[]> {
    const members = (await this.link.command(['SMEMBERS', this.groupKey(group)])) as string[];
    if (members.length === 0) return [];
    const places = members.map((member) => {
      const slash = member.indexOf('/');
      return { collection: member.slice(0, slash), id: member.slice(slash + 1) };
    });
    const values = (await this.link.command(['MGET', ...places.map(({ collection, id }) => this.entryKey(collection, id))])) as (string | null)[];
    const found: FoundEntry[] = [];
    const gone: string[] = [];
    places.forEach((place, i) => {
      const json = values[i];
      if (json === null) gone.push(members[i]);
      else found.push({ ...place, json });
    });
    // Entries that expired on their own (parked requests past their time to live) leave the set here.
    if (gone.length > 0) this.link.command(['SREM', this.groupKey(group), ...gone]).catch(() => undefined);
    return found;
  }

  /** Removes every key of this store (its server node was deleted). */
  async destroy(): Promise<void> {
    this.batch = [];
    if (!this.link.isUp) return;
    await this.scan(`${this.prefix}*`, async (keys) => {
      await this.link.command(['UNLINK', ...keys]);
    });
  }

  private async scan(pattern: string, each: (keys: string[]) => Promise<void>): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = (await this.link.command(['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(SCAN_BATCH)])) as [string, string[]];
      cursor = next;
      if (keys.length > 0) await each(keys);
    } while (cursor !== '0');
  }
}
