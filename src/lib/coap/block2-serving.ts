import { createHash } from 'node:crypto';
import { OptionNumber, ResponseCode, codeClass } from './codes';
import { blockSize, decodeBlock, encodeBlock } from './block';
import type { OutgoingResponse } from './endpoint';
import type { CoapMessage } from './message';
import { uintOption, uintOptionOf } from './options';

/** Largest block served: 1024 bytes (SZX 6), the largest RFC 7959 defines for UDP. */
const MAX_SZX = 6;

/**
 * Serves a large answer in Block2 blocks (RFC 7959 section 2.4), without
 * keeping state: every block request is answered from the whole answer,
 * made again by the handler, so the handler must make the same bytes for
 * the same representation. Each block carries an ETag (a hash of the whole
 * answer), so a client sees when the representation changed between blocks
 * and starts over, and block 0 carries Size2. The block size is the
 * client's (Block2 in its request) or maxBlockBytes, whichever is smaller.
 */
export function serveBlock2(request: CoapMessage, response: OutgoingResponse, maxBlockBytes = 1024): OutgoingResponse {
  const payload = response.payload;
  if (!payload || codeClass(response.code) !== 2) return response;
  const option = uintOption(request.options, OptionNumber.Block2);
  const asked = option === undefined ? undefined : decodeBlock(option);
  const maxSzx = Math.min(MAX_SZX, Math.floor(Math.log2(Math.max(16, maxBlockBytes))) - 4);
  const szx = Math.min(asked?.szx ?? maxSzx, maxSzx);
  const size = blockSize(szx);
  const num = asked?.num ?? 0;
  if (!asked && payload.length <= size) return response;
  if (num * size >= payload.length && !(num === 0 && payload.length === 0)) {
    return { code: ResponseCode.BadOption, payload: Buffer.from(`block ${num} of ${size} bytes is beyond the ${payload.length}-byte answer`, 'utf8') };
  }
  const more = (num + 1) * size < payload.length;
  const options = [...(response.options ?? [])];
  options.push({ number: OptionNumber.ETag, value: createHash('sha256').update(payload).digest().subarray(0, 8) });
  options.push(uintOptionOf(OptionNumber.Block2, encodeBlock({ num, more, szx })));
  if (num === 0) options.push(uintOptionOf(OptionNumber.Size2, payload.length));
  return { ...response, options, payload: payload.subarray(num * size, (num + 1) * size) };
}
