import path from 'node:path';
import type { NodeAPI, NodeDef } from 'node-red';
import { ServerConfigNode, ServerHost } from './server-host';

interface ServerNodeDef extends NodeDef {
  bindAddress: string;
  port: string | number;
  modelFolder?: string;
  /** Seconds a queue-mode device counts as awake after it last talked. */
  awakeTime?: string | number;
  /** Seconds a request may wait for a sleeping device. */
  queueTtl?: string | number;
  reobserve?: boolean;
}

/** A positive number of seconds from the editor, in milliseconds, or the default. */
function seconds(value: string | number | undefined, fallback: number): number {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number * 1000 : fallback * 1000;
}

export = function register(RED: NodeAPI): void {
  function Lwm2mServerNode(this: ServerConfigNode, def: ServerNodeDef) {
    RED.nodes.createNode(this, def);
    const port = Number(def.port);
    const modelFolder = def.modelFolder?.trim();
    this.host = new ServerHost(
      this,
      RED,
      {
        address: (def.bindAddress || '0.0.0.0').trim(),
        port: Number.isInteger(port) && port >= 0 && port <= 65535 ? port : 5683,
        awakeTimeMs: seconds(def.awakeTime, 93),
        reobserve: def.reobserve !== false,
        client: { defaultTtlMs: seconds(def.queueTtl, 300) },
      },
      modelFolder ? path.resolve(RED.settings.userDir ?? process.cwd(), modelFolder) : undefined,
    );
    this.on('close', (_removed: boolean, done: () => void) => {
      this.host.close().then(done, done);
    });
  }
  RED.nodes.registerType('lwm2m-server', Lwm2mServerNode);
};
