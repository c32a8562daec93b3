import { Method, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { chooseMultiValueFormat, decodeContent } from '../../content/formats';
import type { ContentRecord } from '../../content/values';
import type { Lwm2mPath } from '../../model/path';
import { contentFormatOf } from './response-content';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

export interface ReadResult {
  records: ContentRecord[];
}

/** Read (GET) of an object, instance, resource or resource instance. */
export class ReadRequest implements DeviceRequest<ReadResult> {
  readonly operation = 'read';
  readonly successCode = ResponseCode.Content;

  constructor(
    readonly path: Lwm2mPath,
    /** Content format to ask for (Accept); the device chooses when absent. */
    readonly format?: number,
  ) {}

  /** Asks for the best multi-value format the device advertised when the answer holds several values. */
  toCoap(context: RequestContext): CoapRequestSpec {
    const { registration, model } = context;
    const severalValues = this.path.length < 3 || (this.path.isResource() && model.getResource(this.path.objectId, this.path.resourceId)?.multiple === true);
    const accept = this.format ?? (severalValues && registration.contentFormats.length > 0 ? chooseMultiValueFormat(registration.contentFormats, registration.lwm2mVersion) : undefined);
    return { method: Method.GET, path: this.path, accept };
  }

  fromCoap(response: CoapMessage, context: RequestContext): ReadResult {
    return { records: decodeContent(response.payload, contentFormatOf(response), this.path, context.model) };
  }
}
