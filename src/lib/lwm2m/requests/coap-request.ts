import { OptionNumber } from '../../coap/codes';
import type { OutgoingRequest } from '../../coap/endpoint';
import type { CoapOption } from '../../coap/message';
import { uintOptionOf } from '../../coap/options';
import type { CoapRequestSpec } from './device-request';

/** Uri-Path options of ids below 1024 (object, instance and resource ids are mostly small), made once: every request names a path. */
const ID_SEGMENTS: CoapOption[] = [];

function idSegment(id: number): CoapOption {
  if (id >= 1024) return { number: OptionNumber.UriPath, value: Buffer.from(String(id)) };
  return (ID_SEGMENTS[id] ??= { number: OptionNumber.UriPath, value: Buffer.from(String(id)) });
}

/** The CoAP request for an operation, its path below the device's alternate root path. */
export function toCoapRequest(spec: CoapRequestSpec, rootPath = '/'): OutgoingRequest {
  // Pushed in option number order (6, 11, 12, 15, 17), so nothing needs sorting.
  const options: CoapOption[] = [];
  if (spec.observe !== undefined) options.push(uintOptionOf(OptionNumber.Observe, spec.observe));
  if (rootPath !== '/') for (const segment of rootPath.split('/').filter(Boolean)) options.push({ number: OptionNumber.UriPath, value: Buffer.from(segment) });
  for (const id of spec.path.ids) options.push(idSegment(id));
  if (spec.contentFormat !== undefined) options.push(uintOptionOf(OptionNumber.ContentFormat, spec.contentFormat));
  if (spec.query) for (const query of spec.query) options.push({ number: OptionNumber.UriQuery, value: Buffer.from(query) });
  if (spec.accept !== undefined) options.push(uintOptionOf(OptionNumber.Accept, spec.accept));
  return { code: spec.method, options, payload: spec.payload };
}

const CODE_NAMES: Record<string, string> = {
  '4.00': 'Bad Request',
  '4.01': 'Unauthorized',
  '4.02': 'Bad Option',
  '4.03': 'Forbidden',
  '4.04': 'Not Found',
  '4.05': 'Method Not Allowed',
  '4.06': 'Not Acceptable',
  '4.08': 'Request Entity Incomplete',
  '4.12': 'Precondition Failed',
  '4.13': 'Request Entity Too Large',
  '4.15': 'Unsupported Content-Format',
  '5.00': 'Internal Server Error',
  '5.01': 'Not Implemented',
  '5.03': 'Service Unavailable',
};

/** "4.04 Not Found: no resource /3/0/99" for an error answer. */
export function describeErrorCode(code: string, payload: Buffer): string {
  const detail = payload.length > 0 ? `: ${payload.toString('utf8').slice(0, 200)}` : '';
  return `${code} ${CODE_NAMES[code] ?? ''}`.trim() + detail;
}
