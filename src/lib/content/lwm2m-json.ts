import { ContentFormat } from '../coap/codes';
import type { ContentCodec } from './codec';
import { SenmlRecord, resolveRecords } from './senml-resolver';
import { modelType, numericValue, requireUnder, sortRecords, typedRecord } from './typing';
import { ContentError } from './values';
import { decodeUtf8 } from './utf8';

interface Entry {
  n?: string;
  v?: number;
  sv?: string;
  bv?: boolean;
  ov?: string;
  t?: number;
}

/** application/vnd.oma.lwm2m+json (11543), the LwM2M 1.0 JSON format: resolved like SenML, whose ancestor it is. */
export const lwm2mJsonCodec: ContentCodec = {
  format: ContentFormat.Lwm2mJson,
  name: 'application/vnd.oma.lwm2m+json',
  decode(payload, target, model) {
    let document: unknown;
    try {
      document = JSON.parse(decodeUtf8(payload));
    } catch (error) {
      throw new ContentError(`LwM2M JSON payload is not JSON: ${(error as Error).message}`);
    }
    if (!document || typeof document !== 'object' || Array.isArray(document)) throw new ContentError('LwM2M JSON payload must be an object');
    const { bn, bt, e } = document as { bn?: unknown; bt?: unknown; e?: unknown };
    if (bn !== undefined && typeof bn !== 'string') throw new ContentError('LwM2M JSON "bn" must be a string');
    if (bt !== undefined && (typeof bt !== 'number' || !Number.isFinite(bt))) throw new ContentError('LwM2M JSON "bt" must be a number');
    if (!Array.isArray(e)) throw new ContentError('LwM2M JSON payload has no "e" array');
    const entries = e.map(toSenml);
    if (entries.length > 0 && bt !== undefined) entries[0].bt = bt;
    const resolved = resolveRecords(entries, 'LwM2M JSON', bn ?? (target.isRoot() ? '/' : `${target}/`));
    const records = resolved.map(({ path, value, timestamp, objectLink }, index) => {
      if (path.length < 3) throw new ContentError(`LwM2M JSON entry ${index} names ${path}, not a resource`);
      // Opaque values travel as base64 text in this format.
      const bytes = typeof value === 'string' && entries[index].vs !== undefined && modelType(model, path) === 'opaque';
      return typedRecord(model, path, bytes ? Buffer.from(value, 'base64') : value!, timestamp, 'LwM2M JSON', objectLink);
    });
    requireUnder(records, target, 'LwM2M JSON');
    return records;
  },

  encode(records, target) {
    requireUnder(records, target, 'LwM2M JSON');
    const sorted = sortRecords(records);
    const below = !target.isRoot() && sorted.every((record) => record.path.length > target.length);
    const base = below ? `${target}/` : '/';
    const e = sorted.map((record) => {
      const entry: Entry = { n: record.path.toString().slice(base.length) };
      const value = record.value;
      if (record.type === 'objlnk') entry.ov = value as string;
      else if (Buffer.isBuffer(value)) entry.sv = value.toString('base64');
      else if (typeof value === 'boolean') entry.bv = value;
      else if (typeof value === 'string') entry.sv = value;
      else entry.v = numericValue(record);
      if (record.timestamp !== undefined) entry.t = record.timestamp;
      return entry;
    });
    return Buffer.from(JSON.stringify({ bn: base, e }), 'utf8');
  },
};

/** An entry as a SenML record: exactly one of v, sv, bv (boolean here), ov. */
function toSenml(item: unknown, index: number): SenmlRecord {
  const where = `LwM2M JSON entry ${index}`;
  if (!item || typeof item !== 'object' || Array.isArray(item)) throw new ContentError(`${where} is not an object`);
  const entry = item as Entry;
  const record: SenmlRecord = {};
  if (entry.n !== undefined) {
    if (typeof entry.n !== 'string') throw new ContentError(`${where}: "n" must be a string`);
    record.n = entry.n;
  }
  if (entry.t !== undefined) {
    if (typeof entry.t !== 'number' || !Number.isFinite(entry.t)) throw new ContentError(`${where}: "t" must be a number`);
    record.t = entry.t;
  }
  const present = (['v', 'sv', 'bv', 'ov'] as const).filter((key) => entry[key] !== undefined);
  if (present.length !== 1) throw new ContentError(`${where} must have exactly one of v, sv, bv, ov`);
  switch (present[0]) {
    case 'v':
      if (typeof entry.v !== 'number' || !Number.isFinite(entry.v)) throw new ContentError(`${where}: "v" must be a number`);
      record.v = entry.v;
      break;
    case 'sv':
      if (typeof entry.sv !== 'string') throw new ContentError(`${where}: "sv" must be a string`);
      record.vs = entry.sv;
      break;
    case 'bv':
      if (typeof entry.bv !== 'boolean') throw new ContentError(`${where}: "bv" must be a boolean`);
      record.vb = entry.bv;
      break;
    case 'ov':
      if (typeof entry.ov !== 'string') throw new ContentError(`${where}: "ov" must be a string`);
      record.vlo = entry.ov;
      break;
  }
  return record;
}
