import { randomBytes } from 'node:crypto';
import type { Node, NodeAPI } from 'node-red';
import { RedisLink } from '../lib/cluster/redis-link';
import { RedisStateStore } from '../lib/lwm2m/redis-store';

/** The state store settings of the server and bootstrap-server nodes. */
export interface StoreNodeDef {
  /** "file" (default, in the user directory) or "redis" (shared by several instances). */
  store?: string;
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

/**
 * The secret a node's state is sealed under (DTLS sessions, bootstrap
 * configurations): its stateKey credential (the editor makes one); for a node
 * without one (a flow file written by hand, a flow deployed through the admin
 * API) one derived from Node-RED's own credential secret and the node id, so
 * it is the same after a restart and on every instance of a cluster; with
 * credentials kept unencrypted (credentialSecret false), a new one, saved
 * with the credentials at the next deploy.
 */
export function stateKeyOf(RED: NodeAPI, node: Node<{ stateKey?: string }>, type: string): string {
  const existing = node.credentials?.stateKey;
  if (existing) return existing;
  const secret = settingOf(RED, 'credentialSecret') ?? settingOf(RED, '_credentialSecret');
  if (typeof secret === 'string' && secret.length > 0) return `${secret}\u0000${type} ${node.id}`;
  const stateKey = randomBytes(32).toString('hex');
  node.credentials = { ...node.credentials, stateKey };
  void RED.nodes.addCredentials(node.id, node.credentials);
  return stateKey;
}

function settingOf(RED: NodeAPI, name: string): unknown {
  try {
    return (RED.settings as unknown as { get(name: string): unknown }).get(name);
  } catch {
    return undefined; // a runtime without these settings (a test harness)
  }
}
