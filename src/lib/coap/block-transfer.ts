import { Method, OptionNumber, ResponseCode, codeClass } from './codes';
import { blockSize, decodeBlock, encodeBlock } from './block';
import { type OutgoingRequest, type RequestOptions, TICK_MASK } from './endpoint';
import type { MessageLayer } from './message-layer';
import { CoapResponseError, CoapTimeoutError } from './errors';
import type { CoapMessage, CoapOption } from './message';
import { decodeUint, findOption, uintOptionOf } from './options';
import type { Peer } from './peer';

export interface BlockwiseOptions extends RequestOptions {
  /** Block size exponent for bodies we send: 2^(szx+4) bytes (default 5: 512 bytes). */
  block1Szx?: number;
  /** Largest response body accepted through Block2. */
  maxResponseBytes?: number;
  /** Asks for the answer in Block2 blocks of 2^(szx+4) bytes from the first request on (RFC 7959 section 2.4, early negotiation). */
  block2Szx?: number;
  /** Told, after each Block1 block the peer took, how much of the body it has (a 4.13 that restarts the body starts it again at 0). */
  onProgress?: (sentBytes: number, totalBytes: number) => void;
}

const DEFAULT_SZX = 5;
const NO_BODY = Buffer.alloc(0);
const DEFAULT_MAX_RESPONSE = 1024 * 1024;
/** How often a Block2 transfer starts over because the representation changed under it (its ETag) before it fails. */
const MAX_RESTARTS = 2;

/**
 * Sends a request with RFC 7959 block-wise transfer where needed: a large
 * body goes out in Block1 blocks (in smaller ones when the peer answers 4.13
 * asking for them), a large response is fetched in Block2 blocks. The
 * options' timeoutMs bounds the whole transfer, every block included.
 * Resolves with the final response, its payload reassembled and the options
 * of its first block (where an Observe option is, RFC 7959 section 2.6).
 * Over TCP and TLS (RFC 8323 section 6) a body goes in one message when it
 * fits the peer's Max-Message-Size, and otherwise in BERT blocks when the
 * peer takes them; answers may come in BERT blocks.
 */
export function requestBlockwise(endpoint: MessageLayer, peer: Peer, request: OutgoingRequest, options: BlockwiseOptions = {}): Promise<CoapMessage> {
  const given = request.options ?? [];
  const baseOptions = given.some(isBlockOption) ? given.filter((o) => !isBlockOption(o)) : given;
  const body = request.payload ?? NO_BODY;
  const limits = endpoint.blockLimits(peer);
  const szx = limits !== undefined && limits.bertBytes > 0 ? 7 : options.block1Szx ?? DEFAULT_SZX;
  const startedAt = endpoint.ticks;
  // Most requests fit in one message and most answers too: no async machinery unless a block-wise answer needs it.
  if (body.length <= (limits === undefined ? blockSize(szx) : limits.singleMessageBytes)) {
    const single = options.block2Szx !== undefined ? withBlock2Size(request, baseOptions, options.block2Szx) : baseOptions === given ? request : { ...request, options: baseOptions };
    // What the callback keeps is kept for every read: the request (not its body apart), and the start as a small integer.
    return endpoint.request(peer, single, options).then((response) => {
      if (blockOption(response, OptionNumber.Block2, endpoint.reliable)?.more) {
        return collectBlock2(new FollowUps(endpoint, peer, request.code, baseOptions, request.payload ?? NO_BODY, options, startedAt), response);
      }
      if (response.code !== ResponseCode.RequestEntityTooLarge) return response;
      const payload = request.payload ?? NO_BODY;
      const smaller = requestedSzx(response, payload.length);
      if (smaller === undefined) return response;
      return sendBlock1(new FollowUps(endpoint, peer, request.code, baseOptions, payload, options, startedAt), smaller);
    });
  }
  return sendBlock1(new FollowUps(endpoint, peer, request.code, baseOptions, body, options, startedAt), szx);
}

/** The first request of a transfer that asks for its answer in blocks of a size (RFC 7959 section 2.4). */
function withBlock2Size(request: OutgoingRequest, baseOptions: CoapOption[], szx: number): OutgoingRequest {
  return { ...request, options: [...baseOptions, uintOptionOf(OptionNumber.Block2, encodeBlock({ num: 0, more: false, szx }))] };
}

/** Milliseconds since the endpoint ticks given (right for transfers shorter than 12 days). */
function elapsed(since: number): number {
  return ((Date.now() & TICK_MASK) - since) & TICK_MASK;
}

/**
 * The rest of a response whose first block came on its own, such as a
 * block-wise notification (RFC 7959 section 2.6): fetched with the request
 * it answers, without Observe. Resolves with the whole body under the first block's options.
 */
export function completeBlock2(endpoint: MessageLayer, peer: Peer, request: OutgoingRequest, first: CoapMessage, options: BlockwiseOptions = {}): Promise<CoapMessage> {
  const given = request.options ?? [];
  const baseOptions = given.some(isBlockOption) ? given.filter((o) => !isBlockOption(o)) : given;
  return collectBlock2(new FollowUps(endpoint, peer, request.code, baseOptions, request.payload ?? NO_BODY, options, endpoint.ticks), first);
}

/** Whether a response is the first block of a body that continues (Block2 with the more flag; BERT blocks where we announced BERT). */
export function hasMoreBlocks(message: CoapMessage, bert = false): boolean {
  return blockOption(message, OptionNumber.Block2, bert)?.more === true;
}

/** What every request of one block-wise transfer shares: the peer, the request, and the time left. */
class FollowUps {
  private readonly deadline: number;
  /** We announced BERT (over a stream): answers may come in SZX 7 blocks. */
  readonly acceptsBert: boolean;
  /** The size of the BERT blocks we send this peer; 0 when it takes none. */
  readonly bertBytes: number;

  constructor(
    readonly endpoint: MessageLayer,
    readonly peer: Peer,
    readonly code: number,
    readonly baseOptions: CoapOption[],
    readonly body: Buffer,
    readonly options: BlockwiseOptions,
    /** The endpoint's ticks when the transfer started. */
    startedAt: number,
  ) {
    this.deadline = options.timeoutMs === undefined ? Infinity : Date.now() - elapsed(startedAt) + options.timeoutMs;
    this.acceptsBert = endpoint.reliable;
    this.bertBytes = endpoint.blockLimits(peer)?.bertBytes ?? 0;
  }

  /** One request of the transfer, given the time that is left of the whole. */
  send(request: OutgoingRequest, options: RequestOptions = this.options): Promise<CoapMessage> {
    if (this.deadline === Infinity) return this.endpoint.request(this.peer, request, options);
    const left = this.deadline - Date.now();
    if (left <= 0) return Promise.reject(this.timeout());
    return this.endpoint.request(this.peer, request, { ...options, timeoutMs: left }).catch((error: unknown) => {
      throw error instanceof CoapTimeoutError && Date.now() >= this.deadline ? this.timeout() : error;
    });
  }

  /** A request for the next Block2 block: the original request without Observe (RFC 7959 section 2.6), with its body where the method needs it. */
  block2(block: { num: number; szx: number }): Promise<CoapMessage> {
    const options = this.baseOptions.filter((option) => option.number !== OptionNumber.Observe);
    options.push(uintOptionOf(OptionNumber.Block2, encodeBlock({ num: block.num, more: false, szx: block.szx })));
    // FETCH and iPATCH answer for their body, so each block's request repeats it (RFC 8132 section 2.3, RFC 7959 section 2.4);
    // a body that needed Block1 is not sent again (RFC 7959 section 3.3).
    const repeat = (this.code === Method.FETCH || this.code === Method.IPATCH) && this.body.length <= blockSize(this.options.block1Szx ?? DEFAULT_SZX);
    // Later blocks are plain requests: new tokens, no observation.
    const { onNotification: _observe, token: _token, ...plain } = this.options;
    return this.send({ code: this.code, options, payload: repeat ? this.body : undefined }, plain);
  }

  private timeout(): CoapTimeoutError {
    return new CoapTimeoutError(`no complete block-wise answer from ${this.peer.address}:${this.peer.port} within ${this.options.timeoutMs} ms`);
  }
}

async function sendBlock1(transfer: FollowUps, szx: number): Promise<CoapMessage> {
  const body = transfer.body;
  let offset = 0;
  for (;;) {
    // A BERT block (SZX 7) is several 1024-byte units, numbered in units.
    const size = szx === 7 ? transfer.bertBytes : blockSize(szx);
    const more = offset + size < body.length;
    const num = offset / blockSize(szx);
    const options = [...transfer.baseOptions, uintOptionOf(OptionNumber.Block1, encodeBlock({ num, more, szx }))];
    if (num === 0) options.push(uintOptionOf(OptionNumber.Size1, body.length));
    const response = await transfer.send({ code: transfer.code, options, payload: body.subarray(offset, offset + size) });
    if (response.code === ResponseCode.RequestEntityTooLarge) {
      // The peer takes smaller blocks only (RFC 7959 section 2.9.3): the transfer starts over with the size it asked for.
      const smaller = requestedSzx(response, size);
      if (smaller === undefined) return response;
      szx = smaller;
      offset = 0;
      transfer.options.onProgress?.(0, body.length);
      continue;
    }
    if (!more) {
      if (codeClass(response.code) === 2) transfer.options.onProgress?.(body.length, body.length);
      return collectBlock2(transfer, response);
    }
    if (response.code !== ResponseCode.Continue) return response;
    transfer.options.onProgress?.(offset + size, body.length);
    // The server may ask for smaller blocks (RFC 7959 section 2.3).
    const echoed = blockOption(response, OptionNumber.Block1, transfer.acceptsBert);
    offset += size;
    if (echoed && echoed.szx < szx) szx = echoed.szx;
  }
}

/**
 * Fetches the blocks after the first, checking that they continue the body
 * and carry the first block's ETag; a body whose ETag changes is fetched
 * again from block 0 (RFC 7959 section 2.4), a few times at most.
 */
async function collectBlock2(transfer: FollowUps, first: CoapMessage): Promise<CoapMessage> {
  const bert = transfer.acceptsBert;
  let block = blockOption(first, OptionNumber.Block2, bert);
  if (!block || !block.more) return first;
  const maxBytes = transfer.options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE;
  const { peer } = transfer;
  let head = first;
  for (let restarts = 0; ; restarts++) {
    const etag = findOption(head.options, OptionNumber.ETag)?.value;
    const parts = [head.payload];
    let received = head.payload.length;
    let last = head.payload.length;
    let changed = false;
    while (block.more) {
      if (!continuesBody(block, last, received)) {
        throw new CoapResponseError(`Block2 ${block.num} of ${peer.address}:${peer.port} does not continue the body`);
      }
      const response = await transfer.block2({ num: received / blockSize(block.szx), szx: block.szx });
      if (response.code !== first.code) return response;
      const got = blockOption(response, OptionNumber.Block2, bert);
      if (!got || got.num * blockSize(got.szx) !== received) throw new CoapResponseError(`Block2 answer for offset ${received} carries a different block`);
      if (!sameEtag(etag, findOption(response.options, OptionNumber.ETag)?.value)) {
        changed = true;
        break;
      }
      parts.push(response.payload);
      received += response.payload.length;
      last = response.payload.length;
      if (received > maxBytes) throw new CoapResponseError(`response body larger than ${maxBytes} bytes`);
      block = got;
    }
    if (!changed) return { ...first, options: first.options.filter((option) => option.number !== OptionNumber.Block2), payload: Buffer.concat(parts) };
    if (restarts === MAX_RESTARTS) {
      throw new CoapResponseError(`the body from ${peer.address}:${peer.port} changed (ETag) during its block-wise transfer ${restarts + 1} times`);
    }
    head = await transfer.block2({ num: 0, szx: block.szx });
    if (head.code !== first.code) return head;
    const restarted = blockOption(head, OptionNumber.Block2, bert);
    if (!restarted) return { ...first, options: first.options.filter((option) => option.number !== OptionNumber.Block2), payload: head.payload };
    block = restarted;
  }
}

/**
 * Whether a block with the more flag ends the body so far where the next
 * begins: its number times the unit plus its payload is what was received,
 * and its payload is one block (or, BERT, whole 1024-byte units).
 */
function continuesBody(block: { num: number; szx: number }, payloadBytes: number, received: number): boolean {
  const unit = blockSize(block.szx);
  const whole = block.szx === 7 ? payloadBytes > 0 && payloadBytes % unit === 0 : payloadBytes === unit;
  return whole && block.num * unit + payloadBytes === received;
}

/**
 * The block size a 4.13 answer asks for, when smaller than what was sent:
 * the SZX of its Block1 option, or the largest block that fits its Size1.
 */
function requestedSzx(response: CoapMessage, sentBytes: number): number | undefined {
  const echoed = blockOption(response, OptionNumber.Block1);
  let size = echoed ? blockSize(echoed.szx) : undefined;
  if (size === undefined) {
    const size1 = findOption(response.options, OptionNumber.Size1);
    if (size1 && size1.value.length <= 4) size = decodeUint(size1.value);
  }
  if (size === undefined || size >= sentBytes || size < 16) return undefined;
  return Math.min(6, Math.floor(Math.log2(size)) - 4);
}

function sameEtag(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined ? b === undefined : b !== undefined && a.equals(b);
}

function isBlockOption(option: CoapOption): boolean {
  return option.number === OptionNumber.Block1 || option.number === OptionNumber.Block2;
}

function blockOption(message: CoapMessage, number: number, bert = false) {
  const option = findOption(message.options, number);
  if (!option || option.value.length > 3) return undefined;
  return decodeBlock(decodeUint(option.value), bert);
}
