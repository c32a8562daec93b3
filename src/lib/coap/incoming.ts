import { OptionNumber } from './codes';
import type { IncomingRequest, OutgoingResponse, RequestHandler } from './endpoint';
import type { CoapMessage } from './message';
import { stringOptions, uintOption, uintOptionOf, uriPath } from './options';
import type { Peer } from './peer';
import type { PeerIdentity } from '../dtls/credentials';

/**
 * A request as handlers see it, whatever carried it: path, queries and
 * content format read from the message, the body whole (after Block1).
 */
export function incomingRequest(peer: Peer, message: CoapMessage, payload: Buffer, identity: PeerIdentity | undefined): IncomingRequest {
  return {
    peer: { address: peer.address, port: peer.port },
    message,
    method: message.code,
    path: uriPath(message.options),
    queries: stringOptions(message.options, OptionNumber.UriQuery),
    payload,
    contentFormat: uintOption(message.options, OptionNumber.ContentFormat),
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
  // No closure for the common request (no Block1, answered at once): this runs for every Register and Update.
  const answered = block1Option === undefined ? answer : (response: OutgoingResponse) => answer(withBlock1(response, block1Option));
  try {
    const result = handler(request);
    if (result instanceof Promise) result.then(answered, (error) => answer(failed(error)));
    else answered(result);
  } catch (error) {
    answer(failed(error));
  }
}

/** The response with the request's final Block1 option echoed. */
function withBlock1(response: OutgoingResponse, block1Option: number): OutgoingResponse {
  return { ...response, options: [...(response.options ?? []), uintOptionOf(OptionNumber.Block1, block1Option)] };
}
