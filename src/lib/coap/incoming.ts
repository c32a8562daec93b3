import { OptionNumber } from './codes';
import type { IncomingRequest, OutgoingResponse, RequestHandler } from './endpoint';
import type { CoapMessage } from './message';
import { findOption, stringOptions, uintOptionOf, uriPath } from './options';
import type { Peer } from './peer';
import type { PeerIdentity } from '../dtls/credentials';

/**
 * A request as handlers see it, whatever carried it: path, queries and
 * content format read from the message, the body whole (after Block1).
 */
export function incomingRequest(peer: Peer, message: CoapMessage, payload: Buffer, identity: PeerIdentity | undefined): IncomingRequest {
  const contentFormat = findOption(message.options, OptionNumber.ContentFormat);
  return {
    peer: { address: peer.address, port: peer.port },
    message,
    method: message.code,
    path: uriPath(message.options),
    queries: stringOptions(message.options, OptionNumber.UriQuery),
    payload,
    contentFormat: contentFormat === undefined ? undefined : contentFormat.value.reduce((acc, byte) => acc * 256 + byte, 0),
    identity,
  };
}

/**
 * Runs the handler and answers with what it returns or resolves to (the
 * final Block1 option echoed, RFC 7959 section 2.3), or with what failed()
 * makes of what it throws or rejects with.
 */
export function handleRequest(
  handler: RequestHandler,
  request: IncomingRequest,
  block1Option: number | undefined,
  answer: (response: OutgoingResponse) => void,
  failed: (error: unknown) => OutgoingResponse,
): void {
  const withBlock1 = (response: OutgoingResponse): OutgoingResponse =>
    block1Option === undefined ? response : { ...response, options: [...(response.options ?? []), uintOptionOf(OptionNumber.Block1, block1Option)] };
  try {
    const result = handler(request);
    if (result instanceof Promise) {
      result.then(
        (response) => answer(withBlock1(response)),
        (error) => answer(failed(error)),
      );
    } else answer(withBlock1(result));
  } catch (error) {
    answer(failed(error));
  }
}
