import path from 'node:path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { Lwm2mServer } from '../lib/lwm2m/server';
import { SecurityRegistry, parseEndpointSecurity } from '../lib/lwm2m/security';
import { DtlsCredentialsDef, DtlsNodeDef, SettingError, configuredListeners, keysOf, portOf, secondsOf, secureListener } from './dtls-settings';
import type { SecureListenerOptions } from '../lib/lwm2m/listeners';
import { settingsOf } from './node-defaults';
import { FileStateStore } from '../lib/lwm2m/state';
import { ObjectModel } from '../lib/model/object-model';
import type { ServerConfigNode } from './config-nodes';
import { SocketHost, refuseSettings } from './socket-host';
import { registerAdminApi, trackServer } from './admin-api';

/** A device's security as the editor keeps it; its PSK key is in the credentials. */
interface SecurityEntry {
  endpoint: string;
  mode: string;
  identity?: string;
  publicKey?: string;
}

interface ServerNodeDef extends NodeDef, DtlsNodeDef {
  security?: SecurityEntry[];
}

interface ServerCredentials extends DtlsCredentialsDef {
  /** {"endpoint": "hex key"} of the PSK devices. */
  pskKeys?: string;
}

type ServerNodeThis = ServerConfigNode & Node<ServerCredentials>;

export = function register(RED: NodeAPI): void {
  /** The devices' security from the editor; entries that do not parse are reported by endpoint, never with their key. */
  function securityOf(node: ServerNodeThis, def: ServerNodeDef): SecurityRegistry {
    const security = new SecurityRegistry();
    const keys = keysOf(RED, node, node.credentials?.pskKeys, 'lwm2m-server');
    for (const entry of def.security ?? []) {
      try {
        security.set(entry.endpoint, parseEndpointSecurity({ ...entry, key: keys[entry.endpoint] }));
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
    let secure: SecureListenerOptions | undefined;
    let port: number | undefined;
    let awakeTimeMs: number;
    let queueTtlMs: number;
    try {
      secure = secureListener(RED, this, settings, address, 'lwm2m-server');
      // A node with neither port keeps the plain default rather than listening on nothing.
      port = portOf(settings.port, 'UDP port') ?? (secure ? undefined : 5683);
      awakeTimeMs = secondsOf(settings.awakeTime, 'awake time');
      queueTtlMs = secondsOf(settings.queueTtl, 'queue time to live');
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
    const server = new Lwm2mServer({
      address,
      port,
      secure,
      security,
      model,
      awakeTimeMs,
      reobserve: settings.reobserve !== false,
      client: { defaultTtlMs: queueTtlMs },
      // In the user directory; a runtime without one (an embedding test harness) keeps no state.
      stateStore: settings.persist !== false && RED.settings.userDir ? new FileStateStore(path.join(RED.settings.userDir, 'lwm2m-state', `${this.id}.json`)) : undefined,
    });
    // Devices listed with credentials can only register over DTLS: without a DTLS port none of them can.
    const secured = (def.security ?? []).length;
    let warning: string | undefined;
    if (secured > 0 && !secure) {
      warning = RED._('lwm2m-server.status.noDtlsPort');
      this.warn(RED._('lwm2m-server.errors.noDtlsPort', { count: secured }));
    }
    const listeners = configuredListeners(address, port, secure);
    this.host = new SocketHost(this, RED, server, { messages: 'lwm2m-server', listeners, count: () => server.registrations.size, warning });
    server.on('refused', (endpoint, peer, reason) => this.warn(RED._('lwm2m-server.errors.refused', { endpoint, peer: `${peer.address}:${peer.port}`, reason })));
    server.on('handshakeFailed', (peer, reason) => this.debug(`DTLS handshake with ${peer.address}:${peer.port} failed: ${reason}`));
    for (const event of ['registered', 'deregistered', 'expired'] as const) server.on(event, () => this.host.countChanged());
    trackServer(RED, this);
    this.on('close', (_removed: boolean, done: () => void) => {
      this.host.close().then(done, done);
    });
  }
  RED.nodes.registerType<ServerNodeThis, ServerNodeDef, object, ServerCredentials>('lwm2m-server', Lwm2mServerNode, {
    credentials: {
      pskKeys: { type: 'text' },
      privateKey: { type: 'password' },
    },
  });
  registerAdminApi(RED);
};
