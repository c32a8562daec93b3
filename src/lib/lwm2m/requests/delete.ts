import { Method, ResponseCode } from '../../coap/codes';
import { ContentError } from '../../content/values';
import type { Lwm2mPath } from '../../model/path';
import type { CoapRequestSpec, DeviceRequest } from './device-request';

/** Delete (DELETE) of an object instance. */
export class DeleteRequest implements DeviceRequest<Record<string, never>> {
  readonly operation = 'delete';
  readonly successCode = ResponseCode.Deleted;

  constructor(readonly path: Lwm2mPath) {
    if (!path.isInstance()) throw new ContentError(`Delete targets an object instance such as /3303/1, not ${path}`);
  }

  toCoap(): CoapRequestSpec {
    return { method: Method.DELETE, path: this.path };
  }

  fromCoap(): Record<string, never> {
    return {};
  }
}
