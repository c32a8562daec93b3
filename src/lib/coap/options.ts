import { OptionNumber } from './codes';
import type { CoapOption } from './message';

export function encodeUint(value: number): Buffer {
  if (value === 0) return Buffer.alloc(0);
  const bytes: number[] = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from(bytes);
}

export function decodeUint(value: Buffer): number {
  let result = 0;
  for (let i = 0; i < value.length; i++) result = result * 256 + value[i];
  return result;
}

export function findOption(options: CoapOption[], number: number): CoapOption | undefined {
  for (const option of options) if (option.number === number) return option;
  return undefined;
}

export function uintOption(options: CoapOption[], number: number): number | undefined {
  const option = findOption(options, number);
  return option === undefined ? undefined : decodeUint(option.value);
}

export function stringOptions(options: CoapOption[], number: number): string[] {
  const values: string[] = [];
  for (const option of options) if (option.number === number) values.push(option.value.toString('utf8'));
  return values;
}

/** The Uri-Path options joined as "/rd/abc" ("/" for none); built in place, with no array of segments, for every request. */
export function uriPath(options: CoapOption[]): string {
  let path = '';
  for (let i = 0; i < options.length; i++) if (options[i].number === OptionNumber.UriPath) path += '/' + options[i].value.toString('utf8');
  return path || '/';
}

export function pathOptions(number: number, path: string): CoapOption[] {
  return path
    .split('/')
    .filter((segment) => segment.length > 0)
    .map((segment) => ({ number, value: Buffer.from(segment, 'utf8') }));
}

export function queryOptions(query: Record<string, string | number | true | undefined>): CoapOption[] {
  const options: CoapOption[] = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    options.push({ number: OptionNumber.UriQuery, value: Buffer.from(value === true ? key : `${key}=${value}`, 'utf8') });
  }
  return options;
}

export function uintOptionOf(number: number, value: number): CoapOption {
  return { number, value: encodeUint(value) };
}

/** Critical options (odd numbers) this implementation understands in a request. */
const UNDERSTOOD_CRITICAL = new Set<number>([
  OptionNumber.IfMatch,
  OptionNumber.UriHost,
  OptionNumber.IfNoneMatch,
  OptionNumber.UriPort,
  OptionNumber.UriPath,
  OptionNumber.UriQuery,
  OptionNumber.Accept,
  OptionNumber.Block2,
  OptionNumber.Block1,
]);

/** The first critical option a request carries that we do not understand (RFC 7252 section 5.4.1). */
export function unrecognizedCriticalOption(options: CoapOption[]): number | undefined {
  // An index, not for...of: this runs for every datagram, requests and responses alike, and an iterator is garbage until the code is optimised.
  for (let i = 0; i < options.length; i++) {
    const number = options[i].number;
    if (number % 2 === 1 && !UNDERSTOOD_CRITICAL.has(number)) return number;
  }
  return undefined;
}
