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
 * The bytes all unfinished Block1 transfers of an endpoint hold: a transfer
 * may not grow beyond maxBodyBytes, nor all of them together beyond limit.
 */
export class Block1Budget {
  used = 0;

  constructor(
    readonly maxBodyBytes: number,
    readonly limit: number,
  ) {}

  /** Drops a peer's (or a connection's) unfinished transfer and gives its bytes back. */
  drop(peer: Block1Holder): void {
    const transfer = peer.blockTransfer;
    if (!transfer) return;
    this.used -= transfer.received;
    peer.blockTransfer = undefined;
  }
}

/**
 * Reassembles a request body sent in Block1 blocks (RFC 7959 section 2.5),
 * one transfer per peer at a time, as a constrained client sends them.
 */
export function assembleBlock1(peer: Block1Holder, message: CoapMessage, budget: Block1Budget): Block1Assembly {
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
  let transfer: BlockTransfer | undefined = peer.blockTransfer;
  if (block.num === 0) {
    budget.drop(peer);
    transfer = { key, parts: [], received: 0, nextNum: 0, szx: block.szx, lastAt: 0 };
    peer.blockTransfer = transfer;
  } else if (!transfer || transfer.key !== key || transfer.nextNum * blockSize(transfer.szx) !== block.num * size) {
    budget.drop(peer);
    return reply(ResponseCode.RequestEntityIncomplete, `Block1 ${block.num} does not continue a transfer`);
  }
  const length = message.payload.length;
  if (transfer.received + length > budget.maxBodyBytes) {
    budget.drop(peer);
    return {
      payload: message.payload,
      response: {
        code: ResponseCode.RequestEntityTooLarge,
        options: [uintOptionOf(OptionNumber.Size1, budget.maxBodyBytes)],
        payload: Buffer.from(`request body larger than ${budget.maxBodyBytes} bytes`, 'utf8'),
      },
    };
  }
  if (budget.used + length > budget.limit) {
    budget.drop(peer);
    return reply(ResponseCode.RequestEntityTooLarge, `unfinished Block1 transfers hold the server's limit of ${budget.limit} bytes: try again later`);
  }
  budget.used += length;
  transfer.received += length;
  transfer.lastAt = Date.now();
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
  budget.drop(peer);
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
