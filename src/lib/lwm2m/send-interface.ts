import { ContentFormat, Method, ResponseCode } from '../coap/codes';
import { CoapRequestError } from '../coap/errors';
import type { IncomingRequest, OutgoingResponse } from '../coap/endpoint';
import { decodeContent } from '../content/formats';
import { ContentError, ContentRecord } from '../content/values';
import type { ObjectModel } from '../model/object-model';
import { Lwm2mPath } from '../model/path';
import type { Registration, Transport } from './registration';
import type { RegistrationStore } from './registration-store';
import { identityKey } from './security';
import { touch } from '../coarse-clock';

const SEND_FORMATS: number[] = [ContentFormat.SenmlJson, ContentFormat.SenmlCbor, ContentFormat.Lwm2mCbor];

/** The Send operation (LwM2M 1.1 Information Reporting): POST /dp from a registered device. */
export class SendInterface {
  constructor(
    private readonly store: RegistrationStore,
    private readonly model: (registration: Registration) => ObjectModel,
    private readonly sent: (registration: Registration, records: ContentRecord[], contentFormat: number, raw: Buffer) => void,
    /** A Send refused (4.03) for its credentials: from the address of a registration made under another identity. */
    private readonly refused: (endpoint: string, peer: IncomingRequest['peer'], reason: string) => void = () => undefined,
  ) {}

  /** Answers POST /dp (that came over transport); undefined for other paths. */
  handle(request: IncomingRequest, transport: Transport): OutgoingResponse | undefined {
    if (request.path !== '/dp') return undefined;
    if (request.method !== Method.POST) throw new CoapRequestError(ResponseCode.MethodNotAllowed, 'only POST is allowed on /dp');
    const registration = this.store.getByPeer(transport, request.peer.address, request.peer.port);
    if (!registration) throw new CoapRequestError(ResponseCode.Forbidden, 'Send is only accepted from a registered device');
    if (identityKey(registration.identity) !== identityKey(request.identity)) {
      const reason = `a Send from the address of ${registration.endpoint} under another identity than it registered with`;
      this.refused(registration.endpoint, request.peer, reason);
      throw new CoapRequestError(ResponseCode.Forbidden, reason);
    }
    touch(registration);
    const format = request.contentFormat;
    if (format === undefined || !SEND_FORMATS.includes(format)) {
      throw new CoapRequestError(ResponseCode.UnsupportedContentFormat, 'Send takes SenML JSON (110), SenML CBOR (112) or LwM2M CBOR (11544)');
    }
    let records: ContentRecord[];
    try {
      records = decodeContent(request.payload, format, Lwm2mPath.ROOT, this.model(registration));
    } catch (error) {
      if (error instanceof ContentError) throw new CoapRequestError(ResponseCode.BadRequest, error.message);
      throw error;
    }
    if (records.length === 0) throw new CoapRequestError(ResponseCode.BadRequest, 'Send carries no values');
    this.sent(registration, records, format, request.payload);
    return { code: ResponseCode.Changed };
  }
}
