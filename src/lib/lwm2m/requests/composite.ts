import { ContentFormat, Method, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { decodeContent, encodeContent } from '../../content/formats';
import { encodeSenmlPaths } from '../../content/senml';
import { ContentError, ContentRecord } from '../../content/values';
import { Lwm2mPath } from '../../model/path';
import type { ReadResult } from './read';
import { contentFormatOf } from './response-content';
import { requireWritable } from './write';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

const COMPOSITE_FORMATS: number[] = [ContentFormat.SenmlCbor, ContentFormat.SenmlJson];

/** The SenML format for composite operations: the one asked for, else the one the device advertised, else SenML CBOR. */
function compositeFormat(requested: number | undefined, advertised: readonly number[]): number {
  if (requested !== undefined) {
    if (!COMPOSITE_FORMATS.includes(requested)) throw new ContentError('composite operations use SenML JSON (110) or SenML CBOR (112)');
    return requested;
  }
  return COMPOSITE_FORMATS.find((format) => advertised.includes(format)) ?? ContentFormat.SenmlCbor;
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
    const format = compositeFormat(this.format, context.registration.contentFormats);
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
    const format = compositeFormat(this.format, context.registration.contentFormats);
    return { method: Method.IPATCH, path: Lwm2mPath.ROOT, contentFormat: format, payload: encodeContent(this.records, format, Lwm2mPath.ROOT, context.model) };
  }

  fromCoap(): Record<string, never> {
    return {};
  }
}
