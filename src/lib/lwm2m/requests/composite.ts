import { ContentFormat, Method, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { decodeContent, encodeContent, formatName } from '../../content/formats';
import { encodeSenmlPatch, encodeSenmlPaths } from '../../content/senml';
import { ContentError, ContentRecord } from '../../content/values';
import { Lwm2mPath } from '../../model/path';
import type { Registration } from '../registration';
import type { ReadResult } from './read';
import { contentFormatOf } from './response-content';
import { requireWritable } from './write';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

const { SenmlJson, SenmlCbor, SenmlEtchJson, SenmlEtchCbor, Lwm2mCbor } = ContentFormat;

/** What a composite request is carried as: FETCH (Read-/Observe-Composite: paths) or iPATCH (Write-Composite: values). */
export type CompositeMethod = 'fetch' | 'ipatch';

/** Formats of a FETCH body (the paths), best first: SenML-ETCH Fetch Packs (RFC 8790, LwM2M 1.2), then SenML packs (LwM2M 1.1). */
const FETCH_BODY: number[] = [SenmlEtchCbor, SenmlCbor, SenmlEtchJson, SenmlJson];
/** Formats of a FETCH answer (the values), best first. */
const FETCH_ANSWER: number[] = [Lwm2mCbor, SenmlCbor, SenmlJson];
/** Formats of an iPATCH body (the values), best first: CBOR before JSON, a Patch Pack before a plain pack. */
const IPATCH_BODY: number[] = [Lwm2mCbor, SenmlEtchCbor, SenmlCbor, SenmlEtchJson, SenmlJson];
/** The plain SenML of a SenML-ETCH format: what the answer to a FETCH with that body comes in. */
const PLAIN_SENML: Record<number, number> = { [SenmlEtchJson]: SenmlJson, [SenmlEtchCbor]: SenmlCbor };

/** The formats of a composite operation, and why when they are a guess. */
export interface CompositeFormats {
  /** Content-Format of the request body. */
  body: number;
  /** Accept of a FETCH: the format of the values asked for. */
  accept?: number;
  /** Set when the device announced none of the formats in ct: what was assumed, for a warning. */
  fallback?: string;
}

/**
 * The one rule for the formats of a composite operation. For each part the
 * best format the device announced in ct; for a FETCH body SenML-ETCH or
 * SenML (CBOR before JSON), for its answer LwM2M CBOR or SenML, for an iPATCH
 * body LwM2M CBOR, SenML-ETCH or SenML. A device that announced none of them
 * (or no ct at all) is asked in SenML JSON, the SenML format LwM2M 1.1 clients
 * implement most (Wakaama's example client announces only ct=110), with the
 * reason. A format asked for (msg.contentFormat) wins for the part it can
 * carry: LwM2M CBOR is the answer of a FETCH (its paths go in SenML), a
 * SenML-ETCH format the body of a FETCH (answered in the plain SenML of the
 * same encoding), SenML both.
 */
export function compositeFormats(method: CompositeMethod, requested: number | undefined, registration: Pick<Registration, 'endpoint' | 'contentFormats'>): CompositeFormats {
  if (requested !== undefined) requireCompositeFormat(method, requested);
  const announced = (preference: number[]) => preference.find((format) => registration.contentFormats.includes(format));
  const what = registration.contentFormats.length > 0 ? `announced ct="${registration.contentFormats.join(' ')}", no SenML format` : 'announced no content formats (ct)';
  const fallback = `${registration.endpoint} ${what}: composite operations ask it in SenML JSON (msg.contentFormat chooses another)`;
  if (method === 'ipatch') {
    if (requested !== undefined) return { body: requested };
    const body = announced(IPATCH_BODY);
    return body === undefined ? { body: SenmlJson, fallback } : { body };
  }
  if (requested !== undefined && requested !== Lwm2mCbor) return { body: requested, accept: PLAIN_SENML[requested] ?? requested };
  const body = announced(FETCH_BODY);
  const accept = requested ?? announced(FETCH_ANSWER);
  if (body === undefined) return { body: SenmlJson, accept: accept ?? SenmlJson, fallback };
  return { body, accept: accept ?? PLAIN_SENML[body] ?? body };
}

/** Refuses a format a composite operation cannot be asked in, naming those it can. */
export function requireCompositeFormat(method: CompositeMethod, format: number): void {
  const allowed = method === 'fetch' ? [...FETCH_BODY, Lwm2mCbor] : IPATCH_BODY;
  if (allowed.includes(format)) return;
  throw new ContentError(`${method === 'fetch' ? 'Read-Composite and Observe-Composite' : 'Write-Composite'} use ${allowed.map((f) => `${formatName(f)} (${f})`).join(', ')}, not ${formatName(format)}`);
}

/** Read-Composite (FETCH on the root with the paths as SenML names), LwM2M 1.1. */
export class ReadCompositeRequest implements DeviceRequest<ReadResult> {
  readonly operation = 'read-composite';
  readonly successCode = ResponseCode.Content;
  readonly path = Lwm2mPath.ROOT;

  constructor(
    readonly paths: Lwm2mPath[],
    readonly format?: number,
  ) {
    if (paths.length === 0) throw new ContentError('Read-Composite needs at least one path');
    if (paths.some((path) => path.isRoot())) throw new ContentError('Read-Composite paths name objects, instances or resources, not the root');
    if (format !== undefined) requireCompositeFormat('fetch', format);
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    const { body, accept } = compositeFormats('fetch', this.format, context.registration);
    return { method: Method.FETCH, path: Lwm2mPath.ROOT, contentFormat: body, accept, payload: encodeSenmlPaths(this.paths, body) };
  }

  fromCoap(response: CoapMessage, context: RequestContext): ReadResult {
    const records = decodeContent(response.payload, contentFormatOf(response), Lwm2mPath.ROOT, context.model);
    const stray = records.find((record) => !this.paths.some((path) => record.path.startsWith(path)));
    if (stray) throw new ContentError(`Read-Composite answer holds ${stray.path}, which was not asked for`);
    return { records };
  }
}

/**
 * Write-Composite (iPATCH on the root), LwM2M 1.1: the values in LwM2M CBOR,
 * SenML-ETCH or SenML; paths to remove (resource instances, LwM2M 1.2) as
 * null values of a SenML-ETCH Patch Pack.
 */
export class WriteCompositeRequest implements DeviceRequest<Record<string, never>> {
  readonly operation = 'write-composite';
  readonly successCode = ResponseCode.Changed;
  readonly path = Lwm2mPath.ROOT;

  constructor(
    readonly records: ContentRecord[],
    readonly format?: number,
    readonly removals: Lwm2mPath[] = [],
  ) {
    if (records.length + removals.length === 0) throw new ContentError('Write-Composite needs at least one value');
    if (format !== undefined) requireCompositeFormat('ipatch', format);
    const whole = removals.find((path) => !path.isResourceInstance());
    if (whole) throw new ContentError(`Write-Composite removes resource instances (such as /3/0/7/1), not ${whole}`);
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    requireWritable(this.records, context.model);
    const { registration } = context;
    // Only a Patch Pack can say "remove": SenML-ETCH when there is something to remove.
    const patch = this.removals.length > 0 ? [SenmlEtchCbor, SenmlEtchJson].find((format) => registration.contentFormats.includes(format)) : undefined;
    const { body } = compositeFormats('ipatch', this.format ?? patch, registration);
    if (this.removals.length > 0 && body !== SenmlEtchCbor && body !== SenmlEtchJson) {
      const why = this.format !== undefined ? `not ${formatName(this.format)}` : `which ${registration.endpoint} did not announce (ct="${registration.contentFormats.join(' ')}")`;
      throw new ContentError(`removing ${this.removals.join(', ')} needs SenML-ETCH (320 or 322), ${why}`);
    }
    const payload = body === Lwm2mCbor ? encodeContent(this.records, body, Lwm2mPath.ROOT, context.model) : encodeSenmlPatch(this.records, this.removals, body);
    return { method: Method.IPATCH, path: Lwm2mPath.ROOT, contentFormat: body, payload };
  }

  fromCoap(): Record<string, never> {
    return {};
  }
}
