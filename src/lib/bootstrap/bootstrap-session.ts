import { ContentFormat, Method, OptionNumber, ResponseCode, codeClass, formatCode } from '../coap/codes';
import { requestBlockwise } from '../coap/block-transfer';
import type { CoapEndpoint } from '../coap/endpoint';
import type { CoapMessage } from '../coap/message';
import type { Peer } from '../coap/peer';
import { decodeContent, encodeContent, isSupportedFormat } from '../content/formats';
import { uintOption } from '../coap/options';
import { parseLinkFormat } from '../lwm2m/link-format';
import type { ContentRecord } from '../content/values';
import type { ObjectModel } from '../model/object-model';
import { Lwm2mPath } from '../model/path';
import { describeErrorCode, toCoapRequest } from '../lwm2m/requests/coap-request';
import type { CoapRequestSpec } from '../lwm2m/requests/device-request';
import { BootstrapConfig, aclRecords, securityRecords, serverRecords } from './bootstrap-config';

/** What a session learnt about the device before provisioning it. */
export interface DeviceFindings {
  lwm2mVersion?: string;
  /** Object ids the device has, from Bootstrap-Discover. */
  objects?: number[];
  /** Its object instances ("/0/1"...) before the session deleted them. */
  instances?: string[];
  /** Short server ids of the Server instances it had, from Bootstrap-Read. */
  previousServers?: number[];
  /** Steps the device declined or that were skipped, for the logs. */
  notes: string[];
}

/** A step of a bootstrap session failed: the reason, for the flow and the logs. */
export class BootstrapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BootstrapError';
  }
}

export interface SessionOptions {
  timeoutMs: number;
  /** Preferred content format the device asked for (pct), if the server can write it. */
  preferredFormat?: number;
}

/** Formats that can carry a whole Security or Server instance. */
const INSTANCE_FORMATS: number[] = [ContentFormat.Tlv, ContentFormat.SenmlCbor, ContentFormat.SenmlJson, ContentFormat.Lwm2mCbor, ContentFormat.Lwm2mJson];

/**
 * Provisions one device (LwM2M 1.1 Bootstrap interface): Bootstrap-Delete of
 * everything it may delete, Bootstrap-Write of the Security, Server and ACL
 * instances, then Bootstrap-Finish. The device's answer to each step decides
 * whether the next one is sent.
 */
export class BootstrapSession {
  private cancelled = false;

  constructor(
    private readonly endpoint: CoapEndpoint,
    private readonly peer: Peer,
    private readonly name: string,
    private readonly config: BootstrapConfig,
    private readonly model: ObjectModel,
    private readonly options: SessionOptions,
  ) {}

  cancel(): void {
    this.cancelled = true;
  }

  /** Runs the session; resolves with what Bootstrap-Discover and Bootstrap-Read learnt of the device. */
  async run(): Promise<DeviceFindings> {
    const format = this.options.preferredFormat !== undefined && INSTANCE_FORMATS.includes(this.options.preferredFormat) && isSupportedFormat(this.options.preferredFormat) ? this.options.preferredFormat : ContentFormat.Tlv;
    const findings = await this.discover();
    // Bootstrap-Delete "/" removes every instance the device lets go of (its bootstrap account and Device object stay).
    const deleted = await this.send('Bootstrap-Delete /', { method: Method.DELETE, path: Lwm2mPath.ROOT });
    if (deleted.code !== ResponseCode.Deleted) {
      // Some 1.0 devices refuse a delete of the root; deleting objects one by one is the fallback.
      for (const objectId of [0, 1, 2]) await this.send(`Bootstrap-Delete /${objectId}`, { method: Method.DELETE, path: Lwm2mPath.of(objectId) });
    }
    let securityId = 0;
    if (this.config.bootstrapServer) await this.write(securityRecords(securityId++, { ...this.config.bootstrapServer, shortServerId: 0, lifetime: 0, binding: '', notificationStoring: false }, true), format);
    for (const [index, account] of this.config.servers.entries()) {
      await this.write(securityRecords(securityId++, account, false), format);
      await this.write(serverRecords(index, account), format);
    }
    // ACL instances only for a device that has the Access Control object (when it told us).
    if (!findings.objects || findings.objects.includes(2)) {
      for (const [index, entry] of this.config.acl.entries()) await this.write(aclRecords(index, entry), format);
    } else if (this.config.acl.length > 0) findings.notes.push('the device has no Access Control object (/2): ACL not written');
    const finished = await this.send('Bootstrap-Finish', { method: Method.POST, path: Lwm2mPath.ROOT }, '/bs');
    if (finished.code !== ResponseCode.Changed) throw new BootstrapError(`Bootstrap-Finish: device answered ${describeErrorCode(formatCode(finished.code), finished.payload)}`);
    return findings;
  }

  /**
   * Bootstrap-Discover of the root (LwM2M 1.1) for the objects and instances
   * the device has, and Bootstrap-Read of its Server objects for the servers it
   * knew. Both are informative: a 1.0 device that refuses them is provisioned all the same.
   */
  private async discover(): Promise<DeviceFindings> {
    const findings: DeviceFindings = { notes: [] };
    const discovered = await this.send('Bootstrap-Discover /', { method: Method.GET, path: Lwm2mPath.ROOT, accept: ContentFormat.LinkFormat });
    if (discovered.code !== ResponseCode.Content) {
      findings.notes.push(`Bootstrap-Discover: device answered ${formatCode(discovered.code)}`);
      return findings;
    }
    try {
      const links = parseLinkFormat(discovered.payload.toString('utf8'));
      findings.lwm2mVersion = links.map((link) => link.attributes.lwm2m).find((version): version is string => typeof version === 'string');
      findings.objects = [...new Set(links.map((link) => /^\/(\d+)/.exec(link.path)).filter((match) => match !== null).map((match) => Number(match![1])))];
      findings.instances = links.map((link) => link.path).filter((path) => /^\/\d+\/\d+$/.test(path));
    } catch (error) {
      findings.notes.push(`Bootstrap-Discover answer is not link format: ${(error as Error).message}`);
      return findings;
    }
    if (findings.instances?.some((path) => path.startsWith('/1/'))) {
      const read = await this.send('Bootstrap-Read /1', { method: Method.GET, path: Lwm2mPath.of(1) });
      if (read.code === ResponseCode.Content) {
        try {
          const records = decodeContent(read.payload, uintOption(read.options, OptionNumber.ContentFormat), Lwm2mPath.of(1), this.model);
          findings.previousServers = records.filter((record) => record.path.resourceId === 0).map((record) => record.value as number);
        } catch (error) {
          findings.notes.push(`Bootstrap-Read /1 did not decode: ${(error as Error).message}`);
        }
      } else findings.notes.push(`Bootstrap-Read /1: device answered ${formatCode(read.code)}`);
    }
    return findings;
  }

  private async write(records: ContentRecord[], format: number): Promise<void> {
    const instance = records[0].path.parent();
    const target = Lwm2mPath.of(instance.objectId!, instance.instanceId!);
    const response = await this.send(`Bootstrap-Write ${target}`, {
      method: Method.PUT,
      path: target,
      contentFormat: format,
      payload: encodeContent(records, format, target, this.model),
    });
    if (codeClass(response.code) !== 2) throw new BootstrapError(`Bootstrap-Write ${target}: device answered ${describeErrorCode(formatCode(response.code), response.payload)}`);
  }

  /** One request of the session; rootPath "/bs" addresses Bootstrap-Finish. */
  private async send(step: string, spec: CoapRequestSpec, rootPath = '/'): Promise<CoapMessage> {
    if (this.cancelled) throw new BootstrapError(`${step}: a new bootstrap request from ${this.name} replaced this session`);
    try {
      return await requestBlockwise(this.endpoint, this.peer, toCoapRequest(spec, rootPath), { timeoutMs: this.options.timeoutMs });
    } catch (error) {
      throw new BootstrapError(`${step}: ${(error as Error).message}`);
    }
  }
}
