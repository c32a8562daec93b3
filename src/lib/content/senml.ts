import { ContentFormat } from '../coap/codes';
import type { ObjectModel } from '../model/object-model';
import { Lwm2mPath } from '../model/path';
import { CborError, CborValue, decodeCbor, encodeCbor } from './cbor';
import type { ContentCodec } from './codec';
import { valueToCbor } from './text-codecs';
import { ResolvedRecord, SenmlRecord, resolveRecords } from './senml-resolver';
import { numericValue, requireUnder, sortRecords, typedRecord } from './typing';
import { ContentError, ContentRecord } from './values';
import { decodeUtf8 } from './utf8';

const VALUE_FIELDS = ['v', 'vs', 'vb', 'vd', 'vlo'] as const;
/** SenML CBOR labels (RFC 8428 section 6); "vlo" (LwM2M) stays a text key. Units and links are not LwM2M's. */
const CBOR_LABELS: Record<number, keyof SenmlRecord> = { [-1]: 'bver', [-2]: 'bn', [-3]: 'bt', [-5]: 'bv', [-6]: 'bs', 0: 'n', 2: 'v', 3: 'vs', 4: 'vb', 5: 's', 6: 't', 8: 'vd' };
const LABEL_OF: Partial<Record<keyof SenmlRecord, number | string>> = { bn: -2, bt: -3, n: 0, v: 2, vs: 3, vb: 4, t: 6, vd: 8, vlo: 'vlo' };

/** Checks one record's fields; in a Patch Pack (patch) a null value asks for the removal of what the record names. */
function fieldCheck(record: Record<string, unknown>, index: number, patch = false): SenmlRecord {
  const out: SenmlRecord = {};
  const where = `SenML record ${index}`;
  for (const [key, value] of Object.entries(record)) {
    if (patch && value === null && (VALUE_FIELDS as readonly string[]).includes(key)) {
      out.remove = true;
      continue;
    }
    switch (key) {
      case 'bn':
      case 'n':
      case 'vs':
      case 'vlo':
        if (typeof value !== 'string') throw new ContentError(`${where}: "${key}" must be a string`);
        out[key] = value;
        break;
      case 'bt':
      case 'bv':
      case 'bs':
      case 't':
      case 'v':
      case 's':
        if (typeof value !== 'number' || !Number.isFinite(value)) throw new ContentError(`${where}: "${key}" must be a number`);
        out[key] = value;
        break;
      case 'bver':
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new ContentError(`${where}: "bver" must be a positive integer`);
        out.bver = value;
        break;
      case 'vb':
        if (typeof value !== 'boolean') throw new ContentError(`${where}: "vb" must be a boolean`);
        out.vb = value;
        break;
      case 'vd':
        if (!Buffer.isBuffer(value)) throw new ContentError(`${where}: "vd" must be data`);
        out.vd = value;
        break;
      default:
        // Unknown fields ending in "_" must be understood (RFC 8428 section 4.4); others are ignored.
        if (key.endsWith('_')) throw new ContentError(`${where}: unsupported mandatory field "${key}"`);
    }
  }
  if (VALUE_FIELDS.filter((field) => out[field] !== undefined).length + (out.remove ? 1 : 0) > 1) throw new ContentError(`${where} has more than one value`);
  return out;
}

function toRecords(resolved: ResolvedRecord[], target: Lwm2mPath, model: ObjectModel, format: string): ContentRecord[] {
  const records = resolved.map((record, index) => {
    if (record.value === undefined) throw new ContentError(`${format} record ${index} (${record.path}) has no value`);
    if (record.path.length < 3) throw new ContentError(`${format} record ${index} names ${record.path}, not a resource`);
    return typedRecord(model, record.path, record.value, record.timestamp, format, record.objectLink);
  });
  requireUnder(records, target, format);
  return records;
}

function fromRecords(records: ContentRecord[], target: Lwm2mPath): SenmlRecord[] {
  const sorted = sortRecords(records);
  const below = !target.isRoot() && sorted.every((record) => record.path.length > target.length);
  const base = below ? `${target}/` : '';
  return sorted.map((record, index) => {
    const out: SenmlRecord = {};
    const name = record.path.toString();
    if (index === 0 && base) out.bn = base;
    out.n = base ? name.slice(base.length) : name;
    if (record.timestamp !== undefined) out.t = record.timestamp;
    const value = record.value;
    if (record.type === 'objlnk') out.vlo = value as string;
    else if (Buffer.isBuffer(value)) out.vd = value;
    else if (typeof value === 'boolean') out.vb = value;
    else if (typeof value === 'string') out.vs = value;
    else out.v = numericValue(record);
    return out;
  });
}

function parseJsonRecords(payload: Buffer, format: string, patch = false): SenmlRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeUtf8(payload));
  } catch (error) {
    throw new ContentError(`${format} payload is not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new ContentError(`${format} payload must be an array of records`);
  return parsed.map((record, index) => {
    if (!record || typeof record !== 'object' || Array.isArray(record)) throw new ContentError(`SenML record ${index} is not an object`);
    const { vd, ...rest } = record as Record<string, unknown>;
    if (vd !== undefined && vd !== null) {
      // base64url as RFC 8428 section 4.3 wants it; plain base64 too, which some devices write.
      if (typeof vd !== 'string' || !/^(?:[A-Za-z0-9_-]*|[A-Za-z0-9+/]*)={0,2}$/.test(vd)) throw new ContentError(`SenML record ${index}: "vd" must be base64url (or base64)`);
      return fieldCheck({ ...rest, vd: Buffer.from(vd, 'base64url') }, index, patch);
    }
    return fieldCheck(vd === null ? record : rest, index, patch);
  });
}

/** The records as JSON; extra ones (removals of a Patch Pack) follow as they are. */
function serializeJson(records: SenmlRecord[], extra: object[] = []): Buffer {
  const items: object[] = records.map((record) => (record.vd ? { ...record, vd: record.vd.toString('base64url') } : record));
  return Buffer.from(JSON.stringify(extra.length > 0 ? [...items, ...extra] : items), 'utf8');
}

function parseCborRecords(payload: Buffer, format: string, patch = false): SenmlRecord[] {
  let parsed: CborValue;
  try {
    parsed = decodeCbor(payload);
  } catch (error) {
    throw new ContentError(`${format} payload: ${(error as CborError).message}`);
  }
  if (!Array.isArray(parsed)) throw new ContentError(`${format} payload must be an array of records`);
  return parsed.map((item, index) => {
    if (!(item instanceof Map)) throw new ContentError(`SenML record ${index} is not a map`);
    const record: Record<string, unknown> = {};
    for (const [key, value] of item) {
      // Text keys: "vlo", and extensions, which fieldCheck refuses when they end in "_".
      const name = typeof key === 'number' ? CBOR_LABELS[key] : typeof key === 'string' && (key === 'vlo' || key.endsWith('_')) ? key : undefined;
      if (name === undefined) continue;
      record[name] = typeof value === 'bigint' ? Number(value) : value;
    }
    return fieldCheck(record, index, patch);
  });
}

/** The records as CBOR maps; extra ones (removals of a Patch Pack) follow as they are. */
function serializeCbor(records: SenmlRecord[], source: ContentRecord[], extra: Map<CborValue, CborValue>[] = []): Buffer {
  const sorted = sortRecords(source);
  const items = records.map((record, index) => {
    const map = new Map<CborValue, CborValue>();
    for (const [key, value] of Object.entries(record) as [keyof SenmlRecord, SenmlRecord[keyof SenmlRecord]][]) {
      const label = LABEL_OF[key]!;
      map.set(label, key === 'v' ? valueToCbor(sorted[index]) : (value as CborValue));
    }
    return map;
  });
  return encodeCbor(extra.length > 0 ? [...items, ...extra] : items);
}

/** The SenML formats: JSON or CBOR, as plain packs (RFC 8428) or as FETCH and (i)PATCH packs (RFC 8790). */
const ENCODINGS: Record<number, { name: string; cbor: boolean }> = {
  [ContentFormat.SenmlJson]: { name: 'SenML JSON', cbor: false },
  [ContentFormat.SenmlCbor]: { name: 'SenML CBOR', cbor: true },
  [ContentFormat.SenmlEtchJson]: { name: 'SenML-ETCH JSON', cbor: false },
  [ContentFormat.SenmlEtchCbor]: { name: 'SenML-ETCH CBOR', cbor: true },
};

function encodingOf(format: number): { name: string; cbor: boolean } {
  const encoding = ENCODINGS[format];
  if (!encoding) throw new ContentError(`content format ${format} is not a SenML format`);
  return encoding;
}

function parseRecords(payload: Buffer, format: number, patch = false): SenmlRecord[] {
  const { name, cbor } = encodingOf(format);
  return cbor ? parseCborRecords(payload, name, patch) : parseJsonRecords(payload, name, patch);
}

function senmlCodec(format: number, mediaType: string): ContentCodec {
  const { name, cbor } = encodingOf(format);
  return {
    format,
    name: mediaType,
    decode: (payload, target, model) => toRecords(resolveRecords(parseRecords(payload, format), name), target, model, name),
    encode: (records, target) => (cbor ? serializeCbor(fromRecords(records, target), records) : serializeJson(fromRecords(records, target))),
  };
}

export const senmlJsonCodec = senmlCodec(ContentFormat.SenmlJson, 'application/senml+json');
export const senmlCborCodec = senmlCodec(ContentFormat.SenmlCbor, 'application/senml+cbor');
/** A Patch Pack's records are SenML records (RFC 8790 section 5); only a null value (removal) is its own, see encodeSenmlPatch. */
export const senmlEtchJsonCodec = senmlCodec(ContentFormat.SenmlEtchJson, 'application/senml-etch+json');
export const senmlEtchCborCodec = senmlCodec(ContentFormat.SenmlEtchCbor, 'application/senml-etch+cbor');

/**
 * The paths of a Read-Composite or Observe-Composite request: records with
 * names only, a SenML pack or a Fetch Pack (RFC 8790 section 4), in JSON or CBOR.
 */
export function encodeSenmlPaths(paths: Lwm2mPath[], format: number): Buffer {
  const records = paths.map((path) => ({ n: path.toString() }));
  return encodingOf(format).cbor ? encodeCbor(records.map((r) => new Map<CborValue, CborValue>([[0, r.n]]))) : serializeJson(records);
}

export function decodeSenmlPaths(payload: Buffer, format: number): Lwm2mPath[] {
  const records = parseRecords(payload, format);
  if (records.length === 0) throw new ContentError(`${encodingOf(format).name} names no path`);
  return resolveRecords(records, encodingOf(format).name).map((record) => record.path);
}

/**
 * A Patch Pack (RFC 8790 section 5) for Write-Composite: the values, and for
 * each path removed a record whose value is null (LwM2M 1.2: the resource
 * instance is deleted).
 */
export function encodeSenmlPatch(records: ContentRecord[], removals: readonly Lwm2mPath[], format: number): Buffer {
  const { cbor } = encodingOf(format);
  if (format !== ContentFormat.SenmlEtchJson && format !== ContentFormat.SenmlEtchCbor && removals.length > 0) {
    throw new ContentError(`removing values needs SenML-ETCH (320 or 322), not ${encodingOf(format).name}`);
  }
  const values = fromRecords(records, Lwm2mPath.ROOT);
  const names = removals.map((path) => path.toString());
  if (cbor) return serializeCbor(values, records, names.map((name) => new Map<CborValue, CborValue>([[0, name], [2, null]])));
  return serializeJson(values, names.map((name) => ({ n: name, v: null })));
}

/** Reads the body of a Write-Composite: the values to write and, in a Patch Pack, the paths whose null value asks for their removal. */
export function decodeSenmlPatch(payload: Buffer, format: number, model: ObjectModel): { records: ContentRecord[]; removals: Lwm2mPath[] } {
  const { name } = encodingOf(format);
  // A null value means "remove" only in a Patch Pack; elsewhere it is an error like any value of the wrong kind.
  const patch = format === ContentFormat.SenmlEtchJson || format === ContentFormat.SenmlEtchCbor;
  const resolved = resolveRecords(parseRecords(payload, format, patch), name);
  const removals = resolved.filter((record) => record.removed).map((record) => record.path);
  return { records: toRecords(resolved.filter((record) => !record.removed), Lwm2mPath.ROOT, model, name), removals };
}
