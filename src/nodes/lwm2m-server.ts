import path from 'node:path';
import type { NodeAPI, NodeDef } from 'node-red';
import { Lwm2mServer } from '../lib/lwm2m/server';
import { FileStateStore } from '../lib/lwm2m/state';
import { ObjectModel } from '../lib/model/object-model';
import type { ServerConfigNode } from './config-nodes';
import { SocketHost } from './socket-host';
import { registerAdminApi, trackServer } from './admin-api';

interface ServerNodeDef extends NodeDef {
  bindAddress: string;
  port: string | number;
  modelFolder?: string;
  /** Seconds a queue-mode device counts as awake after it last talked. */
  awakeTime?: string | number;
  /** Seconds a request may wait for a sleeping device. */
  queueTtl?: string | number;
  reobserve?: boolean;
  /** Keep registrations, observations and waiting requests in the user directory across restarts (default on). */
  persist?: boolean;
}

/** A positive number of seconds from the editor, in milliseconds, or the default. */
function seconds(value: string | number | undefined, fallback: number): number {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number * 1000 : fallback * 1000;
}

export = function register(RED: NodeAPI): void {
  function Lwm2mServerNode(this: ServerConfigNode, def: ServerNodeDef) {
    RED.nodes.createNode(this, def);
    const portNumber = Number(def.port);
    const address = (def.bindAddress || '0.0.0.0').trim();
    const port = Number.isInteger(portNumber) && portNumber >= 0 && portNumber <= 65535 ? portNumber : 5683;
    const modelFolder = def.modelFolder?.trim();
    let model: ObjectModel | undefined;
    if (modelFolder) {
      const loaded = ObjectModel.fromFolder(path.resolve(RED.settings.userDir ?? process.cwd(), modelFolder));
      model = loaded.model;
      for (const problem of loaded.problems) this.warn(RED._('lwm2m-server.errors.model', { problem }));
    }
    const server = new Lwm2mServer({
      address,
      port,
      model,
      awakeTimeMs: seconds(def.awakeTime, 93),
      reobserve: def.reobserve !== false,
      client: { defaultTtlMs: seconds(def.queueTtl, 300) },
      // In the user directory; a runtime without one (an embedding test harness) keeps no state.
      stateStore: def.persist !== false && RED.settings.userDir ? new FileStateStore(path.join(RED.settings.userDir, 'lwm2m-state', `${this.id}.json`)) : undefined,
    });
    this.host = new SocketHost(this, RED, server, { messages: 'lwm2m-server', address, port, count: () => server.registrations.size });
    for (const event of ['registered', 'deregistered', 'expired'] as const) server.on(event, () => this.host.countChanged());
    trackServer(RED, this);
    this.on('close', (_removed: boolean, done: () => void) => {
      this.host.close().then(done, done);
    });
  }
  RED.nodes.registerType('lwm2m-server', Lwm2mServerNode);
  registerAdminApi(RED);
};
