import { ContentFormat, Method, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { decodeContent, encodeContent } from '../../content/formats';
import { encodeSenmlPaths } from '../../content/senml';
import { ContentError, ContentRecord } from '../../content/values';
import { Lwm2mPath } from '../../model/path';
import type { Registration } from '../registration';
import type { ReadResult } from './read';
import { contentFormatOf } from './response-content';
import { requireWritable } from './write';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

const COMPOSITE_FORMATS: number[] = [ContentFormat.SenmlCbor, ContentFormat.SenmlJson];

/** The format of a composite operation, and why when it is a guess. */
export interface CompositeFormat {
  format: number;
  /** Set when the device announced no SenML format in ct: what was assumed, for a warning. */
  fallback?: string;
}

/**
 * The SenML format of a composite operation (its paths or values, and its
 * answer): the one asked for; else one the device announced in ct, SenML
 * CBOR when it announced both; else SenML JSON, the SenML format LwM2M 1.1
 * clients implement most (Wakaama's example client is built with SenML JSON
 * and without SenML CBOR, and announces only ct=110), with the reason.
 */
export function compositeFormat(requested: number | undefined, registration: Pick<Registration, 'endpoint' | 'contentFormats'>): CompositeFormat {
  if (requested !== undefined) {
    if (!COMPOSITE_FORMATS.includes(requested)) throw new ContentError('composite operations use SenML JSON (110) or SenML CBOR (112)');
    return { format: requested };
  }
  const announced = COMPOSITE_FORMATS.find((format) => registration.contentFormats.includes(format));
  if (announced !== undefined) return { format: announced };
  const what = registration.contentFormats.length > 0 ? `announced ct="${registration.contentFormats.join(' ')}", no SenML format` : 'announced no content formats (ct)';
  return { format: ContentFormat.SenmlJson, fallback: `${registration.endpoint} ${what}: composite operations ask it in SenML JSON (msg.contentFormat chooses another)` };
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
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    const { format } = compositeFormat(this.format, context.registration);
    return { method: Method.FETCH, path: Lwm2mPath.ROOT, contentFormat: format, accept: format, payload: encodeSenmlPaths(this.paths, format) };
  }

  fromCoap(response: CoapMessage, context: RequestContext): ReadResult {
    const records = decodeContent(response.payload, contentFormatOf(response), Lwm2mPath.ROOT, context.model);
    const stray = records.find((record) => !this.paths.some((path) => record.path.startsWith(path)));
    if (stray) throw new ContentError(`Read-Composite answer holds ${stray.path}, which was not asked for`);
    return { records };
  }
}

/** Write-Composite (iPATCH on the root with SenML records), LwM2M 1.1. */
export class WriteCompositeRequest implements DeviceRequest<Record<string, never>> {
  readonly operation = 'write-composite';
  readonly successCode = ResponseCode.Changed;
  readonly path = Lwm2mPath.ROOT;

  constructor(
    readonly records: ContentRecord[],
    readonly format?: number,
  ) {
    if (records.length === 0) throw new ContentError('Write-Composite needs at least one value');
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    requireWritable(this.records, context.model);
    const { format } = compositeFormat(this.format, context.registration);
    return { method: Method.IPATCH, path: Lwm2mPath.ROOT, contentFormat: format, payload: encodeContent(this.records, format, Lwm2mPath.ROOT, context.model) };
  }

  fromCoap(): Record<string, never> {
    return {};
  }
}
