import { ContentFormat } from '../coap/codes';
import type { ObjectModel } from '../model/object-model';
import type { Lwm2mPath } from '../model/path';
import type { ContentCodec } from './codec';
import { lwm2mCborCodec } from './lwm2m-cbor';
import { lwm2mJsonCodec } from './lwm2m-json';
import { senmlCborCodec, senmlJsonCodec } from './senml';
import { cborValueCodec, opaqueCodec, textCodec } from './text-codecs';
import { tlvCodec } from './tlv';
import { ContentError, ContentRecord } from './values';

const CODECS = new Map<number, ContentCodec>(
  [textCodec, opaqueCodec, cborValueCodec, tlvCodec, lwm2mJsonCodec, senmlJsonCodec, senmlCborCodec, lwm2mCborCodec].map((codec) => [
    codec.format,
    codec,
  ]),
);

/** Names users may give instead of numbers, in node settings and msg.contentFormat. */
export const FORMAT_NAMES: Record<string, number> = {
  text: ContentFormat.TextPlain,
  opaque: ContentFormat.OctetStream,
  cbor: ContentFormat.Cbor,
  tlv: ContentFormat.Tlv,
  json: ContentFormat.Lwm2mJson,
  'lwm2m-json': ContentFormat.Lwm2mJson,
  'senml-json': ContentFormat.SenmlJson,
  'senml-cbor': ContentFormat.SenmlCbor,
  'lwm2m-cbor': ContentFormat.Lwm2mCbor,
  link: ContentFormat.LinkFormat,
};

/** Accepts a content format as a number or one of FORMAT_NAMES; throws with the choices otherwise. */
export function parseContentFormat(value: unknown): number {
  if (typeof value === 'number' && CODECS.has(value)) return value;
  if (typeof value === 'string') {
    const trimmed = value.trim().toLowerCase();
    if (FORMAT_NAMES[trimmed] !== undefined && trimmed !== 'link') return FORMAT_NAMES[trimmed];
    if (/^\d+$/.test(trimmed) && CODECS.has(Number(trimmed))) return Number(trimmed);
  }
  throw new ContentError(
    `unknown content format ${JSON.stringify(value)}: use one of ${Object.keys(FORMAT_NAMES).filter((n) => n !== 'link').join(', ')} or ${[...CODECS.keys()].join(', ')}`,
  );
}

export function formatName(format: number | undefined): string {
  if (format === undefined) return 'none';
  if (format === ContentFormat.LinkFormat) return 'application/link-format';
  return CODECS.get(format)?.name ?? String(format);
}

export function isSupportedFormat(format: number): boolean {
  return CODECS.has(format);
}

/** Decodes a device's payload; a missing Content-Format means text/plain (RFC 7252 section 5.10.3). */
export function decodeContent(payload: Buffer, format: number | undefined, target: Lwm2mPath, model: ObjectModel): ContentRecord[] {
  const codec = CODECS.get(format ?? ContentFormat.TextPlain);
  if (!codec) throw new ContentError(`the device answered in content format ${format}, which this server cannot decode`);
  return codec.decode(payload, target, model);
}

export function encodeContent(records: ContentRecord[], format: number, target: Lwm2mPath, model: ObjectModel): Buffer {
  const codec = CODECS.get(format);
  if (!codec) throw new ContentError(`cannot encode content format ${format}`);
  return codec.encode(records, target, model);
}

/** Formats that carry several resources, best first. */
const MULTI_VALUE_PREFERENCE = [
  ContentFormat.Lwm2mCbor,
  ContentFormat.SenmlCbor,
  ContentFormat.SenmlJson,
  ContentFormat.Tlv,
  ContentFormat.Lwm2mJson,
];

/**
 * The format to write with, when the flow names none: the best multi-value
 * format the device advertised (ct) for several values; text/plain or
 * opaque for one resource; TLV for a device that advertised nothing (LwM2M 1.0's mandatory format).
 */
export function chooseWriteFormat(records: ContentRecord[], target: Lwm2mPath, advertised: readonly number[], lwm2mVersion: string): number {
  const singleValue = records.length === 1 && records[0].path.equals(target);
  if (singleValue) return records[0].type === 'opaque' ? ContentFormat.OctetStream : ContentFormat.TextPlain;
  return chooseMultiValueFormat(advertised, lwm2mVersion);
}

export function chooseMultiValueFormat(advertised: readonly number[], lwm2mVersion: string): number {
  const best = MULTI_VALUE_PREFERENCE.find((format) => advertised.includes(format));
  if (best !== undefined) return best;
  return lwm2mVersion === '1.0' ? ContentFormat.Tlv : ContentFormat.SenmlCbor;
}
