import { RedisLink } from '../lib/cluster/redis-link';
import { RedisStateStore } from '../lib/lwm2m/redis-store';

/** The state store settings of the server and bootstrap-server nodes. */
export interface StoreNodeDef {
  /** "file" (default, in the user directory) or "redis" (shared by several instances). */
  store?: 'file' | 'redis';
  /** redis://host:6379 (rediss:// for TLS); the password is a credential. */
  redisUrl?: string;
  /** Prefix of every key (default "lwm2m:"); the node id follows it, so one Redis serves several servers and flows. */
  redisPrefix?: string;
}

/** A Redis store for a node, connecting in the background; throws for a URL that cannot be used. */
export function openStateStore(def: StoreNodeDef, password: string | undefined, nodeId: string): RedisStateStore {
  const url = (def.redisUrl ?? '').trim() || 'redis://127.0.0.1:6379';
  if (!/^rediss?:\/\/[^\s]+$/.test(url)) throw new Error(`Redis URL must look like redis://host:6379, not ${JSON.stringify(url)}`);
  const prefix = def.redisPrefix === undefined ? 'lwm2m:' : def.redisPrefix.trim();
  const link = new RedisLink({ url, password: password || undefined });
  return new RedisStateStore(link, `${prefix}${nodeId}:`);
}
