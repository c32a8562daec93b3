import os from 'node:os';
import { isIPv6 } from 'node:net';
import { Method, OptionNumber, ResponseCode } from '../coap/codes';
import { blockSize, decodeBlock } from '../coap/block';
import { serveBlock2 } from '../coap/block2-serving';
import { IncomingRequest, OutgoingResponse, diagnostic } from '../coap/endpoint';
import { uintOption, uintOptionOf } from '../coap/options';
import type { CoapOption } from '../coap/message';
import type { Peer } from '../coap/peer';
import { randomText } from '../random-text';
import type { Registration, Transport } from '../lwm2m/registration';
import { identityKey } from '../lwm2m/security';
import type { Lwm2mServer } from '../lwm2m/server';
import type { FirmwarePackage } from './packages';

/** The path prefix of the files on the server's CoAP sockets: coap://host:port/fw/<token>. */
const COAP_FILE_PATH = 'fw';
/** The path of the files under Node-RED's HTTP root: http://host:port/<httpNodeRoot>lwm2m-firmware/<token>. */
export const HTTP_FILE_PATH = 'lwm2m-firmware';

const OCTET_STREAM = uintOptionOf(OptionNumber.ContentFormat, 42);

/** Told, as a device fetches its file, how far it got (the end of the furthest block or range served). */
export type ServedListener = (bytes: number, total: number) => void;

/**
 * One device's right to one file: the token in its URI (128 random bits),
 * the endpoint it is for, and the package. Only that device may fetch it:
 * over DTLS under the identity it registered with, over plain CoAP and HTTP
 * from the address it registered from.
 */
export interface Grant {
  token: string;
  endpoint: string;
  pkg: FirmwarePackage;
  /** The options of every answer: the file's ETag and Content-Format (made once, as each block is a request). */
  options: CoapOption[];
  /** The furthest byte served so far. */
  served: number;
  onServed?: ServedListener;
}

/** An HTTP answer for the node's route to write. */
export interface HttpFileAnswer {
  status: number;
  headers: Record<string, string>;
  body?: Buffer;
  /** Why a request was refused, for the log. */
  reason?: string;
  /** The grant, for counting what was written. */
  grant?: Grant;
  /** Where the body starts in the file. */
  start?: number;
}

/** Where devices reach the file service: the bases of its URIs, for deployments behind NAT or a proxy. */
export interface PublicUris {
  /** "coap://203.0.113.5:5683": the plain socket's address by default. */
  coap?: string;
  /** "coaps://203.0.113.5:5684": the DTLS socket's address by default. */
  coaps?: string;
  /** "coap+tcp://203.0.113.5:5683": the TCP listener's address by default. */
  'coap+tcp'?: string;
  /** "coaps+tcp://203.0.113.5:5684": the TLS listener's address by default. */
  'coaps+tcp'?: string;
  /** "https://nodered.example.com/": Node-RED's HTTP root, which the node fills in; no HTTP delivery without it. */
  http?: string;
}

/**
 * The pack's own file server for pulled packages: GET /fw/<token> on the
 * LwM2M server's UDP and DTLS sockets and its TCP and TLS listeners, answered block by block in the
 * device's Block2 size (each block a stateless GET, sliced from the file
 * with its ETag), and the same files over HTTP through a route of the node layer.
 */
export class FileService {
  private readonly grants = new Map<string, Grant>();
  /** Set while the grants of a saved state are being restored: a token not known yet may be one of them. */
  private holding = false;

  constructor(private readonly server: Lwm2mServer) {
    server.serve((request, transport) => this.answerCoap(request, transport));
  }

  get size(): number {
    return this.grants.size;
  }

  /** Answers unknown tokens with 5.03 (try again shortly) until the saved grants are back. */
  hold(until: Promise<unknown>): void {
    this.holding = true;
    const done = () => {
      this.holding = false;
    };
    until.then(done, done);
  }

  /** Lets a device fetch a package; with a token, the one it was given before a restart. */
  grant(endpoint: string, pkg: FirmwarePackage, token = randomText(16, 'base64url')): Grant {
    const grant: Grant = { token, endpoint, pkg, served: 0, options: [{ number: OptionNumber.ETag, value: pkg.etag }, OCTET_STREAM] };
    this.grants.set(token, grant);
    return grant;
  }

  find(token: string): Grant | undefined {
    return this.grants.get(token);
  }

  revoke(token: string): void {
    this.grants.delete(token);
  }

  /** The URI a device fetches a file at (its token), over coap, coaps, http or https; undefined when the server offers no such way. */
  uri(token: string, scheme: string, bases: PublicUris): string | undefined {
    if (scheme === 'http' || scheme === 'https') {
      const base = bases.http;
      if (!base || !base.startsWith(`${scheme}://`)) return undefined;
      return `${base.endsWith('/') ? base : `${base}/`}${HTTP_FILE_PATH}/${token}`;
    }
    if (!isCoapScheme(scheme)) return undefined;
    const base = bases[scheme] ?? this.boundBase(scheme);
    return base && `${base.replace(/\/+$/, '')}/${COAP_FILE_PATH}/${token}`;
  }

  /** coap://<bound address>:<port> of a listening socket; a wildcard address becomes this machine's first external address. */
  private boundBase(scheme: CoapScheme): string | undefined {
    const bound = this.server.coap.for(TRANSPORT_OF_SCHEME[scheme])?.address;
    if (!bound) return undefined;
    const host = bound.address === '0.0.0.0' || bound.address === '::' ? externalAddress(bound.address === '::') : bound.address;
    return `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${bound.port}`;
  }

  private answerCoap(request: IncomingRequest, transport: Transport): OutgoingResponse | undefined {
    const token = tokenOf(request.path);
    if (token === undefined) return undefined;
    if (request.method !== Method.GET) return diagnostic(ResponseCode.MethodNotAllowed, 'files are only read (GET)');
    const grant = this.grants.get(token);
    if (!grant && this.holding) return { ...diagnostic(ResponseCode.ServiceUnavailable, 'starting: try again'), options: [uintOptionOf(OptionNumber.MaxAge, 2)] };
    if (!grant) return diagnostic(ResponseCode.NotFound, 'no such file');
    const registration = this.allowed(grant, request.peer, transport === 'dtls' || transport === 'tls' ? 'secure' : 'plain', identityKey(request.identity));
    if (!registration) return diagnostic(ResponseCode.Forbidden, 'this file is for another device');
    this.server.presence.seen(registration);
    const total = grant.pkg.data.length;
    // Over TCP and TLS, blocks of as many 1024-byte units as the device agreed to (BERT), else RFC 7959's.
    const limits = this.server.coap.for(transport)?.blockLimits(request.peer);
    const bert = limits !== undefined && limits.bertBytes > 0;
    const answer = serveBlock2(request.message, { code: ResponseCode.Content, options: grant.options, payload: grant.pkg.data }, bert ? limits.bertBytes : undefined, bert);
    const option = uintOption(answer.options ?? [], OptionNumber.Block2);
    const block = option === undefined ? undefined : decodeBlock(option, true);
    // Counted up to the end of the block sent (the whole file when it went in one answer).
    this.served(grant, block ? Math.min(total, block.num * blockSize(block.szx) + (answer.payload?.length ?? 0)) : total);
    return answer;
  }

  /**
   * A file over HTTP(S) for the node's route, with single byte ranges
   * (RFC 9110 section 14), so a device can go on where a download broke;
   * undefined when this service does not know the token.
   */
  answerHttp(token: string, remoteAddress: string | undefined, range: string | undefined): HttpFileAnswer | undefined {
    const grant = this.grants.get(token);
    if (!grant) return undefined;
    const address = (remoteAddress ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
    const registration = this.allowed(grant, { address, port: 0 }, 'http', undefined);
    if (!registration) return { status: 403, headers: { 'Content-Type': 'text/plain' }, body: Buffer.from('this file is for another device'), reason: `${address} is not the address ${grant.endpoint} registered from` };
    this.server.presence.seen(registration);
    const total = grant.pkg.data.length;
    const etag = `"${grant.pkg.etag.toString('hex')}"`;
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes', ETag: etag, 'Cache-Control': 'no-store' };
    if (range === undefined) return { status: 200, headers: { ...headers, 'Content-Length': String(total) }, body: grant.pkg.data, grant, start: 0 };
    const match = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    let start = match && match[1] !== '' ? Number(match[1]) : NaN;
    let end = match && match[2] !== '' ? Number(match[2]) : total - 1;
    if (match && match[1] === '' && match[2] !== '') {
      start = Math.max(0, total - Number(match[2]));
      end = total - 1;
    }
    if (!Number.isSafeInteger(start) || start >= total || end < start) {
      return { status: 416, headers: { 'Content-Range': `bytes */${total}` }, reason: `range ${range} is not within the ${total}-byte file` };
    }
    end = Math.min(end, total - 1);
    return {
      status: 206,
      headers: { ...headers, 'Content-Length': String(end - start + 1), 'Content-Range': `bytes ${start}-${end}/${total}` },
      body: grant.pkg.data.subarray(start, end + 1),
      grant,
      start,
    };
  }

  /** Counts bytes written to an HTTP client (the route calls it as chunks go out). */
  served(grant: Grant, upTo: number): void {
    if (upTo <= grant.served) return;
    grant.served = upTo;
    grant.onServed?.(upTo, grant.pkg.data.length);
  }

  /**
   * The registration of the grant's device when the requester is that device:
   * over DTLS or TLS the identity it registered with; over HTTP, and over
   * plain CoAP (UDP, TCP) for a device that registered without security, the
   * address it registered from (any port: devices often download from a
   * socket of their own).
   */
  private allowed(grant: Grant, peer: Peer, via: 'plain' | 'secure' | 'http', identity: string | undefined): Registration | undefined {
    const registration = this.server.registrations.getByEndpoint(grant.endpoint);
    if (!registration) return undefined;
    if (via === 'secure') return registration.identity && identityKey(registration.identity) === identity ? registration : undefined;
    if (via === 'plain' && registration.identity) return undefined;
    return registration.address === peer.address ? registration : undefined;
  }
}

type CoapScheme = 'coap' | 'coaps' | 'coap+tcp' | 'coaps+tcp';

const TRANSPORT_OF_SCHEME: Record<CoapScheme, Transport> = { coap: 'udp', coaps: 'dtls', 'coap+tcp': 'tcp', 'coaps+tcp': 'tls' };

function isCoapScheme(scheme: string): scheme is CoapScheme {
  return scheme in TRANSPORT_OF_SCHEME;
}

/** The token of /fw/<token>, or undefined for other paths. */
function tokenOf(path: string): string | undefined {
  const prefix = `/${COAP_FILE_PATH}/`;
  if (!path.startsWith(prefix)) return undefined;
  const token = path.slice(prefix.length);
  return /^[A-Za-z0-9_-]{1,64}$/.test(token) ? token : undefined;
}

/** This machine's first address that is not loopback, for URIs when a socket listens on every address. */
export function externalAddress(ipv6: boolean): string {
  const candidates = Object.values(os.networkInterfaces())
    .flat()
    .filter((entry): entry is os.NetworkInterfaceInfo => entry !== undefined && !entry.internal);
  const wanted = candidates.find((entry) => entry.family === 'IPv4') ?? (ipv6 ? candidates.find((entry) => entry.family === 'IPv6') : undefined);
  return wanted?.address ?? '127.0.0.1';
}
