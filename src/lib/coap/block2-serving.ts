import { createHash } from 'node:crypto';
import { OptionNumber, ResponseCode, codeClass } from './codes';
import { blockSize, decodeBlock, encodeBlock } from './block';
import type { OutgoingResponse } from './endpoint';
import type { CoapMessage } from './message';
import { findOption, uintOption, uintOptionOf } from './options';

/** Largest block served: 1024 bytes (SZX 6), the largest RFC 7959 defines for UDP. */
const MAX_SZX = 6;

/**
 * Serves a large answer in Block2 blocks (RFC 7959 section 2.4), without
 * keeping state: every block request is answered from the whole answer,
 * made again by the handler (or a Buffer it keeps, sliced without a copy),
 * so the handler must give the same bytes for the same representation. Each
 * block carries an ETag, so a client sees when the representation changed
 * between blocks and starts over: the handler's own when it gives one (a
 * file whose hash it knows), else a hash of the whole answer; block 0
 * carries Size2. The block size is the client's (Block2 in its request) or
 * maxBlockBytes, whichever is smaller; block numbers count in the client's
 * size, so a smaller size of ours answers from the same offset. Over TCP and
 * TLS, where BERT was agreed (RFC 8323 section 6), a client that asks for
 * SZX 7 (or nothing) gets blocks of as many 1024-byte units as maxBlockBytes
 * holds; block numbers then count 1024-byte units.
 */
export function serveBlock2(request: CoapMessage, response: OutgoingResponse, maxBlockBytes = 1024, bert = false): OutgoingResponse {
  const payload = response.payload;
  if (!payload || codeClass(response.code) !== 2) return response;
  const option = uintOption(request.options, OptionNumber.Block2);
  const asked = option === undefined ? undefined : decodeBlock(option, bert);
  const useBert = bert && maxBlockBytes > 1024 && (asked === undefined || asked.szx === 7);
  const maxSzx = Math.min(MAX_SZX, Math.floor(Math.log2(Math.max(16, maxBlockBytes))) - 4);
  const szx = useBert ? 7 : Math.min(asked?.szx ?? maxSzx, maxSzx);
  const size = useBert ? Math.floor(maxBlockBytes / 1024) * 1024 : blockSize(szx);
  if (!asked && payload.length <= size) return response;
  const offset = asked ? asked.num * blockSize(asked.szx) : 0;
  if (offset >= payload.length && !(offset === 0 && payload.length === 0)) {
    return { code: ResponseCode.BadOption, payload: Buffer.from(`block ${asked?.num} of ${asked ? blockSize(asked.szx) : size} bytes is beyond the ${payload.length}-byte answer`, 'utf8') };
  }
  const num = offset / blockSize(szx);
  const options = [...(response.options ?? [])];
  if (!findOption(options, OptionNumber.ETag)) options.push({ number: OptionNumber.ETag, value: createHash('sha256').update(payload).digest().subarray(0, 8) });
  options.push(uintOptionOf(OptionNumber.Block2, encodeBlock({ num, more: offset + size < payload.length, szx })));
  if (num === 0) options.push(uintOptionOf(OptionNumber.Size2, payload.length));
  return { ...response, options, payload: payload.subarray(offset, offset + size) };
}
