import { ContentFormat, Method, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { chooseReadFormat, decodeContent } from '../../content/formats';
import { encodeSenmlPaths } from '../../content/senml';
import { ContentError } from '../../content/values';
import { Lwm2mPath } from '../../model/path';
import { compositeFormat } from './composite';
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
    const { registration, model } = context;
    const accept = this.format ?? chooseReadFormat(this.path, model, registration.contentFormats, registration.lwm2mVersion);
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
    /** SenML JSON or SenML CBOR; chosen per device from its ct when absent (see compositeFormat). */
    readonly format?: number,
  ) {
    if (paths.length === 0) throw new ContentError('Observe-Composite needs at least one path');
    if (format !== undefined && format !== ContentFormat.SenmlCbor && format !== ContentFormat.SenmlJson) throw new ContentError('Observe-Composite uses SenML JSON (110) or SenML CBOR (112)');
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    const { format } = compositeFormat(this.format, context.registration);
    return { method: Method.FETCH, path: Lwm2mPath.ROOT, contentFormat: format, accept: format, payload: encodeSenmlPaths(this.paths, format), observe: 0 };
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
