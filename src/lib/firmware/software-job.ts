import { DeviceRequestError } from '../lwm2m/device-client';
import { CreateRequest } from '../lwm2m/requests/create';
import { Lwm2mPath } from '../model/path';
import { PROTOCOL_OF_SCHEME, SOFTWARE_RESULTS, SOFTWARE_STATE_NAMES, SoftwareResult, SoftwareState, unknownResult } from './codes';
import { DeviceResult, Job, JobFailure, JobSkip, asNumber, asText } from './job';
import type { ResourceWatch } from './resource-watch';

/** A pulled package comes over the device's own channel. */
const SCHEME_OF_TRANSPORT = { udp: 'coap', dtls: 'coaps', tcp: 'coap+tcp', tls: 'coaps+tcp' } as const;

const VERSION = 1;
const PACKAGE = 2;
const PACKAGE_URI = 3;
const INSTALL = 4;
const UNINSTALL = 6;
const STATE = 7;
const RESULT = 9;
const ACTIVATE = 10;
const DEACTIVATE = 11;
const ACTIVATION_STATE = 12;

/**
 * The Software Management state machines of one instance of Object 9
 * (LwM2M 1.0-1.2): installation (INITIAL → DOWNLOAD STARTED → DOWNLOADED →
 * DELIVERED → (Install) INSTALLED), activation (Activate, Deactivate: the
 * Activation State) and Uninstall, followed by observation of Update State,
 * Update Result and Activation State (reads where the device refuses).
 */
export class SoftwareJob extends Job {
  private firstAttempt = true;

  private path(resource?: number): string {
    return resource === undefined ? `/9/${this.record.instanceId}` : `/9/${this.record.instanceId}/${resource}`;
  }

  protected async attempt(): Promise<{ status: 'success' } & Partial<DeviceResult>> {
    this.registration();
    if (!this.hasObject(9)) throw new JobFailure('no-software-object', `${this.endpoint} has no Software Management object (/9)`, false);
    const { settings } = this.env;
    const phase = this.record.phase;
    const resumed = this.firstAttempt && phase !== 'pending';
    this.firstAttempt = false;
    if (this.record.instanceId === undefined) this.record.instanceId = await this.chooseInstance();
    const watch = await this.openWatch([this.path(STATE), this.path(RESULT), this.path(ACTIVATION_STATE)], resumed);
    switch (settings.action) {
      case 'activate':
      case 'deactivate':
        return this.activation(watch, settings.action === 'activate');
      case 'uninstall':
        return this.uninstall(watch);
      default:
        return this.install(watch, resumed ? phase : 'pending');
    }
  }

  /** The instance: the one given; otherwise the first in INITIAL state; otherwise a new one (Create /9, the device picks its id). */
  private async chooseInstance(): Promise<number> {
    const { settings, server } = this.env;
    if (settings.instanceId !== undefined) return settings.instanceId;
    const instances = this.registration().objects.find((object) => object.id === 9)?.instances ?? [];
    if (settings.action !== 'install') {
      if (instances.length === 1) return instances[0];
      throw new JobFailure('no-instance', `${this.endpoint} has ${instances.length} Software Management instances: say which one (msg.instanceId)`, false);
    }
    for (const instance of instances) {
      if (asNumber(await this.read(`/9/${instance}/${STATE}`)) === SoftwareState.Initial) return instance;
    }
    const created = await this.guard(server.send(this.endpoint, new CreateRequest(Lwm2mPath.of(9), []), { timeoutMs: settings.requestTimeoutMs }));
    return created.instanceId;
  }

  private async install(watch: ResourceWatch, phase: string): Promise<{ status: 'success' } & Partial<DeviceResult>> {
    const { settings } = this.env;
    if (phase === 'pending' || phase === 'checking' || phase === 'resetting') {
      await this.prepare(watch);
      await this.deliver(watch);
    } else if (phase === 'downloading') {
      // After a restart in the middle of a download: a pull goes on (the device keeps fetching), a push starts again.
      const state = this.state(watch);
      const grant = this.record.token !== undefined ? this.env.files.find(this.record.token) : undefined;
      const fetching = (state === SoftwareState.DownloadStarted || state === SoftwareState.Downloaded) && (this.record.written || (this.record.delivery === 'pull' && (grant || this.env.url !== undefined)));
      if (grant && fetching) this.attach(grant);
      else if (state !== SoftwareState.Delivered && !fetching) {
        this.release();
        await this.prepare(watch);
        await this.deliver(watch);
      }
    }
    if (this.record.phase === 'downloading') {
      const delivered = await this.waitFor<true | JobFailure>(
        watch,
        () => (this.state(watch) === SoftwareState.Delivered ? true : this.failureOf(watch)),
        this.record.since + settings.downloadTimeoutMs,
        () => new JobFailure('timeout', `${this.endpoint} did not reach DELIVERED within ${settings.downloadTimeoutMs / 1000} s (Update State ${this.stateName(watch)})`, true, this.details(watch)),
      );
      if (delivered instanceof JobFailure) throw delivered;
      if (this.env.pkg) this.bytes(this.env.pkg.data.length, this.env.pkg.data.length);
      this.enter('downloaded');
    }
    this.release();
    if (this.record.phase === 'downloaded') {
      if (this.state(watch) !== SoftwareState.Installed) {
        watch.forget(this.path(RESULT));
        await this.execute(this.path(INSTALL));
      }
      this.enter('updating');
    }
    const installed = await this.waitFor<true | JobFailure>(
      watch,
      () => (this.state(watch) === SoftwareState.Installed ? true : this.failureOf(watch)),
      this.record.since + settings.updateTimeoutMs,
      () => new JobFailure('timeout', `${this.endpoint} did not reach INSTALLED within ${settings.updateTimeoutMs / 1000} s of Install (Update State ${this.stateName(watch)})`, true, this.details(watch)),
    );
    if (installed instanceof JobFailure) throw installed;
    const version = asText(await this.read(this.path(VERSION)));
    if (settings.version !== undefined && version !== settings.version) {
      throw new JobFailure('version-mismatch', `${this.endpoint} reports ${this.path(VERSION)} ${version ?? '(none)'} after the installation, not ${settings.version}`, false);
    }
    if (settings.activate) await this.activation(watch, true);
    return { status: 'success', ...this.details(watch), ...(version !== undefined ? { version } : {}) };
  }

  /** Skips an instance that has the version already; takes an installed one back to INITIAL for the update (Uninstall with 1, "ForUpdate"). */
  private async prepare(watch: ResourceWatch): Promise<void> {
    const { settings } = this.env;
    this.enter('checking');
    const current = asText(await this.read(this.path(VERSION)));
    this.record.previousVersion = current;
    const state = this.state(watch);
    if (state === SoftwareState.Installed && settings.version !== undefined && current === settings.version) throw new JobSkip('current', `${this.endpoint} already has ${current} installed in ${this.path()}`);
    if (state !== undefined && state !== SoftwareState.Initial) {
      this.enter('resetting');
      await this.execute(this.path(UNINSTALL), state === SoftwareState.Installed ? '1' : '');
      await this.waitFor(
        watch,
        () => (this.state(watch) === SoftwareState.Initial ? true : undefined),
        Date.now() + settings.requestTimeoutMs,
        () => new JobFailure('reset-failed', `${this.endpoint} did not return ${this.path()} to INITIAL (Update State ${this.stateName(watch)})`, true, this.details(watch)),
      );
    }
  }

  /** Push (Write /9/x/2, Block1) or pull (Write /9/x/3 with a URI); an automatic push falls back to pull when the device has no Package resource. */
  private async deliver(watch: ResourceWatch): Promise<void> {
    const { settings, pkg, url, files } = this.env;
    watch.forget(this.path(RESULT));
    let uri = url;
    let push = uri === undefined && settings.delivery !== 'pull';
    this.record.written = false;
    this.enter('downloading');
    if (push) {
      this.record.delivery = 'push';
      try {
        await this.write(this.path(PACKAGE), pkg!.data, this.record.since + settings.downloadTimeoutMs - Date.now(), (sent, total) => this.bytes(sent, total));
        this.record.written = true;
        this.env.persist();
        return;
      } catch (error) {
        const missing = error instanceof DeviceRequestError && (error.code === '4.04' || error.code === '4.05');
        if (!missing || settings.delivery === 'push') throw (await this.refreshedFailure(watch)) ?? error;
        push = false;
      }
    }
    if (uri === undefined) {
      const grant = files.grant(this.endpoint, pkg!);
      const scheme = SCHEME_OF_TRANSPORT[this.registration().transport];
      uri = files.uri(grant.token, scheme, settings.publicUris);
      if (uri === undefined) {
        files.revoke(grant.token);
        throw new JobFailure('unsupported-protocol', `the server offers no ${scheme} URI to ${this.endpoint}`, false);
      }
      this.record.token = grant.token;
      this.record.scheme = scheme;
      this.attach(grant);
    } else this.record.scheme = uri.slice(0, uri.indexOf(':')).toLowerCase();
    if (PROTOCOL_OF_SCHEME[this.record.scheme] === undefined) throw new JobFailure('unsupported-protocol', `no package URI of scheme ${this.record.scheme}`, false);
    this.record.delivery = 'pull';
    this.env.persist();
    try {
      await this.write(this.path(PACKAGE_URI), uri);
    } catch (error) {
      throw (await this.refreshedFailure(watch)) ?? error;
    }
  }

  private async activation(watch: ResourceWatch, activate: boolean): Promise<{ status: 'success' } & Partial<DeviceResult>> {
    const { settings } = this.env;
    this.enter(activate ? 'activating' : 'deactivating');
    if (this.state(watch) !== SoftwareState.Installed) {
      throw new JobFailure('not-installed', `${this.endpoint}: ${this.path()} is not installed (Update State ${this.stateName(watch)}), so it cannot be ${activate ? 'activated' : 'deactivated'}`, false, this.details(watch));
    }
    await this.execute(this.path(activate ? ACTIVATE : DEACTIVATE));
    await this.waitFor(
      watch,
      () => (this.active(watch) === activate ? true : undefined),
      Date.now() + settings.updateTimeoutMs,
      () => new JobFailure('timeout', `${this.endpoint} did not report Activation State ${activate} within ${settings.updateTimeoutMs / 1000} s`, true, this.details(watch)),
    );
    return { status: 'success', ...this.details(watch) };
  }

  private async uninstall(watch: ResourceWatch): Promise<{ status: 'success' } & Partial<DeviceResult>> {
    const { settings } = this.env;
    this.enter('uninstalling');
    watch.forget(this.path(RESULT));
    await this.execute(this.path(UNINSTALL));
    const outcome = await this.waitFor<true | JobFailure>(
      watch,
      () => (this.state(watch) === SoftwareState.Initial ? true : this.failureOf(watch)),
      Date.now() + settings.updateTimeoutMs,
      () => new JobFailure('timeout', `${this.endpoint} did not return ${this.path()} to INITIAL within ${settings.updateTimeoutMs / 1000} s of Uninstall (Update State ${this.stateName(watch)})`, true, this.details(watch)),
    );
    if (outcome instanceof JobFailure) throw outcome;
    return { status: 'success', ...this.details(watch) };
  }

  /** Uninstall takes a package that is downloading or delivered back to INITIAL. */
  protected async resetDevice(): Promise<void> {
    this.release();
    if (this.record.instanceId === undefined || this.env.settings.action !== 'install') return;
    const state = this.state(this.watch) ?? asNumber(await this.read(this.path(STATE)));
    if (state !== undefined && state !== SoftwareState.Initial && state !== SoftwareState.Installed) await this.execute(this.path(UNINSTALL));
  }



  private async refreshedFailure(watch: ResourceWatch): Promise<JobFailure | undefined> {
    await this.guard(watch.refresh());
    return this.failureOf(watch);
  }

  private state(watch: ResourceWatch | undefined): number | undefined {
    return asNumber(watch?.value(this.path(STATE)));
  }

  private active(watch: ResourceWatch): boolean | undefined {
    const value = watch.value(this.path(ACTIVATION_STATE));
    return value === undefined ? undefined : asNumber(value) === 1;
  }

  private stateName(watch: ResourceWatch): string {
    const state = this.state(watch);
    return state === undefined ? 'unknown' : `${state} ${SOFTWARE_STATE_NAMES[state] ?? ''}`.trim();
  }

  private details(watch: ResourceWatch): { state?: number; updateResult?: number } {
    return { state: this.state(watch), updateResult: asNumber(watch.value(this.path(RESULT))) };
  }

  /** The failure an Update Result reports, by its meaning; undefined for 0-3. */
  private failureOf(watch: ResourceWatch): JobFailure | undefined {
    const result = asNumber(watch.value(this.path(RESULT)));
    if (result === undefined || result <= SoftwareResult.DownloadedVerified) return undefined;
    const meaning = SOFTWARE_RESULTS[result] ?? unknownResult(result);
    return new JobFailure(meaning.code, `${meaning.text} (Update Result ${result})`, meaning.retryable, this.details(watch));
  }
}
