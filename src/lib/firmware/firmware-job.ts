import {
  DeliveryMethod,
  FIRMWARE_RESULTS,
  FIRMWARE_STATE_NAMES,
  FirmwareResult,
  FirmwareState,
  PROTOCOL_OF_SCHEME,
  SCHEME_OF_PROTOCOL,
  unknownResult,
} from './codes';
import { DeviceResult, Job, JobFailure, JobSkip, asNumber, asText } from './job';
import type { Transport } from '../lwm2m/registration';
import type { ResourceWatch } from './resource-watch';

const PACKAGE = '/5/0/0';
const PACKAGE_URI = '/5/0/1';
const UPDATE = '/5/0/2';
const STATE = '/5/0/3';
const RESULT = '/5/0/5';
const FIRMWARE_VERSION = '/3/0/3';
const MODEL_NUMBER = '/3/0/1';

/** How a package goes to a device: pushed, or pulled over a scheme (from a URI of elsewhere, or from the server's file service). */
type Plan = { delivery: 'push' } | { delivery: 'pull'; scheme: string; url?: string };

/** Pulled packages by the device's transport: its own channel first; a DTLS or TLS device is never sent a plain coap URI. */
const PULL_SCHEMES: Record<Transport, readonly string[]> = { udp: ['coap', 'http', 'https'], dtls: ['coaps', 'https'], tcp: ['coap+tcp', 'http', 'https'], tls: ['coaps+tcp', 'https'] };

/**
 * The Firmware Update state machine of one device (Object 5, LwM2M 1.0-1.2):
 * Idle → (Write /5/0/0 in Block1 blocks, or Write /5/0/1 with a URI)
 * Downloading → Downloaded → (Execute /5/0/2) Updating → Update Result 1,
 * followed by observation of State and Update Result (reads where the device
 * refuses), the new Firmware Version (/3/0/3) compared once it reports it.
 */
export class FirmwareJob extends Job {
  /** /5/0/8 as the device reported it (CoAP only, the default, when it has no such resource). */
  private protocols: number[] = [0];
  private firstAttempt = true;
  private planned?: Plan;
  private reregistered = false;
  private deferredTold = false;

  protected async attempt(): Promise<{ status: 'success' } & Partial<DeviceResult>> {
    this.registration();
    if (!this.hasObject(5)) throw new JobFailure('no-firmware-object', `${this.endpoint} has no Firmware Update object (/5)`, false);
    const phase = this.record.phase;
    const resumed = this.firstAttempt && phase !== 'pending';
    this.firstAttempt = false;
    const watch = await this.openWatch([STATE, RESULT], resumed);
    if (!resumed || phase === 'checking' || phase === 'resetting') {
      await this.prepare(watch);
      await this.deliver(watch);
    } else if (phase === 'downloading') {
      await this.goOnDownloading(watch);
    }
    if (this.record.phase === 'downloading' || this.record.phase === 'downloaded') {
      if (this.record.phase === 'downloading') {
        await this.downloaded(watch);
        this.enter('downloaded');
      }
      this.release();
      // Resumed after a restart: Update may have been executed just before it.
      if (resumed && phase === 'downloaded') await this.guard(watch.refresh());
      if (this.state(watch) !== FirmwareState.Updating) {
        this.watchReregistration();
        await this.execute(UPDATE);
      }
      this.enter('updating');
    } else this.watchReregistration();
    const updateResult = await this.updated(watch);
    const version = await this.verify();
    return { status: 'success', updateResult, state: this.state(watch), ...(version !== undefined ? { version } : {}) };
  }

  /** The device's current version and what it can take; skips devices of another model or already current. */
  private async prepare(watch: ResourceWatch): Promise<void> {
    const { settings } = this.env;
    this.enter('checking');
    if (settings.model !== undefined) {
      const model = asText(await this.read(MODEL_NUMBER));
      if (model !== settings.model) throw new JobSkip('other-model', `${this.endpoint} is ${model === undefined ? 'a device without a model number' : `model ${model}`}, not ${settings.model}`);
    }
    const current = asText(await this.read(FIRMWARE_VERSION));
    this.record.previousVersion = current;
    if (settings.version !== undefined && current === settings.version) throw new JobSkip('current', `${this.endpoint} already runs firmware ${current}`);
    const info = await this.readInstance('/5/0', [3, 5, 8, 9]);
    this.record.method = asNumber(info.single.get(9)) ?? DeliveryMethod.Both;
    const protocols = [...(info.lists.get(8) ?? []), ...(info.single.has(8) ? [info.single.get(8)] : [])].map(asNumber).filter((value): value is number => value !== undefined);
    if (protocols.length > 0) this.protocols = protocols;
    // Decided before the device is touched: a device that cannot take the package is left as it is.
    this.planned = this.plan();
    const state = this.state(watch) ?? asNumber(info.single.get(3));
    if (state === FirmwareState.Updating) throw new JobFailure('busy', `${this.endpoint} is installing an update already (State 3 Updating)`, false, { state });
    if (state !== undefined && state !== FirmwareState.Idle) {
      // Left downloading or downloaded by an earlier update: back to Idle first.
      this.enter('resetting');
      await this.resetDevice();
      await this.waitForIdle(watch);
    }
  }

  /**
   * Waits for Idle after a reset. A device that stays Downloading (it ignores
   * the reset) is given the new package all the same, which starts its
   * download again; one that stays Downloaded or Updating is not touched.
   */
  private async waitForIdle(watch: ResourceWatch): Promise<void> {
    try {
      await this.waitFor(
        watch,
        () => (this.state(watch) === FirmwareState.Idle ? true : undefined),
        Date.now() + this.env.settings.requestTimeoutMs,
        () => new JobFailure('reset-failed', `${this.endpoint} did not return to Idle after its update was cancelled (State ${this.stateName(watch)})`, true, this.details(watch)),
      );
    } catch (error) {
      if (!(error instanceof JobFailure) || this.state(watch) !== FirmwareState.Downloading) throw error;
      this.env.progress({ phase: 'resetting', detail: `${this.endpoint} stayed Downloading after the reset: the package is delivered all the same`, ...this.details(watch) });
    }
  }

  /** How the package goes, as the device (/5/0/9, /5/0/8) and the settings allow; a failure before anything is sent when there is no way. */
  private plan(): Plan {
    const { settings, url, files } = this.env;
    const method = this.record.method ?? DeliveryMethod.Both;
    const canPush = method !== DeliveryMethod.PullOnly;
    const canPull = method !== DeliveryMethod.PushOnly;
    if (url !== undefined) {
      if (!canPull) throw new JobFailure('unsupported-delivery', `${this.endpoint} takes packages only by push (/5/0/9 = 1): it cannot be given a URI`, false);
      const scheme = url.slice(0, url.indexOf(':')).toLowerCase();
      if (!this.protocols.includes(PROTOCOL_OF_SCHEME[scheme])) throw new JobFailure('unsupported-protocol', `${this.endpoint} does not fetch over ${scheme} (it supports ${this.protocolNames()})`, false);
      return { delivery: 'pull', scheme, url };
    }
    if (settings.delivery === 'push' || (settings.delivery === 'auto' && canPush)) {
      if (!canPush) throw new JobFailure('unsupported-delivery', `${this.endpoint} fetches packages only by itself (/5/0/9 = 0): push is not possible`, false);
      return { delivery: 'push' };
    }
    if (!canPull) throw new JobFailure('unsupported-delivery', `${this.endpoint} takes packages only by push (/5/0/9 = 1): pull is not possible`, false);
    const scheme = PULL_SCHEMES[this.registration().transport].find((candidate) => this.protocols.includes(PROTOCOL_OF_SCHEME[candidate]) && files.uri('', candidate, settings.publicUris) !== undefined);
    if (scheme === undefined) throw new JobFailure('unsupported-protocol', `${this.endpoint} fetches over ${this.protocolNames()}, and the server offers none of them to it`, false);
    return { delivery: 'pull', scheme };
  }

  /** Push (Write /5/0/0 in Block1 blocks) or pull (Write /5/0/1 with the URI), as planned. */
  private async deliver(watch: ResourceWatch): Promise<void> {
    const { settings, pkg, files } = this.env;
    const plan = this.planned ?? this.plan();
    this.record.delivery = plan.delivery;
    let uri: string | undefined;
    if (plan.delivery === 'pull') {
      this.record.scheme = plan.scheme;
      uri = plan.url;
      if (uri === undefined) {
        const grant = files.grant(this.endpoint, pkg!);
        this.record.token = grant.token;
        this.attach(grant);
        uri = files.uri(grant.token, plan.scheme, settings.publicUris);
      }
    }
    // Only what the device reports about this delivery counts.
    watch.forget(RESULT);
    this.record.written = false;
    this.enter('downloading');
    const deadline = this.record.since + settings.downloadTimeoutMs;
    try {
      if (uri !== undefined) await this.write(PACKAGE_URI, uri);
      else {
        await this.write(PACKAGE, pkg!.data, deadline - Date.now(), (sent, total) => this.bytes(sent, total));
        this.record.written = true;
        this.env.persist();
      }
    } catch (error) {
      // The device may say why it refused (Not enough flash...).
      await this.guard(watch.refresh());
      const failure = this.failureOf(watch);
      throw failure ?? error;
    }
  }

  /** After a restart in the middle of a download: a pull goes on (the device keeps fetching), so does a push the device took whole; a push cut off starts again. */
  private async goOnDownloading(watch: ResourceWatch): Promise<void> {
    const state = this.state(watch);
    if (state === FirmwareState.Downloaded) return;
    // Update went out after the record was last saved (a kill -9 loses up to a save): it goes on as executed.
    if (state === FirmwareState.Updating) {
      this.record.phase = 'downloaded';
      return;
    }
    const grant = this.record.token !== undefined ? this.env.files.find(this.record.token) : undefined;
    if (state === FirmwareState.Downloading && (this.record.written || (this.record.delivery === 'pull' && (grant || this.env.url !== undefined)))) {
      if (grant) this.attach(grant);
      return;
    }
    this.release();
    await this.prepare(watch);
    await this.deliver(watch);
  }

  private async downloaded(watch: ResourceWatch): Promise<void> {
    const { settings } = this.env;
    const outcome = await this.waitFor<true | JobFailure>(
      watch,
      () => (this.state(watch) === FirmwareState.Downloaded ? true : this.failureOf(watch)),
      this.record.since + settings.downloadTimeoutMs,
      () => {
        const served = this.grant ? `, ${this.grant.served} of ${this.grant.pkg.data.length} bytes fetched` : '';
        return new JobFailure('timeout', `${this.endpoint} did not reach Downloaded within ${settings.downloadTimeoutMs / 1000} s (State ${this.stateName(watch)}${served})`, true, this.details(watch));
      },
    );
    if (outcome instanceof JobFailure) throw outcome;
    if (this.record.delivery === 'push' || this.grant) this.bytes(this.env.pkg?.data.length ?? 0, this.env.pkg?.data.length ?? 0);
  }

  /** Waits for Update Result 1 (or, from a device that rebooted into the new firmware, its new version). */
  private async updated(watch: ResourceWatch): Promise<number | undefined> {
    const { settings } = this.env;
    const outcome = await this.waitFor<number | JobFailure>(
      watch,
      () => {
        const result = asNumber(watch.value(RESULT));
        if (result === FirmwareResult.Success) return result;
        if (result === FirmwareResult.Deferred && !this.deferredTold) {
          this.deferredTold = true;
          this.env.progress({ phase: 'deferred', detail: `${this.endpoint} deferred the update (Update Result 11)`, ...this.details(watch) });
        }
        return this.failureOf(watch);
      },
      this.record.since + settings.updateTimeoutMs,
      () => new JobFailure('timeout', `${this.endpoint} reported no Update Result within ${settings.updateTimeoutMs / 1000} s of Update (State ${this.stateName(watch)}, Update Result ${watch.value(RESULT) ?? 'unknown'}${this.reregistered ? ', registered again' : ''})`, true, this.details(watch)),
    );
    if (outcome instanceof JobFailure) throw outcome;
    return outcome;
  }

  /** Compares the Firmware Version the device reports with the one expected; a device about to reboot into it gets until the deadline. */
  private async verify(): Promise<string | undefined> {
    const expected = this.env.settings.version;
    let version = asText(await this.read(FIRMWARE_VERSION).catch(() => undefined));
    if (expected === undefined || version === expected) return version;
    this.enter('verifying');
    const deadline = Date.now() + this.env.settings.updateTimeoutMs;
    while (version !== expected && Date.now() < deadline) {
      await this.pause(Math.min(this.env.settings.pollIntervalMs, Math.max(0, deadline - Date.now())));
      if (!this.reregistered) continue;
      version = asText(await this.read(FIRMWARE_VERSION).catch(() => undefined));
    }
    if (version !== expected) throw new JobFailure('version-mismatch', `${this.endpoint} reports firmware ${version ?? '(none)'} after the update, not ${expected}`, false);
    return version;
  }

  /** A device that reboots into its new firmware registers again: its state is read then. */
  private watchReregistration(): void {
    const stop = this.env.onRegistered(() => {
      this.reregistered = true;
      void this.watch?.refresh();
    });
    this.afterRun.push(stop);
  }

  /** Writing an empty Package URI (or, to a push-only device, a Package of one zero byte) sets the state machine back to Idle. */
  protected async resetDevice(): Promise<void> {
    this.release();
    if (this.record.method === DeliveryMethod.PushOnly) await this.write(PACKAGE, Buffer.from([0]));
    else await this.write(PACKAGE_URI, '');
  }



  private state(watch: ResourceWatch): number | undefined {
    return asNumber(watch.value(STATE));
  }

  private stateName(watch: ResourceWatch): string {
    const state = this.state(watch);
    return state === undefined ? 'unknown' : `${state} ${FIRMWARE_STATE_NAMES[state] ?? ''}`.trim();
  }

  private details(watch: ResourceWatch): { state?: number; updateResult?: number } {
    return { state: this.state(watch), updateResult: asNumber(watch.value(RESULT)) };
  }

  /** The failure an Update Result reports, by its meaning; undefined for 0, 1, 11. */
  private failureOf(watch: ResourceWatch): JobFailure | undefined {
    const result = asNumber(watch.value(RESULT));
    if (result === undefined || result === FirmwareResult.Initial || result === FirmwareResult.Success || result === FirmwareResult.Deferred) return undefined;
    const meaning = FIRMWARE_RESULTS[result] ?? unknownResult(result);
    return new JobFailure(meaning.code, `${meaning.text} (Update Result ${result})`, meaning.retryable, this.details(watch));
  }

  private protocolNames(): string {
    return this.protocols.map((value) => SCHEME_OF_PROTOCOL[value] ?? `protocol ${value}`).join(', ');
  }
}
