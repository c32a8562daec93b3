import { code } from './codes';
import type { CoapMessage } from './message';
import { decodeUint, uintOptionOf } from './options';
import type { StreamMessage } from './tcp-framing';

/** Signaling codes of CoAP over reliable transports (RFC 8323 section 5). */
export const Signal = {
  Csm: code(7, 1),
  Ping: code(7, 2),
  Pong: code(7, 3),
  Release: code(7, 4),
  Abort: code(7, 5),
} as const;

/** Each signal has its own option numbers; all the defined ones are elective. */
const CSM_MAX_MESSAGE_SIZE = 2;
const CSM_BLOCK_WISE_TRANSFER = 4;
const ABORT_BAD_CSM_OPTION = 2;

/** What a CSM without options says (RFC 8323 section 5.3.1): 1152 bytes, no BERT. */
export const BASE_MAX_MESSAGE_SIZE = 1152;

const EMPTY = Buffer.alloc(0);

/** What the peer said in its Capabilities and Settings Messages. */
export interface PeerSettings {
  maxMessageSize: number;
  /** Block-Wise-Transfer: the peer takes Block1/Block2, and BERT (SZX 7, RFC 8323 section 6). */
  bert: boolean;
}

/** A signal the connection cannot go on after (RFC 8323 section 5.3 and 5.6): to be answered with Abort. */
export class SignalError extends Error {
  constructor(
    message: string,
    /** The CSM option that could not be taken, for Abort's Bad-CSM-Option. */
    readonly badOption?: number,
  ) {
    super(message);
    this.name = 'SignalError';
  }
}

export function csmSignal(settings: PeerSettings): StreamMessage {
  const options = [uintOptionOf(CSM_MAX_MESSAGE_SIZE, settings.maxMessageSize)];
  if (settings.bert) options.push({ number: CSM_BLOCK_WISE_TRANSFER, value: EMPTY });
  return { code: Signal.Csm, token: EMPTY, options, payload: EMPTY };
}

export function pongSignal(ping: CoapMessage): StreamMessage {
  return { code: Signal.Pong, token: ping.token, options: [], payload: EMPTY };
}

export function pingSignal(token: Buffer): StreamMessage {
  return { code: Signal.Ping, token, options: [], payload: EMPTY };
}

export function releaseSignal(): StreamMessage {
  return { code: Signal.Release, token: EMPTY, options: [], payload: EMPTY };
}

/** Abort with the reason as diagnostic payload (UTF-8, cut short: never an echo of unbounded input). */
export function abortSignal(reason: string, badOption?: number): StreamMessage {
  return {
    code: Signal.Abort,
    token: EMPTY,
    options: badOption === undefined ? [] : [uintOptionOf(ABORT_BAD_CSM_OPTION, badOption)],
    payload: Buffer.from(reason.slice(0, 160), 'utf8'),
  };
}

/**
 * The settings a CSM updates (later CSMs change only what they carry). An
 * option with a critical (odd) number is not understood: the connection is
 * aborted (RFC 8323 section 5.3); unknown elective ones are ignored.
 */
export function readCsm(message: CoapMessage, current: PeerSettings): PeerSettings {
  const settings = { ...current };
  for (const option of message.options) {
    if (option.number === CSM_MAX_MESSAGE_SIZE) {
      if (option.value.length > 4) throw new SignalError(`Max-Message-Size of ${option.value.length} bytes`, option.number);
      settings.maxMessageSize = decodeUint(option.value);
    } else if (option.number === CSM_BLOCK_WISE_TRANSFER) {
      settings.bert = true;
    } else if (option.number % 2 === 1) {
      throw new SignalError(`CSM carries the unknown critical option ${option.number}`, option.number);
    }
  }
  return settings;
}

/** Any other signal: its critical options are none we know, so one is reason to abort (RFC 8323 section 5.2). */
export function checkSignalOptions(message: CoapMessage): void {
  for (const option of message.options) {
    if (option.number % 2 === 1) throw new SignalError(`signal ${message.code >> 5}.0${message.code & 0x1f} carries the unknown critical option ${option.number}`);
  }
}
