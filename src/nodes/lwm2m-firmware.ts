import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import type { Campaign, CampaignListener, CampaignSummary } from '../lib/firmware/campaign';
import { CampaignError, CampaignRequest } from '../lib/firmware/firmware-service';
import { PublicUris, externalAddress } from '../lib/firmware/file-service';
import type { Delivery, DeviceResult, FirmwareAction, JobSettings, ProgressEvent } from '../lib/firmware/job';
import type { ServerConfigNode } from './config-nodes';
import { routeFirmwareFiles } from './firmware-http';
import { InputError, Msg, numberFrom, typedSetting } from './inputs';
import { Settings, settingsOf } from './node-defaults';
import { failureStatus } from './operation-node';
import { hostFor } from './socket-host';
import type { Lwm2mServer } from '../lib/lwm2m/server';

/** The node's settings: every property of NODE_DEFAULTS['lwm2m-firmware'], a missing one its default. */
type FirmwareSettings = Settings<'lwm2m-firmware'>;

type Send = (msgs: (NodeMessage | null)[]) => void;
type Done = (error?: Error) => void;

/** The defaults of what the node and the msg leave empty. */
const DEFAULTS = { concurrency: 10, retries: 2, timeout: 30, downloadTimeout: 600, updateTimeout: 600, pollInterval: 10 };
const VERBS: Record<FirmwareAction, string> = { update: 'updated', install: 'installed', activate: 'activated', deactivate: 'deactivated', uninstall: 'uninstalled' };
const STATUS_INTERVAL_MS = 250;

export = function register(RED: NodeAPI): void {
  routeFirmwareFiles(RED);

  /** Node-RED's own HTTP root as devices reach it: its settings, this machine's external address for a wildcard host. */
  function httpBase(): string | undefined {
    const settings = RED.settings as unknown as { uiHost?: string; uiPort?: number; httpNodeRoot?: string | false; https?: unknown };
    if (settings.httpNodeRoot === false) return undefined;
    const scheme = settings.https ? 'https' : 'http';
    let host = settings.uiHost && settings.uiHost !== '0.0.0.0' && settings.uiHost !== '::' ? settings.uiHost : externalAddress(false);
    if (host.includes(':')) host = `[${host}]`;
    const root = settings.httpNodeRoot ?? '/';
    return `${scheme}://${host}:${settings.uiPort ?? 1880}${root.startsWith('/') ? root : `/${root}`}`;
  }

  function Lwm2mFirmwareNode(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const settings = settingsOf('lwm2m-firmware', def);
    const host = hostFor<Lwm2mServer>(RED, this, settings.server, 'lwm2m-firmware');
    if (!host) return;
    const firmware = (RED.nodes.getNode(settings.server) as ServerConfigNode).firmware;
    const mine = new Set<Campaign>();
    let closed = false;
    host.register(this);

    let statusTimer: NodeJS.Timeout | undefined;
    const showStatus = () => {
      if (statusTimer || closed) return;
      statusTimer = setTimeout(() => {
        statusTimer = undefined;
        if (!closed) node.status(statusOf([...mine]));
      }, STATUS_INTERVAL_MS);
    };

    const send = (index: 0 | 1 | 2, msg: NodeMessage) => {
      const msgs: (NodeMessage | null)[] = [null, null, null];
      msgs[index] = msg;
      node.send(msgs);
    };

    const listener: CampaignListener = {
      progress: (event: ProgressEvent) => {
        send(1, { topic: 'progress', endpoint: event.endpoint, campaign: event.campaign, payload: event } as NodeMessage);
        showStatus();
      },
      result: (result: DeviceResult) => {
        const msg = { topic: 'result', endpoint: result.endpoint, campaign: result.campaign, payload: result } as NodeMessage;
        if (result.status === 'failed') {
          const reason = result.reason ?? result.code ?? 'failed';
          node.error(reason.startsWith(result.endpoint) ? reason : `${result.endpoint}: ${reason}`, msg);
        }
        send(0, msg);
        showStatus();
      },
      finished: (summary: CampaignSummary) => {
        send(2, { topic: 'summary', campaign: summary.campaign, payload: summary } as NodeMessage);
        node.status(statusOf([...mine]));
      },
    };

    const showFailure = (error: Error) => node.status(failureStatus(RED, 'lwm2m-firmware', error instanceof CampaignError ? new InputError(error.message) : error));
    const run = (endpoint: string, msg: Msg, done: Done) => {
      const given = { ...settings, endpoint };
      let request: CampaignRequest;
      try {
        if (msg.cancel === true) {
          const { cancelled, refusals } = firmware.cancel(node.id, { campaign: typeof msg.campaign === 'string' ? msg.campaign : undefined, endpoints: endpointsOf(given, msg) });
          for (const refusal of refusals) node.warn(refusal);
          if (cancelled === 0 && refusals.length === 0) node.warn(RED._('lwm2m-firmware.errors.nothingToCancel'));
          done();
          return;
        }
        request = requestOf(given, msg);
      } catch (error) {
        showFailure(error as Error);
        done(error as Error);
        return;
      }
      firmware.start(request, node.id, listener).then(
        (campaign) => {
          // The status counts the campaigns under way, or the last one.
          for (const other of mine) if (other.done) mine.delete(other);
          mine.add(campaign);
          msg.campaign = campaign.id;
          node.status(statusOf([...mine]));
          done();
        },
        (error: Error) => {
          showFailure(error);
          done(error instanceof CampaignError ? error : new Error(`unexpected failure: ${error.message}`));
        },
      );
    };

    this.on('input', (msg: Msg, _send: Send, done: Done) => {
      // The node's endpoint: a text, or a msg, flow, global or env property read now.
      const endpoint = typedSetting(RED, node, settings.endpoint, settings.endpointType, msg);
      if (typeof endpoint === 'string') return run(endpoint, msg, done);
      endpoint.then(
        (value) => run(value, msg, done),
        (error: Error) => {
          showFailure(error);
          done(error);
        },
      );
    });

    // Campaigns this node started before a redeploy or restart go on, reporting here.
    void host.service.ready.then(async () => {
      if (closed) return;
      for (const campaign of await firmware.adopt(node.id, listener)) mine.add(campaign);
      if (mine.size > 0) node.status(statusOf([...mine]));
    });

    this.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      clearTimeout(statusTimer);
      host.deregister(node);
      if (removed) firmware.abandon(node.id);
      else firmware.park(node.id);
      done();
    });
  }

  /** The campaign the msg asks for; throws InputError for one that cannot be. */
  function requestOf(def: FirmwareSettings, msg: Msg): CampaignRequest {
    const object = Number(def.object || 5) as 5 | 9;
    const action = (def.action || msg.action || (object === 5 ? 'update' : 'install')) as FirmwareAction;
    const delivery = (def.delivery || msg.delivery || 'auto') as Delivery;
    if (!['auto', 'push', 'pull'].includes(delivery)) throw new InputError(`delivery must be auto, push or pull, not ${JSON.stringify(delivery)}`);
    const seconds = (name: keyof typeof DEFAULTS, fallback: number) => {
      const value = setting(def[name], msg[name], fallback);
      if (!(value > 0) || value > 30 * 24 * 3600) throw new InputError(`${name} must be a positive number of seconds, not ${JSON.stringify(msg[name] ?? def[name])}`);
      return value * 1000;
    };
    const retries = setting(def.retries, msg.retries, DEFAULTS.retries);
    if (!Number.isInteger(retries) || retries < 0 || retries > 100) throw new InputError(`retries must be a whole number from 0 to 100, not ${JSON.stringify(msg.retries ?? def.retries)}`);
    const instance = setting(def.instanceId, msg.instanceId, NaN);
    const version = text(def.version) ?? (msg.version === undefined ? undefined : String(msg.version));
    const model = text(def.model) ?? (typeof msg.model === 'string' ? msg.model : undefined);
    const publicUris: PublicUris = {
      ...(text(def.coapUri) ? { coap: text(def.coapUri) } : {}),
      ...(text(def.coapsUri) ? { coaps: text(def.coapsUri) } : {}),
      ...(text(def.coapTcpUri) ? { 'coap+tcp': text(def.coapTcpUri) } : {}),
      ...(text(def.coapsTcpUri) ? { 'coaps+tcp': text(def.coapsTcpUri) } : {}),
      http: text(def.httpUri) ?? httpBase(),
    };
    const settings: JobSettings = {
      object,
      action,
      delivery,
      ...(version !== undefined ? { version } : {}),
      ...(model !== undefined ? { model } : {}),
      ...(Number.isInteger(instance) ? { instanceId: instance } : {}),
      activate: def.activate === true || msg.activate === true,
      retries,
      retryDelayMs: 2000,
      requestTimeoutMs: seconds('timeout', DEFAULTS.timeout),
      downloadTimeoutMs: seconds('downloadTimeout', DEFAULTS.downloadTimeout),
      updateTimeoutMs: seconds('updateTimeout', DEFAULTS.updateTimeout),
      pollIntervalMs: seconds('pollInterval', DEFAULTS.pollInterval),
      publicUris,
    };
    const delivers = action === 'update' || action === 'install';
    const url = delivers && typeof msg.url === 'string' ? msg.url : undefined;
    const pkg = delivers && url === undefined ? msg.payload : undefined;
    if (delivers && url === undefined && !Buffer.isBuffer(pkg)) throw new InputError('no package: msg.payload must be a Buffer (the package; a file-in node set to "a single Buffer object" reads one) or msg.url its URI');
    return {
      settings,
      concurrency: setting(def.concurrency, msg.concurrency, DEFAULTS.concurrency),
      endpoints: endpointsOf(def, msg),
      ...(pkg !== undefined ? { package: pkg as Buffer } : {}),
      ...(url !== undefined ? { url } : {}),
    };
  }

  /** The node's endpoint, else msg.endpoints or msg.endpoint; undefined: every device with the object. */
  function endpointsOf(def: FirmwareSettings, msg: Msg): string[] | undefined {
    if (text(def.endpoint)) return [text(def.endpoint) as string];
    if (Array.isArray(msg.endpoints)) {
      if (!msg.endpoints.every((endpoint) => typeof endpoint === 'string' && endpoint.trim() !== '')) throw new InputError('msg.endpoints must be an array of endpoint names');
      return msg.endpoints.map((endpoint: string) => endpoint.trim());
    }
    if (msg.endpoints !== undefined) throw new InputError('msg.endpoints must be an array of endpoint names');
    if (typeof msg.endpoint === 'string' && msg.endpoint.trim() !== '') return [msg.endpoint.trim()];
    if (msg.endpoint !== undefined) throw new InputError('msg.endpoint must be an endpoint name');
    return undefined;
  }

  /** "12/500 updated · 3 failed", over the node's campaigns. */
  function statusOf(campaigns: Campaign[]): { fill: 'blue' | 'green' | 'yellow'; shape: 'dot' | 'ring'; text: string } {
    let total = 0;
    let success = 0;
    let failed = 0;
    let skipped = 0;
    let cancelled = 0;
    let running = 0;
    const verbs = new Set<string>();
    for (const campaign of campaigns) {
      const counts = campaign.counts;
      total += counts.total;
      success += counts.success;
      failed += counts.failed;
      skipped += counts.skipped;
      cancelled += counts.cancelled;
      running += counts.running;
      verbs.add(VERBS[campaign.record.settings.action]);
    }
    // Counts first, each word from the catalogue: "2/2 updated · 0 failed".
    const word = (key: string) => RED._(`lwm2m-firmware.status.${key}`);
    const parts = [`${success}/${total} ${word(verbs.size === 1 ? [...verbs][0] : 'done')}`, `${failed} ${word('failed')}`];
    if (skipped > 0) parts.push(`${skipped} ${word('skipped')}`);
    if (cancelled > 0) parts.push(`${cancelled} ${word('cancelled')}`);
    if (running > 0) parts.push(`${running} ${word('running')}`);
    const active = campaigns.some((campaign) => !campaign.done);
    return { fill: failed > 0 ? 'yellow' : active ? 'blue' : 'green', shape: active ? 'ring' : 'dot', text: parts.join(' · ') };
  }

  RED.nodes.registerType('lwm2m-firmware', Lwm2mFirmwareNode);
};

/** The node's setting where set, else the msg's, else the default; NaN for what is not a number. */
function setting(node: string | number | undefined, fromMsg: unknown, fallback: number): number {
  if (node !== undefined && node !== '') return numberFrom(node);
  if (fromMsg !== undefined && fromMsg !== '') return numberFrom(fromMsg);
  return fallback;
}

function text(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}
