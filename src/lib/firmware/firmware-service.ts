import type { Lwm2mServer } from '../lwm2m/server';
import { parseEntry } from '../lwm2m/state';
import { randomText } from '../random-text';
import { Campaign, CampaignHost, CampaignListener, CampaignRecord, CampaignSummary } from './campaign';
import { PROTOCOL_OF_SCHEME } from './codes';
import { FileService } from './file-service';
import type { DeviceRecord, DeviceResult, JobSettings } from './job';
import { FirmwarePackage, MemoryPackageStore, PackageStore, packageOf } from './packages';

/** What a flow asks for: the settings every device is treated with, and which devices. */
export interface CampaignRequest {
  settings: JobSettings;
  /** Devices at once. */
  concurrency: number;
  /** The devices; without them every registered device that has the object (of the settings' model, when given). */
  endpoints?: string[];
  /** The package, delivered by the server (push, or pull from its file service)... */
  package?: Buffer;
  /** ...or a URI the devices fetch it from elsewhere. */
  url?: string;
}

/** A request that cannot become a campaign; the reason says why. */
export class CampaignError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CampaignError';
  }
}

/** The largest package taken (the whole of it is kept in memory while devices fetch it). */
const MAX_PACKAGE_BYTES = 64 * 1024 * 1024;
/** Package URI (/5/0/1, /9/x/3): 0..255 characters. */
const MAX_URI_LENGTH = 255;
const MAX_CONCURRENCY = 1000;
const ACTIONS: Record<5 | 9, readonly string[]> = { 5: ['update'], 9: ['install', 'activate', 'deactivate', 'uninstall'] };

/** Holds a campaign's results while its node restarts (a redeploy); progress is left out. */
class ParkedListener implements CampaignListener {
  private readonly results: DeviceResult[] = [];
  private summary?: CampaignSummary;

  progress(): void {}

  result(result: DeviceResult): void {
    this.results.push(result);
  }

  finished(summary: CampaignSummary): void {
    this.summary = summary;
  }

  flushTo(listener: CampaignListener): void {
    for (const result of this.results.splice(0)) listener.result(result);
    if (this.summary) listener.finished(this.summary);
  }
}

/**
 * Firmware and software campaigns of one LwM2M server: the file service on
 * its sockets, the campaigns its nodes start, their places kept in the
 * server's state store (collection "firmware") and their packages in a
 * package store, taken up again after a redeploy or a restart.
 */
export class FirmwareService {
  readonly files: FileService;
  private readonly campaigns = new Map<string, Campaign>();
  private readonly busy = new Map<string, Campaign>();
  /** Campaigns found in the saved state (or devices of one taken over from another instance), until their node takes them back (adopt). */
  private readonly dormant = new Map<string, { record: CampaignRecord; devices: DeviceRecord[]; takenOver: boolean }>();
  /** The nodes that adopted their campaigns, until they park or abandon them: devices taken over later go on with them at once. */
  private readonly listeners = new Map<string, CampaignListener>();
  private readonly packages: PackageStore;
  private readonly loaded = new Map<string, FirmwarePackage>();
  private restoring: Promise<void> = Promise.resolve();
  private readonly host: CampaignHost;
  /** Jobs waiting for their device to register again, by endpoint (one job per device at a time). */
  private readonly registrationWatchers = new Map<string, () => void>();

  constructor(
    readonly server: Lwm2mServer,
    options: { packages?: PackageStore } = {},
  ) {
    this.packages = options.packages ?? new MemoryPackageStore();
    this.files = new FileService(server);
    this.host = {
      server,
      files: this.files,
      keep: (id, value, expiresAt, endpoint) => server.keepEntry('firmware', id, value, expiresAt, endpoint),
      claim: (endpoint, campaign) => {
        const holder = this.busy.get(endpoint);
        if (holder && holder !== campaign) return false;
        this.busy.set(endpoint, campaign);
        return true;
      },
      release: (endpoint, campaign) => {
        if (this.busy.get(endpoint) === campaign) this.busy.delete(endpoint);
      },
      ended: (campaign) => {
        this.campaigns.delete(campaign.id);
        if (!campaign.spread) void this.dropPackage(campaign.record.sha256);
      },
      onRegistered: (endpoint, callback) => {
        this.registrationWatchers.set(endpoint, callback);
        return () => {
          if (this.registrationWatchers.get(endpoint) === callback) this.registrationWatchers.delete(endpoint);
        };
      },
    };
    // One listener each for all campaigns: a device waking up or registering goes first in the campaign waiting for it.
    server.on('awake', (registration) => {
      for (const campaign of this.campaigns.values()) campaign.woke(registration.endpoint);
    });
    server.on('registered', (registration) => {
      this.registrationWatchers.get(registration.endpoint)?.();
      if (this.campaigns.size === 0) return;
      // Awake once the server has noted it.
      setImmediate(() => {
        for (const campaign of this.campaigns.values()) campaign.woke(registration.endpoint);
      });
    });
    server.on('restored', () => {
      this.restoring = this.restore();
      this.files.hold(this.restoring);
    });
    server.on('stopping', () => this.stop());
    // In a cluster a device's update follows the device: let go here, taken up by the instance that serves it now.
    server.on('released', (registration) => {
      for (const campaign of this.campaigns.values()) campaign.handOver(registration.endpoint);
    });
    server.on('adopted', (registration, entries) => {
      const devices = entries.filter(([collection]) => collection === 'firmware').map(([, id, value]): [string, DeviceRecord] => [id, value as DeviceRecord]);
      if (devices.length === 0) return;
      this.restoring = this.restoring
        .then(() => this.takeOver(devices))
        .catch((error: Error) => {
          server.emit('warning', new Error(`the firmware update of ${registration.endpoint} not taken over: ${error.message}`));
        });
    });
  }

  /** Starts a campaign; rejects with CampaignError for a request that cannot be one. */
  async start(request: CampaignRequest, owner: string, listener: CampaignListener): Promise<Campaign> {
    await this.restoring;
    const { settings } = request;
    check(request);
    const endpoints = request.endpoints ?? [...this.server.registrations.all()].filter((registration) => registration.objects.some((object) => object.id === settings.object)).map((registration) => registration.endpoint);
    let pkg: FirmwarePackage | undefined;
    if (request.package) {
      pkg = packageOf(request.package);
      await this.packages.save(pkg);
      this.loaded.set(pkg.sha256, pkg);
    }
    const now = Date.now();
    const record: CampaignRecord = {
      id: randomText(6, 'base64url'),
      owner,
      settings,
      concurrency: request.concurrency,
      ...(pkg ? { sha256: pkg.sha256 } : {}),
      ...(request.url !== undefined ? { url: request.url } : {}),
      createdAt: now,
      expiresAt: now + lengthBound(settings, endpoints.length, request.concurrency, this.server.queueTtlMs),
      counts: { total: endpoints.length, success: 0, failed: 0, skipped: 0, cancelled: 0 },
      failures: [],
    };
    const devices: DeviceRecord[] = endpoints.map((endpoint) => ({ endpoint, phase: 'pending', attempt: 0, since: now }));
    const campaign = new Campaign(this.host, record, pkg, devices, listener);
    this.campaigns.set(record.id, campaign);
    campaign.start(true);
    return campaign;
  }

  /**
   * Hands an owner its campaigns: those that ran on while its node restarted
   * (with the results that came meanwhile) and those saved before a server
   * restart, which go on from where each device was.
   */
  async adopt(owner: string, listener: CampaignListener): Promise<Campaign[]> {
    await this.restoring;
    this.listeners.set(owner, listener);
    const adopted: Campaign[] = [];
    for (const campaign of this.campaigns.values()) {
      if (campaign.owner !== owner) continue;
      const parked = campaign.listener;
      campaign.listener = listener;
      if (parked instanceof ParkedListener) parked.flushTo(listener);
      adopted.push(campaign);
    }
    adopted.push(...this.wake(owner, listener));
    return adopted;
  }

  /** Starts an owner's dormant campaigns, going on from where each device was. */
  private wake(owner: string, listener: CampaignListener): Campaign[] {
    const woken: Campaign[] = [];
    for (const [id, { record, devices, takenOver }] of this.dormant) {
      if (record.owner !== owner) continue;
      this.dormant.delete(id);
      const campaign = new Campaign(this.host, record, record.sha256 === undefined ? undefined : this.loaded.get(record.sha256), devices, listener, takenOver);
      this.campaigns.set(id, campaign);
      campaign.start(false);
      woken.push(campaign);
    }
    return woken;
  }

  /** The owner's node restarts: its campaigns go on, their results wait for adopt(). */
  park(owner: string): void {
    this.listeners.delete(owner);
    for (const campaign of this.campaigns.values()) if (campaign.owner === owner) campaign.listener = new ParkedListener();
  }

  /** The owner's node was removed: its campaigns stop and are forgotten (devices in the middle are left as they are). */
  abandon(owner: string): void {
    this.listeners.delete(owner);
    for (const campaign of [...this.campaigns.values()]) if (campaign.owner === owner) campaign.abandon();
    for (const [id, { record, devices }] of [...this.dormant]) {
      if (record.owner !== owner) continue;
      this.dormant.delete(id);
      for (const device of devices) {
        this.server.keepEntry('firmware', `${id}/${device.endpoint}`, undefined, undefined, device.endpoint);
        if (device.token !== undefined) this.files.revoke(device.token);
      }
      this.server.keepEntry('firmware', id, undefined);
      void this.dropPackage(record.sha256);
    }
  }

  /** Cancels an owner's campaigns (one, or the devices listed); returns why some devices could not be. */
  cancel(owner: string, filter: { campaign?: string; endpoints?: string[] } = {}): { cancelled: number; refusals: string[] } {
    let cancelled = 0;
    const refusals: string[] = [];
    for (const campaign of [...this.campaigns.values()]) {
      if (campaign.owner !== owner || (filter.campaign !== undefined && campaign.id !== filter.campaign)) continue;
      const concerned = filter.endpoints ? campaign.endpoints.filter((endpoint) => filter.endpoints!.includes(endpoint)) : campaign.endpoints;
      if (concerned.length === 0) continue;
      cancelled += concerned.length;
      refusals.push(...campaign.cancel(filter.endpoints));
    }
    return { cancelled: cancelled - refusals.length, refusals };
  }

  /** The running campaigns (of an owner). */
  list(owner?: string): Campaign[] {
    return [...this.campaigns.values()].filter((campaign) => owner === undefined || campaign.owner === owner);
  }

  /** The server was deleted: its packages go too. */
  async destroy(): Promise<void> {
    await this.packages.destroy();
  }

  /** The server stops: campaigns stop where they are, their entries kept for the next start. */
  private stop(): void {
    for (const campaign of this.campaigns.values()) campaign.stop();
    this.campaigns.clear();
    this.busy.clear();
  }

  /** Reads the campaigns of the saved state and lets their devices go on fetching their packages at once. */
  private async restore(): Promise<void> {
    const headers = new Map<string, CampaignRecord>();
    const devices = new Map<string, DeviceRecord[]>();
    for (const [id, value] of this.server.restoredEntries<CampaignRecord | DeviceRecord>('firmware')) {
      const slash = id.indexOf('/');
      if (slash < 0) headers.set(id, value as CampaignRecord);
      else {
        const campaign = id.slice(0, slash);
        devices.set(campaign, [...(devices.get(campaign) ?? []), value as DeviceRecord]);
      }
    }
    // Devices of a campaign whose own entry is gone (expired, or a crash between two writes) have nothing to go on with.
    for (const [id, list] of devices) {
      if (headers.has(id)) continue;
      for (const device of list) this.server.keepEntry('firmware', `${id}/${device.endpoint}`, undefined, undefined, device.endpoint);
    }
    for (const [id, record] of headers) await this.revive(record, devices.get(id) ?? [], false);
  }

  /**
   * Devices another instance was updating when this one took them over (it
   * died, or let them go): each campaign's own entry read from the store,
   * then the devices go on as after a restart, here.
   */
  private async takeOver(entries: [string, DeviceRecord][]): Promise<void> {
    const byCampaign = new Map<string, DeviceRecord[]>();
    for (const [id, device] of entries) {
      const campaign = id.slice(0, id.indexOf('/'));
      byCampaign.set(campaign, [...(byCampaign.get(campaign) ?? []), device]);
    }
    for (const [id, devices] of byCampaign) {
      let record = this.campaigns.get(id)?.record ?? this.dormant.get(id)?.record;
      if (!record) {
        const json = await this.server.cluster?.store.get('firmware', id);
        record = json === undefined ? undefined : parseEntry<CampaignRecord>(json);
      }
      if (record) await this.revive(record, devices, true);
      // The campaign's own entry is gone (expired): its devices have nothing to go on with.
      else for (const device of devices) this.server.keepEntry('firmware', `${id}/${device.endpoint}`, undefined, undefined, device.endpoint);
    }
  }

  /** A saved campaign's devices go on: its package back, their URIs valid again; at once when its node has adopted its campaigns, else when it does. */
  private async revive(record: CampaignRecord, devices: DeviceRecord[], takenOver: boolean): Promise<void> {
    if (record.sha256 !== undefined && !this.loaded.has(record.sha256)) {
      const pkg = await this.packages.load(record.sha256).catch(() => undefined);
      if (pkg) this.loaded.set(pkg.sha256, pkg);
    }
    const pkg = record.sha256 === undefined ? undefined : this.loaded.get(record.sha256);
    for (const device of devices) if (device.token !== undefined && pkg) this.files.grant(device.endpoint, pkg, device.token);
    const running = this.campaigns.get(record.id);
    if (running) {
      for (const device of devices) running.add(device);
      return;
    }
    const dormant = this.dormant.get(record.id);
    if (dormant) dormant.devices.push(...devices);
    else this.dormant.set(record.id, { record, devices, takenOver });
    const listener = this.listeners.get(record.owner);
    if (listener) this.wake(record.owner, listener);
  }

  private async dropPackage(sha256: string | undefined): Promise<void> {
    if (sha256 === undefined) return;
    const used = [...this.campaigns.values()].some((campaign) => campaign.record.sha256 === sha256) || [...this.dormant.values()].some(({ record }) => record.sha256 === sha256);
    if (used) return;
    this.loaded.delete(sha256);
    await this.packages.remove(sha256).catch(() => undefined);
  }
}

/** Checks a request before anything is kept or sent. */
function check(request: CampaignRequest): void {
  const { settings } = request;
  if (!ACTIONS[settings.object]?.includes(settings.action)) throw new CampaignError(`object ${settings.object} has no action "${settings.action}" (${ACTIONS[settings.object]?.join(', ') ?? 'objects 5 and 9 only'})`);
  const delivers = settings.action === 'update' || settings.action === 'install';
  if (delivers && (request.package === undefined) === (request.url === undefined)) throw new CampaignError('give the package as msg.payload (a Buffer) or its URI as msg.url: one of the two');
  if (!delivers && (request.package !== undefined || request.url !== undefined)) throw new CampaignError(`${settings.action} takes no package`);
  if (request.package !== undefined) {
    if (!Buffer.isBuffer(request.package) || request.package.length === 0) throw new CampaignError('the package (msg.payload) must be a non-empty Buffer: read the file with a file-in node set to "a single Buffer object"');
    if (request.package.length > MAX_PACKAGE_BYTES) throw new CampaignError(`the package is ${request.package.length} bytes, more than ${MAX_PACKAGE_BYTES}`);
  }
  if (request.url !== undefined) checkUrl(request.url);
  if (!Number.isInteger(request.concurrency) || request.concurrency < 1 || request.concurrency > MAX_CONCURRENCY) throw new CampaignError(`concurrency must be a whole number from 1 to ${MAX_CONCURRENCY}, not ${request.concurrency}`);
  if (request.endpoints !== undefined) {
    if (request.endpoints.some((endpoint) => typeof endpoint !== 'string' || endpoint.trim() === '')) throw new CampaignError('endpoints must be non-empty strings');
    if (new Set(request.endpoints).size !== request.endpoints.length) throw new CampaignError('an endpoint is listed twice');
  }
  if (settings.version !== undefined && (typeof settings.version !== 'string' || settings.version === '')) throw new CampaignError('the expected version must be a non-empty string');
  for (const name of ['retries', 'retryDelayMs', 'requestTimeoutMs', 'downloadTimeoutMs', 'updateTimeoutMs', 'pollIntervalMs'] as const) {
    const value = settings[name];
    if (!Number.isFinite(value) || value < 0 || (name !== 'retries' && name !== 'retryDelayMs' && value === 0)) throw new CampaignError(`${name} must be a positive number, not ${value}`);
  }
}

function checkUrl(url: string): void {
  if (typeof url !== 'string' || url.length > MAX_URI_LENGTH) throw new CampaignError(`msg.url must be a URI of at most ${MAX_URI_LENGTH} characters (the Package URI resource holds no more)`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CampaignError(`msg.url ${JSON.stringify(url)} is not a URI`);
  }
  const scheme = parsed.protocol.slice(0, -1);
  if (PROTOCOL_OF_SCHEME[scheme] === undefined) throw new CampaignError(`msg.url must be coap, coaps, http, https, coap+tcp or coaps+tcp, not ${scheme}`);
  if (parsed.username !== '' || parsed.password !== '') throw new CampaignError('msg.url carries a user name or password, which would be kept in the state file: use a signed URL or the server\'s own file service (msg.payload)');
}

/** An upper bound of a campaign's length: every attempt of every device running out every timeout, the devices in rounds of `concurrency`. */
function lengthBound(settings: JobSettings, devices: number, concurrency: number, queueTtlMs: number): number {
  const perAttempt = settings.downloadTimeoutMs + 2 * settings.updateTimeoutMs + 10 * settings.requestTimeoutMs + settings.retryDelayMs;
  return Math.ceil(Math.max(1, devices) / concurrency) * (perAttempt * (settings.retries + 1) + queueTtlMs) + 24 * 3600_000;
}
