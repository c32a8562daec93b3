import type { ObjectModel } from '../model/object-model';
import type { Lwm2mPath } from '../model/path';
import { ContentFormat } from '../coap/codes';
import { CborError, CborFloat, CborTag, CborValue, decodeCbor, encodeCbor } from './cbor';
import { plainDecimal } from './decimal';
import { modelType, requireLeaf } from './typing';
import { ContentError, ContentRecord, ResourceType, ResourceValue, coerceValue, isObjectLink, timeToSeconds } from './values';
import type { ContentCodec } from './codec';
import { decodeUtf8 } from './utf8';


function single(records: ContentRecord[], target: Lwm2mPath, format: string): ContentRecord {
  if (records.length !== 1 || !records[0].path.equals(target)) {
    throw new ContentError(`${format} carries exactly one value for ${target}; got ${records.length}`);
  }
  return records[0];
}

/** text/plain (0): one value as text; opaque as base64 (LwM2M 1.1). */
export const textCodec: ContentCodec = {
  format: ContentFormat.TextPlain,
  name: 'text/plain',
  decode(payload, target, model) {
    requireLeaf(target, 'text/plain');
    let text: string;
    try {
      text = decodeUtf8(payload);
    } catch {
      throw new ContentError('text/plain payload is not valid UTF-8');
    }
    const type = modelType(model, target) ?? 'string';
    return [{ path: target, type, value: parseText(text, type, target) }];
  },
  encode(records, target) {
    const record = single(records, target, 'text/plain');
    return Buffer.from(formatText(record.value, record.type), 'utf8');
  },
};

function parseText(text: string, type: ResourceType, target: Lwm2mPath): ResourceValue {
  if (type === 'opaque') {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text.trim())) throw new ContentError(`text/plain opaque value at ${target} is not base64`);
    return Buffer.from(text, 'base64');
  }
  if (type === 'boolean' && text !== '0' && text !== '1') throw new ContentError(`text/plain boolean at ${target} must be 0 or 1, not ${JSON.stringify(text)}`);
  if (type === 'float' && !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text.trim())) {
    throw new ContentError(`text/plain float at ${target} is not a number: ${JSON.stringify(text)}`);
  }
  try {
    return coerceValue(text, type === 'none' ? 'string' : type, `text/plain value at ${target}`);
  } catch (error) {
    throw new ContentError((error as Error).message);
  }
}

function formatText(value: ResourceValue, type: ResourceType): string {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (value instanceof Date) return String(timeToSeconds(value));
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (typeof value === 'number') {
    const plain = plainDecimal(value);
    // A float stays recognisably a float on the wire: 21.0, not 21.
    return type === 'float' && Number.isInteger(value) ? `${plain}.0` : plain;
  }
  return String(value);
}

/** application/octet-stream (42): the bytes of one opaque value. */
export const opaqueCodec: ContentCodec = {
  format: ContentFormat.OctetStream,
  name: 'application/octet-stream',
  decode(payload, target, model) {
    requireLeaf(target, 'opaque');
    const type = modelType(model, target);
    if (type !== undefined && type !== 'opaque') throw new ContentError(`${target} is ${type}; the device sent opaque bytes`);
    return [{ path: target, type: 'opaque', value: Buffer.from(payload) }];
  },
  encode(records, target) {
    const record = single(records, target, 'opaque');
    if (!Buffer.isBuffer(record.value)) throw new ContentError(`only opaque values can be sent as application/octet-stream; ${target} is ${record.type}`);
    return record.value;
  },
};

/** application/cbor (60): one value as a CBOR item (LwM2M 1.2). */
export const cborValueCodec: ContentCodec = {
  format: ContentFormat.Cbor,
  name: 'application/cbor',
  decode(payload, target, model) {
    requireLeaf(target, 'CBOR');
    let item: CborValue;
    try {
      item = decodeCbor(payload);
    } catch (error) {
      throw new ContentError(`CBOR payload: ${(error as CborError).message}`);
    }
    return [cborLeaf(item, target, model)];
  },
  encode(records, target) {
    return encodeCbor(valueToCbor(single(records, target, 'CBOR')));
  },
};

/** A CBOR leaf (from CBOR, SenML CBOR or LwM2M CBOR) typed by the model where it knows the resource. */
export function cborLeaf(item: CborValue, path: Lwm2mPath, model: ObjectModel): ContentRecord {
  const type = modelType(model, path);
  let value: ResourceValue;
  if (item instanceof CborTag && item.tag === 1 && typeof item.value === 'number') value = new Date(item.value * 1000);
  else if (typeof item === 'bigint') value = item <= BigInt(Number.MAX_SAFE_INTEGER) && item >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(item) : String(item);
  else if (typeof item === 'number' || typeof item === 'string' || typeof item === 'boolean' || Buffer.isBuffer(item)) value = item;
  else throw new ContentError(`CBOR value at ${path} is not a resource value`);

  if (type === undefined || type === 'none') return { path, value, type: inferCborType(value) };
  if (type === 'time' && typeof value === 'number') value = new Date(Math.trunc(value) * 1000);
  if (type === 'objlnk' && !isObjectLink(value)) throw new ContentError(`object link at ${path} must look like "3:0"`);
  try {
    return { path, type, value: coerceStrict(value, type, path) };
  } catch (error) {
    throw new ContentError((error as Error).message);
  }
}

function inferCborType(value: ResourceValue): ResourceType {
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'float';
  if (typeof value === 'boolean') return 'boolean';
  if (Buffer.isBuffer(value)) return 'opaque';
  if (value instanceof Date) return 'time';
  return 'string';
}

/** Self-describing formats must already carry the right kind of value: no text-to-number guessing. */
function coerceStrict(value: ResourceValue, type: ResourceType, path: Lwm2mPath): ResourceValue {
  const kind = Buffer.isBuffer(value) ? 'opaque' : value instanceof Date ? 'time' : typeof value;
  const expected: Record<ResourceType, string[]> = {
    string: ['string'],
    corelnk: ['string'],
    objlnk: ['string'],
    integer: ['number'],
    unsigned: ['number'],
    float: ['number'],
    boolean: ['boolean'],
    opaque: ['opaque'],
    time: ['time'],
    none: [],
  };
  if (!expected[type].includes(kind)) throw new ContentError(`${path} is ${type}; the device sent ${kind}`);
  return coerceValue(value, type, `${path}`);
}

export function valueToCbor(record: ContentRecord): CborValue {
  const value = record.value;
  if (value instanceof Date) return timeToSeconds(value);
  if (record.type === 'float' && typeof value === 'number' && Number.isInteger(value)) {
    // Keep a float a float on the wire: 21 would otherwise go out as an integer.
    return new CborFloat(value);
  }
  return value;
}
