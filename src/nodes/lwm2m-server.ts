import path from 'node:path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { Lwm2mServer, UnlistedEndpoints } from '../lib/lwm2m/server';
import { SecurityRegistry, parseEndpointSecurity } from '../lib/lwm2m/security';
import { DtlsCredentialsDef, DtlsNodeDef, ExtraListeners, SettingError, configuredListeners, extraListeners, portOf, secondsOf } from './dtls-settings';
import { keyIdOf, keysOf } from './key-credentials';
import { settingsOf } from './node-defaults';
import { FileStateStore, StateStore } from '../lib/lwm2m/state';
import { openStateStore, stateKeyOf, StoreNodeDef } from './state-store';
import { ObjectModel } from '../lib/model/object-model';
import type { ServerConfigNode } from './config-nodes';
import { SocketHost, refuseSettings } from './socket-host';
import { registerAdminApi, trackServer } from './admin-api';
import { FirmwareService } from '../lib/firmware/firmware-service';
import { FilePackageStore } from '../lib/firmware/packages';
import { addFirmwareService, removeFirmwareService } from './firmware-http';

/** A device's security as the editor keeps it; its PSK key is in the credentials under its keyId. */
interface SecurityEntry {
  endpoint: string;
  mode: string;
  identity?: string;
  publicKey?: string;
  /** Names the row's key in the credentials (absent in flows saved before: the endpoint). */
  keyId?: string;
}

interface ServerNodeDef extends NodeDef, DtlsNodeDef, StoreNodeDef {
  security?: SecurityEntry[];
}

interface ServerCredentials extends DtlsCredentialsDef {
  /** {"keyId": "hex key"} of the PSK devices (keyed by endpoint in flows saved before rows had a keyId). */
  pskKeys?: string;
  /** The editor's changes to them: {"keyId": "hex key" or "" to clear}. */
  pskKeyChanges?: string;
  /** The secret DTLS sessions are sealed under in the state store (made by the editor or at first start). */
  stateKey?: string;
  /** Password of the Redis store. */
  redisPassword?: string;
}

const UNLISTED: readonly string[] = ['nosec', 'dtls', 'listed'];

type ServerNodeThis = ServerConfigNode & Node<ServerCredentials>;

/**
 * The state store of each server node, by node id: it outlives the node, so
 * the next instance of the same node (a redeploy of any kind) takes over its
 * registrations, observations, waiting requests and DTLS connection table
 * from memory, without reading the file again. Removed with the node.
 */
const stores = new Map<string, FileStateStore>();

function storeFor(id: string, file: string): FileStateStore {
  const kept = stores.get(id);
  const store = kept?.file === file ? kept : new FileStateStore(file);
  stores.set(id, store);
  return store;
}

export = function register(RED: NodeAPI): void {
  /** The devices' security from the editor; entries that do not parse are reported by endpoint, never with their key. */
  function securityOf(node: ServerNodeThis, def: ServerNodeDef): SecurityRegistry {
    const security = new SecurityRegistry();
    const entries = def.security ?? [];
    const keys = keysOf(RED, node, { stored: 'pskKeys', changes: 'pskKeyChanges' }, entries.map(keyIdOf), 'lwm2m-server');
    for (const entry of entries) {
      try {
        security.set(entry.endpoint, parseEndpointSecurity({ ...entry, key: keys[keyIdOf(entry)] }));
      } catch (error) {
        node.error(RED._('lwm2m-server.errors.security', { endpoint: entry.endpoint, reason: (error as Error).message }));
      }
    }
    return security;
  }

  function Lwm2mServerNode(this: ServerNodeThis, def: ServerNodeDef) {
    RED.nodes.createNode(this, def);
    const settings = settingsOf('lwm2m-server', def);
    const address = settings.bindAddress.trim() || '0.0.0.0';
    let extra: ExtraListeners;
    let port: number | undefined;
    let awakeTimeMs: number;
    let queueTtlMs: number;
    let maxLifetimeMs: number;
    try {
      extra = extraListeners(RED, this, settings, address, 'lwm2m-server');
      // A node with no port at all keeps the plain default rather than listening on nothing.
      port = portOf(settings.port, 'UDP port') ?? (extra.secure || extra.tcp || extra.tls ? undefined : 5683);
      awakeTimeMs = secondsOf(settings.awakeTime, 'awake time');
      queueTtlMs = secondsOf(settings.queueTtl, 'queue time to live');
      maxLifetimeMs = secondsOf(settings.maxLifetime, 'longest lifetime');
    } catch (error) {
      if (!(error instanceof SettingError)) throw error;
      refuseSettings(RED, this, 'lwm2m-server', error);
      return;
    }
    const security = securityOf(this, def);
    const modelFolder = settings.modelFolder.trim();
    let model: ObjectModel | undefined;
    if (modelFolder) {
      const loaded = ObjectModel.fromFolder(path.resolve(RED.settings.userDir ?? process.cwd(), modelFolder));
      model = loaded.model;
      for (const problem of loaded.problems) this.warn(RED._('lwm2m-server.errors.model', { problem }));
    }
    // In the user directory (a runtime without one, such as an embedding test harness, keeps no state), or in Redis.
    const redis = settings.store === 'redis';
    const persist = redis || (settings.persist !== false && RED.settings.userDir);
    let stateStore: StateStore | undefined;
    try {
      stateStore = redis ? openStateStore(settings, this.credentials?.redisPassword, this.id) : persist ? storeFor(this.id, path.join(RED.settings.userDir as string, 'lwm2m-state', `${this.id}.json`)) : undefined;
    } catch (error) {
      this.error(RED._('lwm2m-server.errors.store', { error: (error as Error).message }));
    }
    const server = new Lwm2mServer({
      address,
      port,
      ...extra,
      security,
      model,
      awakeTimeMs,
      reobserve: settings.reobserve !== false,
      client: { defaultTtlMs: queueTtlMs },
      maxLifetime: maxLifetimeMs / 1000,
      unlistedEndpoints: (UNLISTED.includes(settings.unlistedEndpoints) ? settings.unlistedEndpoints : 'nosec') as UnlistedEndpoints,
      stateStore,
      stateKey: stateStore ? stateKeyOf(RED, this, 'lwm2m-server') : undefined,
      instance: process.env.LWM2M_INSTANCE?.trim() || undefined,
    });
    // Devices listed with credentials can only register over DTLS (or TLS): without a port for either none of them can.
    const secured = (def.security ?? []).length;
    let warning: string | undefined;
    if (secured > 0 && !extra.secure && !extra.tls) {
      warning = RED._('lwm2m-server.status.noDtlsPort');
      this.warn(RED._('lwm2m-server.errors.noDtlsPort', { count: secured }));
    }
    const listeners = configuredListeners(address, port, extra);
    // Before the server starts: campaigns saved before a restart and their files are back when the sockets open.
    const packages = persist ? new FilePackageStore(path.join(RED.settings.userDir as string, 'lwm2m-state', `${this.id}.packages`)) : undefined;
    this.firmware = new FirmwareService(server, { packages });
    addFirmwareService(this.firmware);
    this.host = new SocketHost(this, RED, server, { messages: 'lwm2m-server', listeners, count: () => server.registrations.size, warning });
    server.on('refused', (endpoint, peer, reason) => this.warn(RED._('lwm2m-server.errors.refused', { endpoint, peer: `${peer.address}:${peer.port}`, reason })));
    server.on('handshakeFailed', (peer, reason) => this.debug(`DTLS or TLS handshake with ${peer.address}:${peer.port} failed: ${reason}`));
    // In a cluster devices also come (taken over, then updated) and go (released to another instance).
    for (const event of ['registered', 'updated', 'deregistered', 'expired', 'released'] as const) server.on(event, () => this.host.countChanged());
    trackServer(RED, this);
    this.on('close', (removed: boolean, done: () => void) => {
      if (removed) stores.delete(this.id);
      removeFirmwareService(this.firmware);
      const closeLink = () => server.cluster?.store.link.close();
      this.host
        .close({ forget: removed })
        .then(() => (removed ? this.firmware.destroy() : undefined))
        .then(closeLink, closeLink)
        .then(done, done);
    });
  }
  RED.nodes.registerType<ServerNodeThis, ServerNodeDef, object, ServerCredentials>('lwm2m-server', Lwm2mServerNode, {
    credentials: {
      pskKeys: { type: 'password' },
      pskKeyChanges: { type: 'password' },
      privateKey: { type: 'password' },
      stateKey: { type: 'password' },
      redisPassword: { type: 'password' },
    },
  });
  registerAdminApi(RED);
};
