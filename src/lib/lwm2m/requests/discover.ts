import { ContentFormat, Method, ResponseCode } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { ContentError } from '../../content/values';
import { Link, LinkFormatError, parseLinkFormat } from '../link-format';
import type { Lwm2mPath } from '../../model/path';
import { contentFormatOf } from './response-content';
import type { CoapRequestSpec, DeviceRequest } from './device-request';
import { decodeUtf8 } from '../../content/utf8';

export interface DiscoverResult {
  links: Link[];
}

/** Discover (GET with Accept: application/link-format), with the LwM2M 1.2 depth parameter. */
export class DiscoverRequest implements DeviceRequest<DiscoverResult> {
  readonly operation = 'discover';
  readonly successCode = ResponseCode.Content;

  constructor(
    readonly path: Lwm2mPath,
    readonly depth?: number,
  ) {
    if (path.isRoot() || path.isResourceInstance()) throw new ContentError(`Discover targets an object, instance or resource, not ${path}`);
    if (depth !== undefined && (!Number.isInteger(depth) || depth < 0 || depth > 3)) throw new ContentError(`discover depth must be 0, 1, 2 or 3, not ${depth}`);
  }

  toCoap(): CoapRequestSpec {
    return {
      method: Method.GET,
      path: this.path,
      accept: ContentFormat.LinkFormat,
      ...(this.depth !== undefined ? { query: [`depth=${this.depth}`] } : {}),
    };
  }

  fromCoap(response: CoapMessage): DiscoverResult {
    const format = contentFormatOf(response);
    if (format !== undefined && format !== ContentFormat.LinkFormat) throw new ContentError(`discover answer is content format ${format}, not link format`);
    try {
      return { links: parseLinkFormat(decodeUtf8(response.payload)) };
    } catch (error) {
      if (error instanceof LinkFormatError || error instanceof TypeError) throw new ContentError(`discover answer is not valid link format: ${error.message}`);
      throw error;
    }
  }
}
