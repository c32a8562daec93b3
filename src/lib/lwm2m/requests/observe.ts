import { ContentFormat, Method, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { chooseMultiValueFormat, decodeContent } from '../../content/formats';
import { encodeSenmlPaths } from '../../content/senml';
import { ContentError } from '../../content/values';
import { Lwm2mPath } from '../../model/path';
import type { ReadResult } from './read';
import { contentFormatOf } from './response-content';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

/** Observe (GET with Observe: 0) of an object, instance, resource or resource instance. */
export class ObserveRequest implements DeviceRequest<ReadResult> {
  readonly operation = 'observe';
  readonly successCode = ResponseCode.Content;

  constructor(
    readonly path: Lwm2mPath,
    readonly format?: number,
  ) {
    if (path.isRoot()) throw new ContentError('observe an object, instance or resource, not the root');
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    const { registration } = context;
    const accept = this.format ?? (this.path.length < 3 && registration.contentFormats.length > 0 ? chooseMultiValueFormat(registration.contentFormats, registration.lwm2mVersion) : undefined);
    return { method: Method.GET, path: this.path, accept, observe: 0 };
  }

  fromCoap(response: CoapMessage, context: RequestContext): ReadResult {
    return { records: decodeContent(response.payload, contentFormatOf(response), this.path, context.model) };
  }
}

/** Observe-Composite (FETCH with Observe: 0 and the paths as SenML names), LwM2M 1.1. */
export class ObserveCompositeRequest implements DeviceRequest<ReadResult> {
  readonly operation = 'observe-composite';
  readonly successCode = ResponseCode.Content;
  readonly path = Lwm2mPath.ROOT;

  constructor(
    readonly paths: Lwm2mPath[],
    readonly format: number = ContentFormat.SenmlCbor,
  ) {
    if (paths.length === 0) throw new ContentError('Observe-Composite needs at least one path');
    if (format !== ContentFormat.SenmlCbor && format !== ContentFormat.SenmlJson) throw new ContentError('Observe-Composite uses SenML JSON (110) or SenML CBOR (112)');
  }

  toCoap(): CoapRequestSpec {
    return { method: Method.FETCH, path: Lwm2mPath.ROOT, contentFormat: this.format, accept: this.format, payload: encodeSenmlPaths(this.paths, this.format), observe: 0 };
  }

  fromCoap(response: CoapMessage, context: RequestContext): ReadResult {
    return { records: decodeContent(response.payload, contentFormatOf(response), Lwm2mPath.ROOT, context.model) };
  }
}

/** Active cancel: the observation's request again with Observe: 1 and the same token (RFC 7641 section 3.6). */
export class CancelObservationRequest implements DeviceRequest<Record<string, never>> {
  readonly operation = 'cancel-observation';
  readonly successCode = ResponseCode.Content;
  readonly path: Lwm2mPath;

  constructor(private readonly observed: ObserveRequest | ObserveCompositeRequest) {
    this.path = observed.path;
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    return { ...this.observed.toCoap(context), observe: 1 };
  }

  fromCoap(): Record<string, never> {
    return {};
  }
}
