import { Method, ResponseCode } from '../../coap/codes';
import { chooseWriteFormat, encodeContent } from '../../content/formats';
import { ContentError, ContentRecord } from '../../content/values';
import { isWritable } from '../../model/object-definition';
import type { ObjectModel } from '../../model/object-model';
import type { Lwm2mPath } from '../../model/path';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

export type WriteMode = 'replace' | 'update';

/**
 * Write: PUT replaces the instance or resource, POST (partial update) changes
 * only the resources sent. Values are checked against the object model before anything is sent.
 */
export class WriteRequest implements DeviceRequest<Record<string, never>> {
  readonly operation = 'write';
  readonly successCode = ResponseCode.Changed;

  constructor(
    readonly path: Lwm2mPath,
    readonly records: ContentRecord[],
    readonly mode: WriteMode = 'replace',
    readonly format?: number,
  ) {
    if (path.length < 2) throw new ContentError(`Write targets an instance, resource or resource instance, not ${path}`);
    if (mode === 'update' && !path.isInstance()) throw new ContentError('a partial update (POST) writes to an object instance such as /1/0');
    if (records.length === 0) throw new ContentError(`nothing to write to ${path}`);
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    requireWritable(this.records, context.model);
    const { registration, model } = context;
    const format = this.format ?? chooseWriteFormat(this.records, this.path, registration.contentFormats, registration.lwm2mVersion);
    return {
      method: this.mode === 'replace' ? Method.PUT : Method.POST,
      path: this.path,
      contentFormat: format,
      payload: encodeContent(this.records, format, this.path, model),
    };
  }

  fromCoap(): Record<string, never> {
    return {};
  }
}

export function requireWritable(records: ContentRecord[], model: ObjectModel): void {
  for (const record of records) {
    const resource = model.getResource(record.path.objectId, record.path.resourceId);
    if (resource && !isWritable(resource)) throw new ContentError(`${record.path} (${resource.name}) is not writable`);
  }
}
