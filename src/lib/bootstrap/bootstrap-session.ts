import { ContentFormat, Method, OptionNumber, ResponseCode, codeClass, formatCode } from '../coap/codes';
import { requestBlockwise } from '../coap/block-transfer';
import type { MessageLayer } from '../coap/message-layer';
import type { CoapMessage } from '../coap/message';
import type { Peer } from '../coap/peer';
import { decodeContent, encodeContent, formatName, isSupportedFormat } from '../content/formats';
import { uintOption } from '../coap/options';
import { Link, parseLinkFormat } from '../lwm2m/link-format';
import type { ContentRecord } from '../content/values';
import type { ObjectModel } from '../model/object-model';
import { Lwm2mPath } from '../model/path';
import { describeErrorCode, toCoapRequest } from '../lwm2m/requests/coap-request';
import type { CoapRequestSpec } from '../lwm2m/requests/device-request';
import { BootstrapConfig, provisionedInstances } from './bootstrap-config';

/** What a session learnt about the device before provisioning it. */
export interface DeviceFindings {
  lwm2mVersion?: string;
  /** Object ids the device has, from Bootstrap-Discover. */
  objects?: number[];
  /** Its object instances ("/0/1"...) before the session deleted them. */
  instances?: string[];
  /** Short server ids of the Server instances it had, from Bootstrap-Read. */
  previousServers?: number[];
  /** Its own bootstrap-server account (a Security instance without ssid in Bootstrap-Discover), kept as it is. */
  bootstrapAccount?: string;
  /** The content format the Security and Server instances were written in. */
  format?: string;
  /** The instances written, in order. */
  written?: string[];
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
/** Answers to a write that say the device cannot take its format (some answer 4.00 for a value they cannot decode). */
const FORMAT_REFUSALS: number[] = [ResponseCode.NotAcceptable, ResponseCode.UnsupportedContentFormat, ResponseCode.BadRequest];

/** What Bootstrap-Discover told: the links, and the LwM2M version that 1.0 clients put before them (lwm2m="1.0",</0>,...). */
function parseBootstrapDiscover(text: string): { version?: string; links: Link[] } {
  const prefix = /^\s*lwm2m=("?)(\d+\.\d+)\1\s*(,|$)/.exec(text);
  const links = parseLinkFormat(prefix ? text.slice(prefix[0].length) : text);
  const version = prefix?.[2] ?? links.map((link) => link.attributes.lwm2m).find((value): value is string => typeof value === 'string');
  return { version, links };
}

/**
 * Provisions one device (LwM2M 1.1 Bootstrap interface): Bootstrap-Delete of
 * everything it may delete, Bootstrap-Write of the Security, Server and ACL
 * instances, then Bootstrap-Finish. The device's answer to each step decides
 * whether the next one is sent.
 */
export class BootstrapSession {
  private cancelled = false;
  /** The format instances are written in: TLV where the device must speak it, else its preferred one; TLV again after a refusal. */
  private format: number = ContentFormat.Tlv;
  /** Instance ids of the device's bootstrap accounts, which are never deleted or overwritten by another account. */
  private bootstrapIds: number[] = [];

  constructor(
    private readonly endpoint: MessageLayer,
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
    const findings = await this.discover();
    this.format = this.firstFormat(findings.lwm2mVersion);
    await this.deleteAccounts(findings);
    const written: string[] = (findings.written = []);
    // ACL instances only for a device that has the Access Control object (when it told us).
    const withAcl = !findings.objects || findings.objects.includes(2);
    // New Security instances take the ids the device's bootstrap account does not hold.
    for (const instance of provisionedInstances(this.config, this.bootstrapIds, withAcl)) written.push(await this.write(instance.records, findings));
    if (!withAcl && this.config.acl.length > 0) findings.notes.push('the device has no Access Control object (/2): ACL not written');
    findings.format = formatName(this.format);
    const finished = await this.send('Bootstrap-Finish', { method: Method.POST, path: Lwm2mPath.ROOT }, '/bs');
    if (finished.code !== ResponseCode.Changed) throw new BootstrapError(`Bootstrap-Finish: device answered ${describeErrorCode(formatCode(finished.code), finished.payload)}`);
    return findings;
  }

  /**
   * TLV for LwM2M 1.0 and 1.1 devices (mandatory there, and opaque keys go
   * as bytes, where SenML JSON's base64url trips some decoders), and for
   * devices that did not say their version; the preferred format (pct) of later ones.
   */
  private firstFormat(lwm2mVersion: string | undefined): number {
    const preferred = this.options.preferredFormat;
    const usable = preferred !== undefined && INSTANCE_FORMATS.includes(preferred) && isSupportedFormat(preferred);
    if (!usable || lwm2mVersion === undefined || lwm2mVersion === '1.0' || lwm2mVersion === '1.1') return ContentFormat.Tlv;
    return preferred;
  }

  /**
   * Bootstrap-Delete "/" removes every instance the device lets go of (its
   * bootstrap account and Device object stay). Some 1.0 devices refuse a
   * delete of the root: then the Security instances are deleted one by one,
   * all but the bootstrap account, and the Server and ACL objects whole.
   */
  private async deleteAccounts(findings: DeviceFindings): Promise<void> {
    const deleted = await this.send('Bootstrap-Delete /', { method: Method.DELETE, path: Lwm2mPath.ROOT });
    if (deleted.code === ResponseCode.Deleted) return;
    const securityInstances = findings.instances?.filter((path) => path.startsWith('/0/')).map((path) => Number(path.slice(3)));
    if (securityInstances) {
      for (const id of securityInstances) {
        if (!this.bootstrapIds.includes(id)) await this.send(`Bootstrap-Delete /0/${id}`, { method: Method.DELETE, path: Lwm2mPath.of(0, id) });
      }
    } else await this.send('Bootstrap-Delete /0', { method: Method.DELETE, path: Lwm2mPath.of(0) });
    for (const objectId of [1, 2]) await this.send(`Bootstrap-Delete /${objectId}`, { method: Method.DELETE, path: Lwm2mPath.of(objectId) });
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
      const { version, links } = parseBootstrapDiscover(discovered.payload.toString('utf8'));
      if (version !== undefined) findings.lwm2mVersion = version;
      findings.objects = [...new Set(links.map((link) => /^\/(\d+)/.exec(link.path)).filter((match) => match !== null).map((match) => Number(match![1])))];
      findings.instances = links.map((link) => link.path).filter((path) => /^\/\d+\/\d+$/.test(path));
      // The bootstrap-server account is the Security instance without a short server id (LwM2M 1.1 section 5.2.7.3).
      this.bootstrapIds = links.filter((link) => /^\/0\/\d+$/.test(link.path) && link.attributes.ssid === undefined).map((link) => Number(link.path.slice(3)));
      if (this.bootstrapIds.length > 0) findings.bootstrapAccount = `/0/${this.bootstrapIds[0]}`;
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

  /** Writes one instance; a device that refuses the format gets it again in TLV, and TLV from then on. Resolves with the path written. */
  private async write(records: ContentRecord[], findings: DeviceFindings): Promise<string> {
    const instance = records[0].path.parent();
    const target = Lwm2mPath.of(instance.objectId!, instance.instanceId!);
    const put = (format: number) =>
      this.send(`Bootstrap-Write ${target}`, { method: Method.PUT, path: target, contentFormat: format, payload: encodeContent(records, format, target, this.model) });
    let response = await put(this.format);
    if (FORMAT_REFUSALS.includes(response.code) && this.format !== ContentFormat.Tlv) {
      findings.notes.push(`Bootstrap-Write ${target} in ${formatName(this.format)}: device answered ${formatCode(response.code)}; written in TLV`);
      this.format = ContentFormat.Tlv;
      response = await put(this.format);
    }
    if (codeClass(response.code) !== 2) throw new BootstrapError(`Bootstrap-Write ${target}: device answered ${describeErrorCode(formatCode(response.code), response.payload)}`);
    return target.toString();
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
