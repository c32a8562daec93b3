import { Method, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { chooseReadFormat, decodeContent } from '../../content/formats';
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

  toCoap(context: RequestContext): CoapRequestSpec {
    const { registration, model } = context;
    const accept = this.format ?? chooseReadFormat(this.path, model, registration.contentFormats, registration.lwm2mVersion);
    return { method: Method.GET, path: this.path, accept };
  }

  fromCoap(response: CoapMessage, context: RequestContext): ReadResult {
    return { records: decodeContent(response.payload, contentFormatOf(response), this.path, context.model) };
  }
}
