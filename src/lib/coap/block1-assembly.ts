import { OptionNumber, ResponseCode } from './codes';
import { blockSize, decodeBlock, encodeBlock } from './block';
import type { OutgoingResponse } from './endpoint';
import type { CoapMessage } from './message';
import { findOption, uintOptionOf, decodeUint } from './options';
import type { BlockTransfer } from './peer';

export interface Block1Assembly {
  /** Set when the request is answered here: 2.31 Continue or an error. */
  response?: OutgoingResponse;
  /** The whole body once the last block is in. */
  payload: Buffer;
  /** Block1 value to echo in the final response. */
  block1Option?: number;
}

/** Who a transfer belongs to: a datagram peer, or a stream connection, which takes BERT blocks (RFC 8323 section 6). */
export interface Block1Holder {
  blockTransfer: BlockTransfer | undefined;
  readonly bert?: boolean;
}

/**
 * Reassembles a request body sent in Block1 blocks (RFC 7959 section 2.5),
 * one transfer per peer at a time, as a constrained client sends them.
 */
export function assembleBlock1(peer: Block1Holder, message: CoapMessage, maxBodyBytes: number): Block1Assembly {
  const option = findOption(message.options, OptionNumber.Block1);
  if (!option) return { payload: message.payload };
  const reply = (code: number, reason: string): Block1Assembly => ({
    payload: message.payload,
    response: { code, payload: Buffer.from(reason, 'utf8') },
  });
  const block = option.value.length <= 3 ? decodeBlock(decodeUint(option.value), peer.bert === true) : undefined;
  if (!block) return reply(ResponseCode.BadRequest, 'invalid Block1 option');
  const size = blockSize(block.szx);
  // A BERT block (SZX 7) carries any number of 1024-byte units.
  if (block.more && (block.szx === 7 ? message.payload.length === 0 || message.payload.length % size !== 0 : message.payload.length !== size)) {
    return reply(ResponseCode.BadRequest, `Block1 ${block.num} carries ${message.payload.length} bytes, not ${block.szx === 7 ? `a multiple of ${size}` : size}`);
  }
  const key = transferKey(message);
  let transfer = peer.blockTransfer;
  if (block.num === 0) {
    transfer = { key, parts: [], received: 0, nextNum: 0, szx: block.szx };
    peer.blockTransfer = transfer;
  } else if (!transfer || transfer.key !== key || transfer.nextNum * blockSize(transfer.szx) !== block.num * size) {
    peer.blockTransfer = undefined;
    return reply(ResponseCode.RequestEntityIncomplete, `Block1 ${block.num} does not continue a transfer`);
  }
  transfer.received += message.payload.length;
  if (transfer.received > maxBodyBytes) {
    peer.blockTransfer = undefined;
    return {
      payload: message.payload,
      response: {
        code: ResponseCode.RequestEntityTooLarge,
        options: [uintOptionOf(OptionNumber.Size1, maxBodyBytes)],
        payload: Buffer.from(`request body larger than ${maxBodyBytes} bytes`, 'utf8'),
      },
    };
  }
  transfer.parts.push(message.payload);
  // A client may shrink the block size mid-transfer; count in the new unit.
  transfer.nextNum = transfer.received / size;
  transfer.szx = block.szx;
  const echo = encodeBlock({ num: block.num, more: block.more, szx: block.szx });
  if (block.more) {
    return {
      payload: message.payload,
      response: { code: ResponseCode.Continue, options: [uintOptionOf(OptionNumber.Block1, echo)] },
    };
  }
  peer.blockTransfer = undefined;
  return { payload: Buffer.concat(transfer.parts), block1Option: echo };
}

/** The same resource and method: the request options other than Block1 and Size1. */
function transferKey(message: CoapMessage): string {
  let key = String(message.code);
  for (const option of message.options) {
    if (option.number === OptionNumber.UriPath || option.number === OptionNumber.UriQuery) {
      key += `|${option.number}:${option.value.toString('hex')}`;
    }
  }
  return key;
}
