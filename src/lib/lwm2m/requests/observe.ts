import { Method, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { chooseReadFormat, decodeContent } from '../../content/formats';
import { encodeSenmlPaths } from '../../content/senml';
import { ContentError } from '../../content/values';
import { Lwm2mPath } from '../../model/path';
import { compositeFormats, requireCompositeFormat } from './composite';
import type { ReadResult } from './read';
import { contentFormatOf } from './response-content';
import { NotificationAttributes, attributeQueries, attributesInObserve, checkAttributeTargets, checkAttributeVersion, parseAttributes } from './write-attributes';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

/**
 * Notification attributes that travel in the Observe request's query, for
 * devices of LwM2M 1.2 (see attributesInObserve); older devices get them by
 * Write-Attributes before the Observe, and a request without any has none.
 */
function observeQuery(attributes: NotificationAttributes | undefined, paths: readonly Lwm2mPath[], context: RequestContext): string[] | undefined {
  if (!attributes || !attributesInObserve(context.registration)) return undefined;
  checkAttributeVersion(attributes, context.registration);
  checkAttributeTargets(attributes, paths, context.model);
  return attributeQueries(attributes);
}

function checkedAttributes(attributes: unknown, paths: readonly Lwm2mPath[]): NotificationAttributes | undefined {
  if (attributes === undefined) return undefined;
  const parsed = parseAttributes(attributes);
  if (Object.values(parsed).includes(null)) throw new ContentError('an Observe sets attributes; removing one (null) is for Write-Attributes');
  checkAttributeTargets(parsed, paths);
  return parsed;
}

/** Observe (GET with Observe: 0) of an object, instance, resource or resource instance. */
export class ObserveRequest implements DeviceRequest<ReadResult> {
  readonly operation = 'observe';
  readonly successCode = ResponseCode.Content;
  /** Notification attributes of this observation (LwM2M 1.2: in the query). */
  readonly attributes?: NotificationAttributes;

  constructor(
    readonly path: Lwm2mPath,
    readonly format?: number,
    attributes?: unknown,
  ) {
    if (path.isRoot()) throw new ContentError('observe an object, instance or resource, not the root');
    this.attributes = checkedAttributes(attributes, [path]);
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    const { registration, model } = context;
    const accept = this.format ?? chooseReadFormat(this.path, model, registration.contentFormats, registration.lwm2mVersion);
    const query = observeQuery(this.attributes, [this.path], context);
    return { method: Method.GET, path: this.path, accept, observe: 0, ...(query ? { query } : {}) };
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
  readonly attributes?: NotificationAttributes;

  constructor(
    readonly paths: Lwm2mPath[],
    /** Chosen per device from its ct when absent (see compositeFormats). */
    readonly format?: number,
    attributes?: unknown,
  ) {
    if (paths.length === 0) throw new ContentError('Observe-Composite needs at least one path');
    if (format !== undefined) requireCompositeFormat('fetch', format);
    this.attributes = checkedAttributes(attributes, paths);
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    const { body, accept } = compositeFormats('fetch', this.format, context.registration);
    const query = observeQuery(this.attributes, this.paths, context);
    return { method: Method.FETCH, path: Lwm2mPath.ROOT, contentFormat: body, accept, payload: encodeSenmlPaths(this.paths, body), observe: 0, ...(query ? { query } : {}) };
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
