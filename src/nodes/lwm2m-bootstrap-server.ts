import path from 'node:path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { BootstrapConfigError, parseBootstrapConfig } from '../lib/bootstrap/bootstrap-config';
import { BootstrapServer } from '../lib/bootstrap/bootstrap-server';
import { parseEndpointSecurity } from '../lib/lwm2m/security';
import type { BootstrapServerConfigNode } from './config-nodes';
import { SocketHost, refuseSettings } from './socket-host';
import { settingsOf } from './node-defaults';
import { DtlsCredentialsDef, DtlsNodeDef, ExtraListeners, SettingError, configuredListeners, extraListeners, portOf } from './dtls-settings';
import { keyIdOf, keysOf } from './key-credentials';
import { FileStateStore, StateStore } from '../lib/lwm2m/state';
import { RedisStateStore } from '../lib/lwm2m/redis-store';
import { StoreNodeDef, openStateStore, stateKeyOf } from './state-store';

/** One server account as the editor holds it; its PSK key lives in the node's credentials. */
interface EditorAccount {
  uri?: string;
  securityMode?: string;
  shortServerId?: string | number;
  lifetime?: string | number;
  binding?: string;
  pskIdentity?: string;
}

interface EndpointEntry extends EditorAccount {
  endpoint: string;
  /** Names the row's keys in the credentials (absent in flows saved before: the endpoint). */
  keyId?: string;
  /** The PSK identity the device uses with this bootstrap server over DTLS (its key is in the credentials). */
  bootstrapIdentity?: string;
}

interface BootstrapServerNodeDef extends NodeDef, DtlsNodeDef, StoreNodeDef {
  defaultAccount?: EditorAccount;
  endpoints?: EndpointEntry[];
}

/** Every key is a password credential; each key list comes with the editor's changes to it (see key-credentials). */
interface BootstrapCredentials extends DtlsCredentialsDef {
  /** {"keyId": "hex key"}: the PSK keys devices use with this bootstrap server. */
  bootstrapKeys?: string;
  bootstrapKeyChanges?: string;
  /** PSK key of the default account, hex. */
  defaultPskKey?: string;
  /** {"keyId": "hex key"} for the per-endpoint accounts. */
  endpointKeys?: string;
  endpointKeyChanges?: string;
  stateKey?: string;
  redisPassword?: string;
}

type BootstrapServerThis = BootstrapServerConfigNode & Node<BootstrapCredentials>;

export = function register(RED: NodeAPI): void {
  function Lwm2mBootstrapServerNode(this: BootstrapServerThis, def: BootstrapServerNodeDef) {
    RED.nodes.createNode(this, def);
    const settings = settingsOf('lwm2m-bootstrap-server', def);
    const address = settings.bindAddress.trim() || '0.0.0.0';
    let extra: ExtraListeners;
    let port: number | undefined;
    try {
      extra = extraListeners(RED, this, settings, address, 'lwm2m-bootstrap-server');
      port = portOf(settings.port, 'UDP port') ?? (extra.secure || extra.tcp || extra.tls ? undefined : 5685);
    } catch (error) {
      if (!(error instanceof SettingError)) throw error;
      refuseSettings(RED, this, 'lwm2m-bootstrap-server', error);
      return;
    }
    // Configurations given by msg are kept: in a file in the user directory, or in Redis for every instance.
    let stateStore: StateStore | undefined;
    try {
      if (settings.store === 'redis') stateStore = openStateStore(settings, this.credentials?.redisPassword, this.id);
      else if (RED.settings.userDir) stateStore = new FileStateStore(path.join(RED.settings.userDir, 'lwm2m-state', `${this.id}.json`));
    } catch (error) {
      this.error(RED._('lwm2m-bootstrap-server.errors.store', { error: (error as Error).message }));
    }
    const server = new BootstrapServer({ address, port, ...extra, stateStore, stateKey: stateStore ? stateKeyOf(RED, this, 'lwm2m-bootstrap-server') : undefined, allowKeysInClear: settings.allowKeysInClear === true });
    const entries = (def.endpoints ?? []).filter((entry) => entry.endpoint);
    const keyIds = entries.map(keyIdOf);
    const keys = keysOf(RED, this, { stored: 'endpointKeys', changes: 'endpointKeyChanges' }, keyIds, 'lwm2m-bootstrap-server');
    const bootstrapKeys = keysOf(RED, this, { stored: 'bootstrapKeys', changes: 'bootstrapKeyChanges' }, keyIds, 'lwm2m-bootstrap-server');
    // A configuration that does not parse is reported by endpoint, without its key, and left out.
    const load = (account: EditorAccount, pskKey: string | undefined, label: string) => {
      try {
        return parseBootstrapConfig({ ...account, pskKey });
      } catch (error) {
        if (!(error instanceof BootstrapConfigError)) throw error;
        this.error(RED._('lwm2m-bootstrap-server.errors.config', { endpoint: label, reason: error.message }));
        return undefined;
      }
    };
    for (const entry of entries) {
      const config = load(entry, keys[keyIdOf(entry)], entry.endpoint);
      if (!config) continue;
      try {
        server.setConfig(entry.endpoint, config);
        if (entry.bootstrapIdentity) {
          server.security.set(entry.endpoint, parseEndpointSecurity({ mode: 'psk', identity: entry.bootstrapIdentity, key: bootstrapKeys[keyIdOf(entry)] }));
        }
      } catch (error) {
        this.error(RED._('lwm2m-bootstrap-server.errors.config', { endpoint: entry.endpoint, reason: (error as Error).message }));
      }
    }
    if (settings.allowDefault) server.setDefaultConfig(load(settings.defaultAccount as EditorAccount, this.credentials?.defaultPskKey, '*'));
    this.host = new SocketHost(this, RED, server, {
      messages: 'lwm2m-bootstrap-server',
      listeners: configuredListeners(address, port, extra),
      count: () => server.endpoints().length,
    });
    server.on('handshakeFailed', (peer, reason) => this.debug(`DTLS or TLS handshake with ${peer.address}:${peer.port} failed: ${reason}`));
    this.on('close', (removed: boolean, done: () => void) => {
      const closeLink = () => (stateStore instanceof RedisStateStore ? stateStore.link.close() : undefined);
      this.host.close({ forget: removed }).then(closeLink, closeLink).then(done, done);
    });
  }
  RED.nodes.registerType<BootstrapServerThis, BootstrapServerNodeDef, object, BootstrapCredentials>('lwm2m-bootstrap-server', Lwm2mBootstrapServerNode, {
    credentials: {
      defaultPskKey: { type: 'password' },
      endpointKeys: { type: 'password' },
      endpointKeyChanges: { type: 'password' },
      bootstrapKeys: { type: 'password' },
      bootstrapKeyChanges: { type: 'password' },
      privateKey: { type: 'password' },
      stateKey: { type: 'password' },
      redisPassword: { type: 'password' },
    },
  });
};
