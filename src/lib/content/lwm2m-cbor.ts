import { ContentFormat } from '../coap/codes';
import type { ObjectModel } from '../model/object-model';
import { Lwm2mPath } from '../model/path';
import { CborError, CborValue, decodeCbor, encodeCbor } from './cbor';
import type { ContentCodec } from './codec';
import { cborLeaf, valueToCbor } from './text-codecs';
import { requireUnder, sortRecords } from './typing';
import { ContentError, ContentRecord } from './values';

/**
 * application/vnd.oma.lwm2m+cbor (11544, LwM2M 1.2): nested maps keyed by
 * path ids from the root, where a key may also be an array of ids.
 */
export const lwm2mCborCodec: ContentCodec = {
  format: ContentFormat.Lwm2mCbor,
  name: 'application/vnd.oma.lwm2m+cbor',
  decode(payload, target, model) {
    let root: CborValue;
    try {
      root = decodeCbor(payload);
    } catch (error) {
      throw new ContentError(`LwM2M CBOR payload: ${(error as CborError).message}`);
    }
    if (!(root instanceof Map)) throw new ContentError('LwM2M CBOR payload must be a map');
    const records: ContentRecord[] = [];
    walk(root, [], model, records);
    requireUnder(records, target, 'LwM2M CBOR');
    return records;
  },
  encode(records, target) {
    requireUnder(records, target, 'LwM2M CBOR');
    const top = new Map<CborValue, CborValue>();
    // The request path goes into one array key; everything below it nests.
    const prefix = target.ids.slice(0, Math.min(target.length, Math.min(...records.map((r) => r.path.length)) - 1));
    const below = new Map<CborValue, CborValue>();
    for (const record of sortRecords(records)) {
      let node = below;
      const rest = record.path.ids.slice(prefix.length);
      rest.slice(0, -1).forEach((id) => {
        let next = node.get(id);
        if (!(next instanceof Map)) {
          next = new Map();
          node.set(id, next);
        }
        node = next;
      });
      node.set(rest[rest.length - 1], valueToCbor(record));
    }
    if (prefix.length === 0) return encodeCbor(below);
    top.set(prefix.length === 1 ? prefix[0] : [...prefix], below);
    return encodeCbor(top);
  },
};

function walk(map: Map<CborValue, CborValue>, prefix: number[], model: ObjectModel, records: ContentRecord[]): void {
  for (const [key, value] of map) {
    const ids = keyIds(key, prefix);
    const at = [...prefix, ...ids];
    if (at.length > 4) throw new ContentError(`LwM2M CBOR path /${at.join('/')} is too deep`);
    if (value instanceof Map) {
      walk(value, at, model, records);
      continue;
    }
    if (at.length < 3) throw new ContentError(`LwM2M CBOR value at /${at.join('/')} is not at a resource`);
    let path: Lwm2mPath;
    try {
      path = Lwm2mPath.of(...at);
    } catch (error) {
      throw new ContentError(`LwM2M CBOR: ${(error as Error).message}`);
    }
    if (value === null) continue;
    records.push(cborLeaf(value, path, model));
  }
}

function keyIds(key: CborValue, prefix: number[]): number[] {
  const ids = Array.isArray(key) ? key : [key];
  if (ids.length === 0 || ids.some((id) => typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 65535)) {
    throw new ContentError(`LwM2M CBOR key under /${prefix.join('/')} is not a path id`);
  }
  return ids as number[];
}
