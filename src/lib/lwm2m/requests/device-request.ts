import type { CoapMessage } from '../../coap/message';
import type { ObjectModel } from '../../model/object-model';
import type { Lwm2mPath } from '../../model/path';
import type { Registration } from '../registration';

/** What a request needs to know about its device. */
export interface RequestContext {
  registration: Registration;
  model: ObjectModel;
}

/** The CoAP request an operation turns into; the path is relative to the device's root path. */
export interface CoapRequestSpec {
  method: number;
  path: Lwm2mPath;
  query?: string[];
  contentFormat?: number;
  accept?: number;
  payload?: Buffer;
  /** Observe option: 0 registers an observation, 1 cancels one (RFC 7641). */
  observe?: 0 | 1;
}

/** Fields every response carries. */
export interface ResponseBase {
  /** CoAP response code such as "2.05". */
  code: string;
  contentFormat?: number;
  /** The payload as the device sent it. */
  raw: Buffer;
  /** The Observe option of the response: present when the device accepted an observation. */
  observe?: number;
}

/** One LwM2M operation: how it becomes a CoAP request and how its response reads. */
export interface DeviceRequest<R> {
  readonly operation: string;
  readonly path: Lwm2mPath;
  /** The success code this operation expects (2.05 Content for a Read...). */
  readonly successCode: number;
  toCoap(context: RequestContext): CoapRequestSpec;
  /** Reads a successful response; throws ContentError for content that does not decode. */
  fromCoap(response: CoapMessage, context: RequestContext): R;
}
