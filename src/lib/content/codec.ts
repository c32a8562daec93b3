import type { ObjectModel } from '../model/object-model';
import type { Lwm2mPath } from '../model/path';
import type { ContentRecord } from './values';

/** One LwM2M content format: decodes a payload for a request path into records and back. */
export interface ContentCodec {
  format: number;
  name: string;
  decode(payload: Buffer, target: Lwm2mPath, model: ObjectModel): ContentRecord[];
  encode(records: ContentRecord[], target: Lwm2mPath, model: ObjectModel): Buffer;
}
