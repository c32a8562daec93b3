import { OptionNumber, ResponseCode, codeClass } from './codes';
import { blockSize, decodeBlock, encodeBlock } from './block';
import type { OutgoingResponse } from './endpoint';
import type { CoapOption } from './message';
import { decodeUint, findOption, uintOptionOf } from './options';

/**
 * The block of an answer that a request asks for (RFC 7959 section 2.4), as a
 * server: a body larger than one block goes out a block per request, in the
 * request's Block2 size or ours (maxSzx), whichever is smaller, with Block2
 * and Size2. The handler stays stateless: it answers every block request
 * with the whole body (a Buffer it keeps), sliced here without a copy.
 * Answers that fit one block, errors and empty bodies pass unchanged.
 */
export function serveBlock2(requestOptions: CoapOption[], response: OutgoingResponse, maxSzx: number): OutgoingResponse {
  const body = response.payload;
  if (body === undefined || body.length === 0 || codeClass(response.code) !== 2) return response;
  const option = findOption(requestOptions, OptionNumber.Block2);
  if (option === undefined && body.length <= blockSize(maxSzx)) return response;
  const requested = option === undefined ? undefined : option.value.length <= 3 ? decodeBlock(decodeUint(option.value)) : undefined;
  if (option !== undefined && requested === undefined) return refuse(ResponseCode.BadRequest, 'invalid Block2 option');
  const szx = Math.min(requested?.szx ?? maxSzx, maxSzx);
  const size = blockSize(szx);
  // Block numbers count in the size of the request; a smaller size of ours keeps the same offset.
  const offset = requested ? requested.num * blockSize(requested.szx) : 0;
  if (offset >= body.length) return refuse(ResponseCode.BadOption, `Block2 ${requested?.num} starts past the end of the ${body.length}-byte body`);
  const options = (response.options ?? []).filter((o) => o.number !== OptionNumber.Block2 && o.number !== OptionNumber.Size2);
  const more = offset + size < body.length;
  options.push(uintOptionOf(OptionNumber.Block2, encodeBlock({ num: offset / size, more, szx })), uintOptionOf(OptionNumber.Size2, body.length));
  return { code: response.code, options, payload: body.subarray(offset, offset + size) };
}

function refuse(code: number, reason: string): OutgoingResponse {
  return { code, payload: Buffer.from(reason, 'utf8') };
}
