import type { IncomingMessage } from 'node:http';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeStatus } from 'node-red';
import type { CommandResult } from '../lib/onem2m/commands';
import { FailureSource, InterworkingMode, Lwm2mIpe } from '../lib/onem2m/ipe';
import { httpStatusFor } from '../lib/onem2m/response-codes';
import type { Lwm2mServer } from '../lib/lwm2m/server';
import { Lwm2mPath } from '../lib/model/path';
import { HostUser, hostFor } from './socket-host';

interface IpeNodeDef extends NodeDef {
  server: string;
  cseUrl: string;
  originator: string;
  /** The CSE-ID notifications come from; empty: the one the CSE base names. */
  cseId?: string;
  releaseVersion?: string;
  mode?: InterworkingMode;
  /** How the CSE reaches this Node-RED, e.g. http://192.0.2.10:1880; empty: no commands. */
  notificationBase?: string;
  /** Paths observed on every device, comma separated. */
  observe?: string;
  maxInstances?: string | number;
}

interface IpeCredentials {
  username?: string;
  password?: string;
}

/** The lwm2m-onem2m config node as its events nodes see it. */
interface IpeConfigNode extends Node<IpeCredentials> {
  ipe?: Lwm2mIpe;
  register(user: HostUser): void;
  deregister(user: HostUser): void;
}

interface EventsNodeDef extends NodeDef {
  ipe: string;
  mirrored?: boolean;
  failed?: boolean;
  command?: boolean;
  reachability?: boolean;
}

const STATUS_THROTTLE_MS = 500;
/** How often the status shows the operations waiting while the CSE does not answer. */
const OUTAGE_STATUS_MS = 1000;

/** The URL the CSE posts notifications to, below httpNodeRoot; each subscription appends a secret of its own. */
function notificationPath(id: string): string {
  return `/lwm2m-onem2m/${id}/notify`;
}

/** The Express route: with the secret, and without (to refuse such notifications with a oneM2M answer). */
function notificationRoute(id: string): string {
  return `${notificationPath(id)}/:secret?`;
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function readBody(request: IncomingMessage & { body?: unknown }): Promise<unknown> {
  if (request.body !== undefined && !Buffer.isBuffer(request.body)) return Promise.resolve(request.body);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 1024 * 1024) chunks.push(chunk);
    });
    request.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        resolve(undefined);
      }
    });
    // Ended before its end (the sender went away): nothing to read.
    request.on('close', () => resolve(undefined));
  });
}

export = function register(RED: NodeAPI): void {
  function Lwm2mOnem2mNode(this: IpeConfigNode, def: IpeNodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const users = new Map<string, HostUser>();
    let statusTimer: NodeJS.Timeout | undefined;
    let problem: string | undefined;
    this.register = (user) => {
      users.set(user.id, user);
      user.status(status());
    };
    this.deregister = (user) => users.delete(user.id);

    const host = hostFor<Lwm2mServer>(RED, this, def.server, 'lwm2m-onem2m');
    if (!host) return;
    const root = String(RED.settings.httpNodeRoot ?? '/').replace(/\/+$/, '');
    const route = `${root}${notificationPath(this.id)}`;
    const base = def.notificationBase?.trim().replace(/\/+$/, '');
    const credentials = this.credentials ?? {};
    try {
      const observe = (def.observe ?? '')
        .split(',')
        .map((path) => path.trim())
        .filter(Boolean);
      for (const path of observe) Lwm2mPath.parse(path);
      this.ipe = new Lwm2mIpe(host.service, {
        cseUrl: def.cseUrl,
        originator: def.originator || 'CAdmin',
        cseId: def.cseId?.trim() || undefined,
        name: this.id,
        releaseVersion: def.releaseVersion || '3',
        mode: def.mode ?? 'transparent',
        notificationUrl: base ? `${base}${route}` : undefined,
        observe,
        maxInstances: Number(def.maxInstances) > 0 ? Number(def.maxInstances) : undefined,
        authorization: credentials.username ? `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}` : undefined,
      });
    } catch (error) {
      problem = (error as Error).message;
      this.error(RED._('lwm2m-onem2m.errors.config', { reason: problem }));
      return;
    }
    const ipe = this.ipe;

    function status(): NodeStatus {
      if (problem) return { fill: 'red', shape: 'ring', text: RED._('lwm2m-onem2m.status.invalid') };
      const health = ipe.health();
      if (!health.reachable) return { fill: 'red', shape: 'ring', text: RED._('lwm2m-onem2m.status.unreachable', { queued: String(health.queued) }) };
      const counts = { count: health.mirrored, queued: String(health.queued) };
      if (health.refused > 0) return { fill: 'red', shape: 'dot', text: RED._('lwm2m-onem2m.status.refused', { ...counts, refused: String(health.refused), reason: health.reason ?? '' }) };
      return { fill: 'green', shape: 'dot', text: RED._('lwm2m-onem2m.status.mirroring', counts) };
    }
    const showStatus = () => {
      for (const user of users.values()) user.status(status());
    };
    const pushStatus = () => {
      if (statusTimer) return;
      statusTimer = setTimeout(() => {
        statusTimer = undefined;
        showStatus();
      }, STATUS_THROTTLE_MS);
    };
    let outageTimer: NodeJS.Timeout | undefined;
    ipe.on('mirrored', pushStatus);
    ipe.on('failed', (endpoint, what, reason, source: FailureSource) => {
      const key = source === 'device' ? 'deviceFailed' : endpoint ? 'failed' : 'cseFailed';
      this.warn(RED._(`lwm2m-onem2m.errors.${key}`, { endpoint, what, reason }));
      pushStatus();
    });
    ipe.on('reachability', (reachable, reason) => {
      if (!reachable) this.warn(RED._('lwm2m-onem2m.errors.unreachable', { reason: reason ?? '' }));
      else this.log(RED._('lwm2m-onem2m.log.reachable'));
      clearInterval(outageTimer);
      // While the CSE is away nothing else updates the status: the operations waiting keep growing.
      outageTimer = reachable ? undefined : setInterval(showStatus, OUTAGE_STATUS_MS);
      showStatus();
    });

    RED.httpNode.post(notificationRoute(this.id), (request, response) => {
      void readBody(request).then((body) => {
        const requestId = header(request, 'x-m2m-ri');
        const rsc = ipe.handleNotification({ secret: request.params.secret, originator: header(request, 'x-m2m-origin'), requestId, body });
        // TS-0009: the request id back in X-M2M-RI, the oneM2M status in X-M2M-RSC and as its HTTP status.
        if (requestId) response.set('X-M2M-RI', requestId);
        response.set('X-M2M-RSC', String(rsc)).status(httpStatusFor(rsc)).end();
      });
    });
    // Devices restored from the saved state are mirrored too.
    void host.service.ready.then(() => {
      if (!closed) ipe.start();
    });
    let closed = false;

    this.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      clearTimeout(statusTimer);
      clearInterval(outageTimer);
      ipe.stop();
      const stack = (RED.httpNode as unknown as { _router?: { stack: { route?: { path: string } }[] } })._router?.stack;
      if (stack) {
        for (let i = stack.length - 1; i >= 0; i--) if (stack[i].route?.path === notificationRoute(node.id)) stack.splice(i, 1);
      }
      done();
    });
  }
  RED.nodes.registerType<IpeConfigNode, IpeNodeDef, object, IpeCredentials>('lwm2m-onem2m', Lwm2mOnem2mNode, {
    credentials: { username: { type: 'text' }, password: { type: 'password' } },
  });

  function Lwm2mOnem2mEventsNode(this: Node, def: EventsNodeDef) {
    RED.nodes.createNode(this, def);
    const config = RED.nodes.getNode(def.ipe) as IpeConfigNode | null;
    const ipe = config?.ipe;
    if (!config || !ipe) {
      this.status({ fill: 'red', shape: 'ring', text: RED._('lwm2m-onem2m-events.status.noIpe') });
      this.error(RED._('lwm2m-onem2m-events.errors.noIpe'));
      return;
    }
    const send = (msg: NodeMessage & Record<string, unknown>) => this.send(msg);
    const listeners = {
      mirrored: (endpoint: string, what: string) => send({ topic: 'mirrored', endpoint, payload: { endpoint, what } }),
      failed: (endpoint: string, what: string, reason: string, source: FailureSource) => send({ topic: 'failed', endpoint, payload: { endpoint, what, reason, source } }),
      command: (endpoint: string, result: CommandResult) => send({ topic: 'command', endpoint, payload: result }),
      reachability: (reachable: boolean, reason?: string) => send({ topic: 'reachability', payload: { reachable, ...(reason ? { reason } : {}) } }),
    };
    // Defaults: everything but the (chatty) mirrored events.
    const enabled: Record<string, boolean> = { mirrored: def.mirrored === true, failed: def.failed !== false, command: def.command !== false, reachability: def.reachability !== false };
    const detach = ipe.subscribe(listeners, (event) => enabled[event]);
    config.register(this);
    this.on('close', (_removed: boolean, done: () => void) => {
      detach();
      config.deregister(this);
      done();
    });
  }
  RED.nodes.registerType('lwm2m-onem2m-events', Lwm2mOnem2mEventsNode);
};
