import { ContentFormat } from '../coap/codes';
import { Lwm2mPath, PathError } from '../model/path';
import type { ContentCodec } from './codec';
import { joinName, modelType, numericValue, requireUnder, sortRecords, typedRecord } from './typing';
import { ContentError, ResourceValue } from './values';
import { decodeUtf8 } from './utf8';

interface Entry {
  n?: string;
  v?: number;
  sv?: string;
  bv?: boolean;
  ov?: string;
  t?: number;
}

const RELATIVE_TIME_LIMIT = 2 ** 28;

/** application/vnd.oma.lwm2m+json (11543), the LwM2M 1.0 JSON format. */
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
    const base = bn ?? (target.isRoot() ? '/' : `${target}/`);
    const now = Date.now() / 1000;
    const records = e.map((item, index) => {
      if (!item || typeof item !== 'object' || Array.isArray(item)) throw new ContentError(`LwM2M JSON entry ${index} is not an object`);
      const entry = item as Entry;
      if (entry.n !== undefined && typeof entry.n !== 'string') throw new ContentError(`LwM2M JSON entry ${index}: "n" must be a string`);
      const name = entry.n === undefined ? base.replace(/\/$/, '') : joinName(base, entry.n);
      let path: Lwm2mPath;
      try {
        path = Lwm2mPath.parse(name);
      } catch (error) {
        throw new ContentError(`LwM2M JSON entry ${index}: "${name}" is not an LwM2M path (${(error as PathError).message})`);
      }
      if (path.length < 3) throw new ContentError(`LwM2M JSON entry ${index} names ${path}, not a resource`);
      const value = entryValue(entry, index, modelType(model, path) === 'opaque');
      let timestamp: number | undefined;
      if (entry.t !== undefined || bt !== undefined) {
        if (entry.t !== undefined && (typeof entry.t !== 'number' || !Number.isFinite(entry.t))) {
          throw new ContentError(`LwM2M JSON entry ${index}: "t" must be a number`);
        }
        const time = ((bt as number | undefined) ?? 0) + (entry.t ?? 0);
        timestamp = time < RELATIVE_TIME_LIMIT ? now + time : time;
      }
      return typedRecord(model, path, value, timestamp, 'LwM2M JSON');
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

function entryValue(entry: Entry, index: number, opaque: boolean): ResourceValue {
  const present = (['v', 'sv', 'bv', 'ov'] as const).filter((key) => entry[key] !== undefined);
  if (present.length !== 1) throw new ContentError(`LwM2M JSON entry ${index} must have exactly one of v, sv, bv, ov`);
  const where = `LwM2M JSON entry ${index}`;
  switch (present[0]) {
    case 'v':
      if (typeof entry.v !== 'number' || !Number.isFinite(entry.v)) throw new ContentError(`${where}: "v" must be a number`);
      return entry.v;
    case 'sv':
      if (typeof entry.sv !== 'string') throw new ContentError(`${where}: "sv" must be a string`);
      // Opaque values travel as base64 text in this format.
      return opaque ? Buffer.from(entry.sv, 'base64') : entry.sv;
    case 'bv':
      if (typeof entry.bv !== 'boolean') throw new ContentError(`${where}: "bv" must be a boolean`);
      return entry.bv;
    case 'ov':
      if (typeof entry.ov !== 'string') throw new ContentError(`${where}: "ov" must be a string`);
      return entry.ov;
  }
}
