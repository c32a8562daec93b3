import type { Node, NodeAPI, NodeDef } from 'node-red';
import { BootstrapConfigError, parseBootstrapConfig } from '../lib/bootstrap/bootstrap-config';
import { BootstrapServer } from '../lib/bootstrap/bootstrap-server';
import type { BootstrapServerConfigNode } from './config-nodes';
import { SocketHost } from './socket-host';

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
}

interface BootstrapServerNodeDef extends NodeDef {
  bindAddress: string;
  port: string | number;
  allowDefault?: boolean;
  defaultAccount?: EditorAccount;
  endpoints?: EndpointEntry[];
}

interface BootstrapCredentials {
  /** PSK key of the default account, hex. */
  defaultPskKey?: string;
  /** {"endpoint": "hex key"} for the per-endpoint accounts. */
  endpointKeys?: string;
}

type BootstrapServerThis = BootstrapServerConfigNode & Node<BootstrapCredentials>;

export = function register(RED: NodeAPI): void {
  function Lwm2mBootstrapServerNode(this: BootstrapServerThis, def: BootstrapServerNodeDef) {
    RED.nodes.createNode(this, def);
    const portNumber = Number(def.port);
    const address = (def.bindAddress || '0.0.0.0').trim();
    const port = Number.isInteger(portNumber) && portNumber >= 0 && portNumber <= 65535 ? portNumber : 5685;
    const server = new BootstrapServer({ address, port });

    let keys: Record<string, string> = {};
    try {
      keys = this.credentials?.endpointKeys ? (JSON.parse(this.credentials.endpointKeys) as Record<string, string>) : {};
    } catch {
      this.error(RED._('lwm2m-bootstrap-server.errors.keys'));
    }
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
    for (const entry of def.endpoints ?? []) {
      if (!entry.endpoint) continue;
      const config = load(entry, keys[entry.endpoint], entry.endpoint);
      if (config) server.setConfig(entry.endpoint, config);
    }
    if (def.allowDefault && def.defaultAccount) server.setDefaultConfig(load(def.defaultAccount, this.credentials?.defaultPskKey, '*'));

    this.host = new SocketHost(this, RED, server, { messages: 'lwm2m-bootstrap-server', address, port, count: () => server.endpoints().length });
    this.on('close', (_removed: boolean, done: () => void) => {
      this.host.close().then(done, done);
    });
  }
  RED.nodes.registerType<BootstrapServerThis, BootstrapServerNodeDef, object, BootstrapCredentials>('lwm2m-bootstrap-server', Lwm2mBootstrapServerNode, {
    credentials: {
      defaultPskKey: { type: 'password' },
      endpointKeys: { type: 'text' },
    },
  });
};
