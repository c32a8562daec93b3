import { formatCode } from './codes';

/** The peer did not answer within the retransmission schedule or the request's time limit. */
export class CoapTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(message: string) {
    super(message);
    this.name = 'CoapTimeoutError';
  }
}

/** A request not sent: its address never showed it is real (it did not answer a CoAP ping, or sent too little to be answered). */
export class CoapUnverifiedPeerError extends Error {
  readonly code = 'EUNVERIFIED';
  constructor(message: string) {
    super(message);
    this.name = 'CoapUnverifiedPeerError';
  }
}

/** The peer rejected our message with a Reset. */
export class CoapResetError extends Error {
  readonly code = 'ECONNRESET';
  constructor(message: string) {
    super(message);
    this.name = 'CoapResetError';
  }
}

/** The endpoint was closed while the request was outstanding. */
export class CoapClosedError extends Error {
  readonly code = 'ECLOSED';
  constructor() {
    super('CoAP endpoint closed');
    this.name = 'CoapClosedError';
  }
}

/** A request that gets this thrown out of a handler is answered with its code and reason. */
export class CoapRequestError extends Error {
  constructor(
    readonly responseCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'CoapRequestError';
  }

  override toString(): string {
    return `${formatCode(this.responseCode)} ${this.message}`;
  }
}

/** A response that cannot be taken: blocks that do not fit together, or a critical option we do not understand (RFC 7252 section 5.4.1). */
export class CoapResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CoapResponseError';
  }
}

/** A stream peer (TCP, TLS) with no open connection: only the peer can connect again. */
export class CoapNoConnectionError extends Error {
  readonly code = 'ENOTCONN';
  constructor(message: string) {
    super(message);
    this.name = 'CoapNoConnectionError';
  }
}
