import { Method, OptionNumber, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { stringOptions } from '../../coap/options';
import { chooseMultiValueFormat, encodeContent } from '../../content/formats';
import { ContentError, ContentRecord } from '../../content/values';
import type { Lwm2mPath } from '../../model/path';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

export interface CreateResult {
  /** The path of the new instance, as the device reported it or as requested. */
  location: string;
  instanceId: number;
}

/**
 * Create (POST /{object}) of a new object instance from records under
 * /{object}/{instance}. Without an instance id the lowest one the
 * device's registration shows free is used, so every format can carry it.
 * Without records the POST has no payload: the device creates the instance
 * with its defaults and picks its id, which it reports in Location-Path.
 */
export class CreateRequest implements DeviceRequest<CreateResult> {
  readonly operation = 'create';
  readonly successCode = ResponseCode.Created;

  constructor(
    readonly path: Lwm2mPath,
    readonly records: ContentRecord[],
    readonly instanceId?: number,
    readonly format?: number,
  ) {
    if (!path.isObject()) throw new ContentError(`Create targets an object such as /3303, not ${path}`);
    if (records.length === 0 && instanceId !== undefined) {
      throw new ContentError(`an instance id (${instanceId}) travels with resource values: give at least one, or leave the id out and the device picks it`);
    }
  }

  /** The instance the records must sit under, chosen from the registration when not given. */
  static instanceFor(objectId: number, requested: number | undefined, context: Pick<RequestContext, 'registration'>): number {
    if (requested !== undefined) return requested;
    const used = new Set(context.registration.objects.find((object) => object.id === objectId)?.instances ?? []);
    let id = 0;
    while (used.has(id)) id++;
    return id;
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    if (this.records.length === 0) return { method: Method.POST, path: this.path };
    const { registration, model } = context;
    const format = this.format ?? chooseMultiValueFormat(registration.contentFormats, registration.lwm2mVersion);
    return { method: Method.POST, path: this.path, contentFormat: format, payload: encodeContent(this.records, format, this.path, model) };
  }

  fromCoap(response: CoapMessage): CreateResult {
    const location = stringOptions(response.options, OptionNumber.LocationPath);
    const fromDevice = location.length > 0 ? Number(location[location.length - 1]) : NaN;
    const instanceId = Number.isInteger(fromDevice) ? fromDevice : this.records[0]?.path.instanceId;
    if (instanceId === undefined) throw new ContentError('the device created an instance without saying which (no Location-Path)');
    return { location: `${this.path}/${instanceId}`, instanceId };
  }
}
