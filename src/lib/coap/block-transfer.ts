import { OptionNumber, ResponseCode } from './codes';
import { blockSize, decodeBlock, encodeBlock } from './block';
import type { CoapEndpoint, OutgoingRequest, RequestOptions } from './endpoint';
import type { CoapMessage, CoapOption } from './message';
import { decodeUint, findOption, uintOptionOf } from './options';
import type { Peer } from './peer';

export interface BlockwiseOptions extends RequestOptions {
  /** Block size exponent for bodies we send: 2^(szx+4) bytes (default 5: 512 bytes). */
  block1Szx?: number;
  /** Largest response body accepted through Block2. */
  maxResponseBytes?: number;
}

const DEFAULT_SZX = 5;
const NO_BODY = Buffer.alloc(0);
const DEFAULT_MAX_RESPONSE = 1024 * 1024;

/** A response body that arrived in pieces that do not fit together. */
export class BlockTransferError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BlockTransferError';
  }
}

/**
 * Sends a request with RFC 7959 block-wise transfer where needed: a large
 * body goes out in Block1 blocks, a large response is fetched in Block2
 * blocks. Resolves with the final response, its payload reassembled.
 */
export function requestBlockwise(endpoint: CoapEndpoint, peer: Peer, request: OutgoingRequest, options: BlockwiseOptions = {}): Promise<CoapMessage> {
  const given = request.options ?? [];
  const baseOptions = given.some(isBlockOption) ? given.filter((o) => !isBlockOption(o)) : given;
  const body = request.payload ?? NO_BODY;
  const szx = options.block1Szx ?? DEFAULT_SZX;
  // Most requests fit in one message and most answers too: no async machinery unless a Block2 answer needs collecting.
  if (body.length <= blockSize(szx)) {
    const single = baseOptions === given ? request : { ...request, options: baseOptions };
    return endpoint.request(peer, single, options).then((response) =>
      blockOption(response, OptionNumber.Block2)?.more ? collectBlock2(endpoint, peer, request.code, baseOptions, response, options) : response,
    );
  }
  return sendBlock1(endpoint, peer, request.code, baseOptions, body, szx, options);
}

async function sendBlock1(
  endpoint: CoapEndpoint,
  peer: Peer,
  code: number,
  baseOptions: CoapOption[],
  body: Buffer,
  szx: number,
  options: BlockwiseOptions,
): Promise<CoapMessage> {
  let offset = 0;
  for (;;) {
    const size = blockSize(szx);
    const more = offset + size < body.length;
    const num = offset / size;
    const response = await endpoint.request(
      peer,
      {
        code,
        options: [...baseOptions, uintOptionOf(OptionNumber.Block1, encodeBlock({ num, more, szx })), ...(num === 0 ? [uintOptionOf(OptionNumber.Size1, body.length)] : [])],
        payload: body.subarray(offset, offset + size),
      },
      options,
    );
    if (!more) return collectBlock2(endpoint, peer, code, baseOptions, response, options);
    if (response.code !== ResponseCode.Continue) return response;
    // The server may ask for smaller blocks (RFC 7959 section 2.3).
    const echoed = blockOption(response, OptionNumber.Block1);
    offset += size;
    if (echoed && echoed.szx < szx) szx = echoed.szx;
  }
}

async function collectBlock2(
  endpoint: CoapEndpoint,
  peer: Peer,
  code: number,
  baseOptions: CoapOption[],
  first: CoapMessage,
  options: BlockwiseOptions,
): Promise<CoapMessage> {
  let block = blockOption(first, OptionNumber.Block2);
  if (!block || !block.more) return first;
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE;
  // The rest of a body is fetched with plain requests: new tokens, no observation.
  const { onNotification: _observe, token: _token, ...blockOptions } = options;
  options = blockOptions;
  const parts = [first.payload];
  let received = first.payload.length;
  let response = first;
  while (block.more) {
    if (block.num !== 0 && received !== (block.num + 1) * blockSize(block.szx)) {
      throw new BlockTransferError(`Block2 ${block.num} of ${peer.address}:${peer.port} does not continue the body`);
    }
    const next = { num: received / blockSize(block.szx), more: false, szx: block.szx };
    response = await endpoint.request(peer, { code, options: [...baseOptions, uintOptionOf(OptionNumber.Block2, encodeBlock(next))] }, options);
    if (response.code !== first.code) return response;
    const got = blockOption(response, OptionNumber.Block2);
    if (!got || got.num * blockSize(got.szx) !== received) throw new BlockTransferError(`Block2 answer for offset ${received} carries a different block`);
    parts.push(response.payload);
    received += response.payload.length;
    if (received > maxBytes) throw new BlockTransferError(`response body larger than ${maxBytes} bytes`);
    block = got;
  }
  return { ...response, payload: Buffer.concat(parts) };
}

function isBlockOption(option: CoapOption): boolean {
  return option.number === OptionNumber.Block1 || option.number === OptionNumber.Block2;
}

function blockOption(message: CoapMessage, number: number) {
  const option = findOption(message.options, number);
  if (!option || option.value.length > 3) return undefined;
  return decodeBlock(decodeUint(option.value));
}
