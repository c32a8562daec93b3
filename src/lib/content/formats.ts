import { ContentFormat } from '../coap/codes';
import type { ObjectModel } from '../model/object-model';
import type { Lwm2mPath } from '../model/path';
import type { ContentCodec } from './codec';
import { lwm2mCborCodec } from './lwm2m-cbor';
import { lwm2mJsonCodec } from './lwm2m-json';
import { senmlCborCodec, senmlEtchCborCodec, senmlEtchJsonCodec, senmlJsonCodec } from './senml';
import { cborValueCodec, opaqueCodec, textCodec } from './text-codecs';
import { tlvCodec } from './tlv';
import { ContentError, ContentRecord } from './values';

const CODECS = new Map<number, ContentCodec>(
  [textCodec, opaqueCodec, cborValueCodec, tlvCodec, lwm2mJsonCodec, senmlJsonCodec, senmlCborCodec, senmlEtchJsonCodec, senmlEtchCborCodec, lwm2mCborCodec].map((codec) => [
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
  'senml-etch-json': ContentFormat.SenmlEtchJson,
  'senml-etch-cbor': ContentFormat.SenmlEtchCbor,
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

/** Decodes a device's payload in its Content-Format, or in the one inferred for a payload without (see decodeUnlabelled). */
export function decodeContent(payload: Buffer, format: number | undefined, target: Lwm2mPath, model: ObjectModel): ContentRecord[] {
  if (format === undefined) return decodeUnlabelled(payload, target, model);
  const codec = CODECS.get(format);
  if (!codec) throw new ContentError(`the device answered in content format ${format}, which this server cannot decode`);
  return codec.decode(payload, target, model);
}

/**
 * A payload without Content-Format, read by what the request path and the
 * object model say rather than always as text/plain: one value as text/plain,
 * or as opaque bytes where the model types it opaque, then as TLV (what LwM2M
 * 1.0 devices send); several values (an object, an instance, a multiple
 * resource), which text cannot carry, as SenML JSON when the payload starts
 * with "[", LwM2M JSON with "{", else TLV, SenML CBOR, LwM2M CBOR. The first
 * that decodes wins; when none does, the error names the first one tried.
 */
function decodeUnlabelled(payload: Buffer, target: Lwm2mPath, model: ObjectModel): ContentRecord[] {
  const candidates = unlabelledFormats(payload, target, model);
  let reason: ContentError | undefined;
  for (const format of candidates) {
    try {
      return CODECS.get(format)!.decode(payload, target, model);
    } catch (error) {
      if (!(error instanceof ContentError)) throw error;
      reason ??= error;
    }
  }
  throw new ContentError(`the device answered without a Content-Format, read as ${formatName(candidates[0])} for ${target}: ${reason!.message}`);
}

function unlabelledFormats(payload: Buffer, target: Lwm2mPath, model: ObjectModel): number[] {
  const resource = model.getResource(target.objectId, target.resourceId);
  const oneValue = target.isResourceInstance() || (target.isResource() && resource?.multiple !== true);
  if (oneValue) return resource?.type === 'opaque' ? [ContentFormat.OctetStream] : [ContentFormat.TextPlain, ContentFormat.Tlv];
  let first = 0;
  while (first < payload.length && (payload[first] === 0x20 || payload[first] === 0x09 || payload[first] === 0x0a || payload[first] === 0x0d)) first++;
  if (payload[first] === 0x5b) return [ContentFormat.SenmlJson];
  if (payload[first] === 0x7b) return [ContentFormat.Lwm2mJson];
  return [ContentFormat.Tlv, ContentFormat.SenmlCbor, ContentFormat.Lwm2mCbor];
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

/** Formats that say of each value what it is (number, text, boolean, bytes, link), best first. */
const TYPED_PREFERENCE = MULTI_VALUE_PREFERENCE.filter((format) => format !== ContentFormat.Tlv);

/**
 * The format to ask for when reading or observing target, when the flow names
 * none: for several values the best multi-value format the device advertised;
 * for one value the device's choice (mostly text/plain), unless the object
 * model does not know the resource: then the best format that carries types,
 * so that values outside the model come out as numbers, text, booleans, bytes
 * whatever format the device prefers, instead of text or TLV bytes.
 */
export function chooseReadFormat(target: Lwm2mPath, model: ObjectModel, advertised: readonly number[], lwm2mVersion: string): number | undefined {
  if (advertised.length === 0) return undefined;
  const resource = model.getResource(target.objectId, target.resourceId);
  if (target.length < 3 || (target.isResource() && resource?.multiple === true)) return chooseMultiValueFormat(advertised, lwm2mVersion);
  if (resource !== undefined) return undefined;
  return TYPED_PREFERENCE.find((format) => advertised.includes(format));
}

export function chooseMultiValueFormat(advertised: readonly number[], lwm2mVersion: string): number {
  const best = MULTI_VALUE_PREFERENCE.find((format) => advertised.includes(format));
  if (best !== undefined) return best;
  return lwm2mVersion === '1.0' ? ContentFormat.Tlv : ContentFormat.SenmlCbor;
}
