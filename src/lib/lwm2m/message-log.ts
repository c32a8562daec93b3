import { ContentFormat, MethodName, OptionNumber, codeClass, formatCode } from '../coap/codes';
import type { MessageTap } from '../coap/endpoint';
import { CoapMessage, decode } from '../coap/message';
import { decodeUint } from '../coap/options';
import { PeerKey, peerKey } from '../coap/peer';
import { decodeFrame } from '../coap/tcp-framing';
import { decodeContent, formatName } from '../content/formats';
import type { ObjectModel } from '../model/object-model';
import { Lwm2mPath } from '../model/path';
import type { Transport } from './registration';

/** One CoAP message to or from a device, decoded for people. */
export interface LogEntry {
  /** When it was received or sent (ms since 1970). */
  time: number;
  direction: 'in' | 'out';
  /** Over UDP and DTLS; messages over TCP and TLS have no type nor message id (RFC 8323). */
  type?: 'CON' | 'NON' | 'ACK' | 'RST';
  /** "GET", "POST"... for requests, "2.05 Content"-style codes for responses, "" for an empty message. */
  code: string;
  messageId?: number;
  /** Hex. */
  token: string;
  path?: string;
  query?: string[];
  observe?: number;
  contentFormat?: string;
  accept?: string;
  block1?: string;
  block2?: string;
  /** Payload bytes. */
  size: number;
  /** The payload decoded: text, values by path, or hex when it does not decode. */
  payload?: string;
  /** For a response: milliseconds since the request it answers. */
  elapsedMs?: number;
}

const TYPES = ['CON', 'NON', 'ACK', 'RST'] as const;
const TEXT_FORMATS: readonly number[] = [ContentFormat.TextPlain, ContentFormat.LinkFormat];
const PREVIEW_CHARACTERS = 400;
/** Requests remembered per device to time their responses. */
const OPEN_REQUESTS = 16;

interface Watched {
  endpoint: string;
  entries: LogEntry[];
  /** Token (or message id) of recent requests -> when they went and to which path. */
  open: Map<string, { time: number; path: Lwm2mPath }>;
}

/**
 * The last messages of the devices someone is looking at, as the endpoints'
 * tap sees them. Only watched devices are recorded; with none watched the
 * server removes the taps and nothing is decoded.
 */
export class MessageLog {
  private readonly byPeer: Record<Transport, Map<PeerKey, Watched>> = { udp: new Map(), dtls: new Map(), tcp: new Map(), tls: new Map() };
  private readonly byEndpoint = new Map<string, { watched: Watched; transport: Transport; key: PeerKey }>();

  constructor(
    private readonly model: () => ObjectModel,
    private readonly onEntry: (endpoint: string, entry: LogEntry) => void,
    private readonly capacity = 100,
  ) {}

  get watching(): number {
    return this.byEndpoint.size;
  }

  /** Records a device's messages from now on, at its current address (again after it moved). */
  watch(endpoint: string, transport: Transport, address: string, port: number): void {
    const previous = this.byEndpoint.get(endpoint);
    const watched = previous?.watched ?? { endpoint, entries: [], open: new Map() };
    if (previous) this.byPeer[previous.transport].delete(previous.key);
    const key = peerKey(address, port);
    this.byPeer[transport].set(key, watched);
    this.byEndpoint.set(endpoint, { watched, transport, key });
  }

  unwatch(endpoint: string): void {
    const entry = this.byEndpoint.get(endpoint);
    if (!entry) return;
    this.byPeer[entry.transport].delete(entry.key);
    this.byEndpoint.delete(endpoint);
  }

  isWatched(endpoint: string): boolean {
    return this.byEndpoint.has(endpoint);
  }

  entries(endpoint: string): LogEntry[] {
    return [...(this.byEndpoint.get(endpoint)?.watched.entries ?? [])];
  }

  /** What an endpoint of this transport hands its messages to: datagrams over UDP and DTLS, frames over TCP and TLS. */
  tap(transport: Transport): MessageTap {
    const peers = this.byPeer[transport];
    const stream = transport === 'tcp' || transport === 'tls';
    return {
      received: (message, address, port) => {
        const watched = peers.get(peerKey(address, port));
        if (watched) this.record(watched, message, 'in', stream);
      },
      sent: (bytes, address, port) => {
        const watched = peers.get(peerKey(address, port));
        if (!watched) return;
        try {
          this.record(watched, stream ? decodeFrame(bytes) : decode(bytes), 'out', stream);
        } catch {
          // Only our own encoder's messages come here.
        }
      },
    };
  }

  private record(watched: Watched, message: CoapMessage, direction: 'in' | 'out', stream: boolean): void {
    const time = Date.now();
    const entry: LogEntry = {
      time,
      direction,
      code: describeCode(message.code),
      token: message.token.toString('hex'),
      size: message.payload.length,
    };
    if (!stream) {
      entry.type = TYPES[message.type];
      entry.messageId = message.messageId;
    }
    const path: string[] = [];
    const query: string[] = [];
    let format: number | undefined;
    for (const option of message.options) {
      switch (option.number) {
        case OptionNumber.UriPath:
          path.push(option.value.toString('utf8'));
          break;
        case OptionNumber.UriQuery:
          query.push(option.value.toString('utf8'));
          break;
        case OptionNumber.Observe:
          entry.observe = decodeUint(option.value);
          break;
        case OptionNumber.ContentFormat:
          format = decodeUint(option.value);
          entry.contentFormat = formatName(format);
          break;
        case OptionNumber.Accept:
          entry.accept = formatName(decodeUint(option.value));
          break;
        case OptionNumber.Block1:
          entry.block1 = describeBlock(decodeUint(option.value));
          break;
        case OptionNumber.Block2:
          entry.block2 = describeBlock(decodeUint(option.value));
          break;
      }
    }
    if (path.length > 0) entry.path = '/' + path.join('/');
    if (query.length > 0) entry.query = query;
    const key = message.token.length > 0 ? entry.token : `#${message.messageId}`;
    let target = Lwm2mPath.ROOT;
    if (codeClass(message.code) === 0 && message.code !== 0) {
      target = pathOf(entry.path);
      watched.open.set(key, { time, path: target });
      if (watched.open.size > OPEN_REQUESTS) watched.open.delete(watched.open.keys().next().value as string);
    } else if (message.code !== 0) {
      const request = watched.open.get(key);
      if (request) {
        entry.elapsedMs = time - request.time;
        target = request.path;
        // Notifications keep coming under the same token: the first response is what the request waited for.
        if (entry.observe === undefined) watched.open.delete(key);
      }
    }
    if (message.payload.length > 0) entry.payload = this.preview(message.payload, format, target);
    watched.entries.push(entry);
    if (watched.entries.length > this.capacity) watched.entries.shift();
    this.onEntry(watched.endpoint, entry);
  }

  private preview(payload: Buffer, format: number | undefined, target: Lwm2mPath): string {
    if (format === undefined || TEXT_FORMATS.includes(format) || format === ContentFormat.SenmlJson || format === ContentFormat.Lwm2mJson) {
      const text = payload.toString('utf8');
      if (format !== ContentFormat.SenmlJson && format !== ContentFormat.Lwm2mJson) return clip(text);
    }
    if (format === ContentFormat.OctetStream) return clip(`0x${payload.toString('hex')}`);
    try {
      const records = decodeContent(payload, format, target, this.model());
      return clip(records.map((record) => `${record.path}=${describeValue(record.value)}`).join(', '));
    } catch {
      return clip(`0x${payload.toString('hex')}`);
    }
  }
}

function describeCode(code: number): string {
  if (code === 0) return '';
  if (codeClass(code) === 0) return MethodName[code] ?? formatCode(code);
  return formatCode(code);
}

function describeBlock(value: number): string {
  return `${value >> 4}${value & 8 ? '+' : ''}/${16 << (value & 7)}`;
}

function pathOf(text: string | undefined): Lwm2mPath {
  try {
    return text ? Lwm2mPath.parse(text) : Lwm2mPath.ROOT;
  } catch {
    return Lwm2mPath.ROOT;
  }
}

function describeValue(value: unknown): string {
  if (Buffer.isBuffer(value)) return `0x${value.toString('hex')}`;
  if (value instanceof Date) return value.toISOString();
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function clip(text: string): string {
  return text.length > PREVIEW_CHARACTERS ? `${text.slice(0, PREVIEW_CHARACTERS)}…` : text;
}
