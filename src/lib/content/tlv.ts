import { ContentFormat } from '../coap/codes';
import type { ObjectModel } from '../model/object-model';
import { Lwm2mPath, PathError } from '../model/path';
import type { ContentCodec } from './codec';
import { modelType, requireUnder, sortRecords } from './typing';
import { ContentError, ContentRecord, ResourceType, ResourceValue, isObjectLink, timeToSeconds } from './values';
import { decodeUtf8 } from './utf8';

/** TLV identifier types (LwM2M Core, OMA TLV section). */
const enum Kind {
  ObjectInstance = 0,
  ResourceInstance = 1,
  MultipleResource = 2,
  ResourceWithValue = 3,
}

interface Tlv {
  kind: Kind;
  id: number;
  value: Buffer;
  children?: Tlv[];
}

const MAX_DEPTH = 3;

function parseTlvs(bytes: Buffer, depth: number): Tlv[] {
  const tlvs: Tlv[] = [];
  let i = 0;
  while (i < bytes.length) {
    const type = bytes[i++];
    const kind = (type >> 6) as Kind;
    const idLength = type & 0x20 ? 2 : 1;
    const lengthType = (type >> 3) & 0x3;
    if (i + idLength + lengthType > bytes.length) throw new ContentError('TLV header runs past the end of the payload');
    const id = idLength === 2 ? bytes.readUInt16BE(i) : bytes[i];
    i += idLength;
    let length = type & 0x7;
    if (lengthType > 0) {
      length = bytes.readUIntBE(i, lengthType);
      i += lengthType;
    }
    if (i + length > bytes.length) throw new ContentError(`TLV value of ${length} bytes runs past the end of the payload`);
    const value = bytes.subarray(i, i + length);
    i += length;
    const tlv: Tlv = { kind, id, value };
    if (kind === Kind.ObjectInstance || kind === Kind.MultipleResource) {
      if (depth >= MAX_DEPTH) throw new ContentError('TLV nested too deeply');
      tlv.children = parseTlvs(value, depth + 1);
    }
    tlvs.push(tlv);
  }
  return tlvs;
}

/** application/vnd.oma.lwm2m+tlv (11542): typeless, so values are read with the object model. */
export const tlvCodec: ContentCodec = {
  format: ContentFormat.Tlv,
  name: 'application/vnd.oma.lwm2m+tlv',
  decode(payload, target, model) {
    const tlvs = parseTlvs(payload, 0);
    const records: ContentRecord[] = [];
    const child = (parent: Lwm2mPath, id: number) => {
      try {
        return parent.child(id);
      } catch (error) {
        throw new ContentError(`TLV: ${(error as PathError).message}`);
      }
    };
    const readResource = (tlv: Tlv, instancePath: Lwm2mPath) => {
      const resourcePath = child(instancePath, tlv.id);
      if (tlv.kind === Kind.ResourceWithValue) records.push(leaf(tlv.value, resourcePath, model));
      else if (tlv.kind === Kind.MultipleResource) {
        for (const instance of tlv.children ?? []) {
          if (instance.kind !== Kind.ResourceInstance) throw new ContentError(`TLV: multiple resource ${resourcePath} holds a non-instance entry`);
          records.push(leaf(instance.value, child(resourcePath, instance.id), model));
        }
      } else throw new ContentError(`TLV: unexpected ${kindName(tlv.kind)} inside object instance ${instancePath}`);
    };
    const readInstance = (tlvs: Tlv[], instancePath: Lwm2mPath) => tlvs.forEach((tlv) => readResource(tlv, instancePath));

    if (target.isRoot()) throw new ContentError('TLV cannot carry several objects');
    if (target.isObject()) {
      for (const tlv of tlvs) {
        if (tlv.kind !== Kind.ObjectInstance) throw new ContentError(`TLV for object ${target} must hold object instances, not a ${kindName(tlv.kind)}`);
        readInstance(tlv.children ?? [], child(target, tlv.id));
      }
    } else if (target.isInstance()) {
      if (tlvs.length === 1 && tlvs[0].kind === Kind.ObjectInstance) {
        if (tlvs[0].id !== target.instanceId) throw new ContentError(`TLV holds instance ${tlvs[0].id}, not the requested ${target}`);
        readInstance(tlvs[0].children ?? [], target);
      } else readInstance(tlvs, target);
    } else if (target.isResource()) {
      const instancePath = target.parent();
      if (tlvs.every((tlv) => tlv.kind === Kind.ResourceInstance)) {
        for (const tlv of tlvs) records.push(leaf(tlv.value, child(target, tlv.id), model));
      } else {
        if (tlvs.length !== 1 || tlvs[0].id !== target.resourceId) throw new ContentError(`TLV does not hold the requested resource ${target}`);
        readResource(tlvs[0], instancePath);
      }
    } else {
      if (tlvs.length !== 1 || tlvs[0].kind !== Kind.ResourceInstance || tlvs[0].id !== target.resourceInstanceId) {
        throw new ContentError(`TLV does not hold the requested resource instance ${target}`);
      }
      records.push(leaf(tlvs[0].value, target, model));
    }
    return records;
  },

  encode(records, target) {
    requireUnder(records, target, 'TLV');
    if (target.isRoot()) throw new ContentError('TLV cannot carry several objects');
    const sorted = sortRecords(records);
    if (target.isResourceInstance()) return entry(Kind.ResourceInstance, target.resourceInstanceId!, encodeValue(only(sorted, target)));
    if (target.isResource()) return encodeResource(sorted, target.resourceId!);
    if (target.isInstance()) return encodeResources(sorted);
    // Object level (Create): group by instance, each wrapped in an object instance TLV.
    const parts: Buffer[] = [];
    for (const [instanceId, group] of groupBy(sorted, 1)) parts.push(entry(Kind.ObjectInstance, instanceId, encodeResources(group)));
    return Buffer.concat(parts);
  },
};

function only(records: ContentRecord[], target: Lwm2mPath): ContentRecord {
  if (records.length !== 1) throw new ContentError(`TLV for ${target} carries one value; got ${records.length}`);
  return records[0];
}

function encodeResources(records: ContentRecord[]): Buffer {
  return Buffer.concat([...groupBy(records, 2)].map(([resourceId, group]) => encodeResource(group, resourceId)));
}

function encodeResource(records: ContentRecord[], resourceId: number): Buffer {
  if (records.length === 1 && records[0].path.isResource()) return entry(Kind.ResourceWithValue, resourceId, encodeValue(records[0]));
  const instances = records.map((record) => {
    if (!record.path.isResourceInstance()) throw new ContentError(`${record.path} mixes a single value with resource instances`);
    return entry(Kind.ResourceInstance, record.path.resourceInstanceId!, encodeValue(record));
  });
  return entry(Kind.MultipleResource, resourceId, Buffer.concat(instances));
}

function groupBy(records: ContentRecord[], level: number): Map<number, ContentRecord[]> {
  const groups = new Map<number, ContentRecord[]>();
  for (const record of records) {
    const id = record.path.ids[level];
    if (id === undefined) throw new ContentError(`TLV needs ${record.path} to be deeper`);
    const group = groups.get(id) ?? [];
    group.push(record);
    groups.set(id, group);
  }
  return groups;
}

function entry(kind: Kind, id: number, value: Buffer): Buffer {
  const idLength = id > 0xff ? 2 : 1;
  const lengthType = value.length < 8 ? 0 : value.length <= 0xff ? 1 : value.length <= 0xffff ? 2 : 3;
  if (value.length > 0xffffff) throw new ContentError('TLV value longer than 16 MiB');
  const header = Buffer.alloc(1 + idLength + lengthType);
  header[0] = (kind << 6) | (idLength === 2 ? 0x20 : 0) | (lengthType << 3) | (lengthType === 0 ? value.length : 0);
  if (idLength === 2) header.writeUInt16BE(id, 1);
  else header[1] = id;
  if (lengthType > 0) header.writeUIntBE(value.length, 1 + idLength, lengthType);
  return Buffer.concat([header, value]);
}

function kindName(kind: Kind): string {
  return ['object instance', 'resource instance', 'multiple resource', 'resource'][kind];
}

function leaf(bytes: Buffer, path: Lwm2mPath, model: ObjectModel): ContentRecord {
  const type = modelType(model, path);
  // Without a model TLV cannot tell a number from text: hand the bytes over as they are.
  if (type === undefined || type === 'none') return { path, type: 'opaque', value: Buffer.from(bytes) };
  return { path, type, value: decodeValue(bytes, type, path) };
}

function decodeValue(bytes: Buffer, type: ResourceType, path: Lwm2mPath): ResourceValue {
  const wrongLength = (): never => {
    throw new ContentError(`TLV ${type} at ${path} cannot be ${bytes.length} bytes long`);
  };
  switch (type) {
    case 'string':
    case 'corelnk':
      try {
        return decodeUtf8(bytes);
      } catch {
        throw new ContentError(`TLV string at ${path} is not valid UTF-8`);
      }
    case 'opaque':
      return Buffer.from(bytes);
    case 'integer':
    case 'time': {
      if (![1, 2, 4, 8].includes(bytes.length)) wrongLength();
      const big = bytes.length === 8 ? bytes.readBigInt64BE(0) : BigInt(bytes.readIntBE(0, bytes.length));
      if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new ContentError(`TLV integer at ${path} exceeds ±2^53`);
      }
      return type === 'time' ? new Date(Number(big) * 1000) : Number(big);
    }
    case 'unsigned': {
      if (![1, 2, 4, 8].includes(bytes.length)) wrongLength();
      const big = bytes.length === 8 ? bytes.readBigUInt64BE(0) : BigInt(bytes.readUIntBE(0, bytes.length));
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new ContentError(`TLV unsigned integer at ${path} exceeds 2^53`);
      return Number(big);
    }
    case 'float':
      if (bytes.length === 4) return bytes.readFloatBE(0);
      if (bytes.length === 8) return bytes.readDoubleBE(0);
      return wrongLength();
    case 'boolean':
      if (bytes.length !== 1 || bytes[0] > 1) throw new ContentError(`TLV boolean at ${path} must be one byte 0 or 1`);
      return bytes[0] === 1;
    case 'objlnk':
      if (bytes.length !== 4) wrongLength();
      return `${bytes.readUInt16BE(0)}:${bytes.readUInt16BE(2)}`;
    case 'none':
      return Buffer.from(bytes);
  }
}

function encodeValue(record: ContentRecord): Buffer {
  const { value, type } = record;
  if (value instanceof Date) return encodeInteger(timeToSeconds(value));
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'boolean') return Buffer.from([value ? 1 : 0]);
  if (typeof value === 'number') {
    if (type === 'float') {
      const single = Buffer.alloc(4);
      single.writeFloatBE(value);
      if (single.readFloatBE(0) === value) return single;
      const double = Buffer.alloc(8);
      double.writeDoubleBE(value);
      return double;
    }
    return type === 'unsigned' ? encodeUnsigned(value) : encodeInteger(value);
  }
  if (type === 'objlnk' && isObjectLink(value)) {
    const [objectId, instanceId] = value.split(':').map(Number);
    const bytes = Buffer.alloc(4);
    bytes.writeUInt16BE(objectId, 0);
    bytes.writeUInt16BE(instanceId, 2);
    return bytes;
  }
  return Buffer.from(value, 'utf8');
}

function encodeInteger(value: number): Buffer {
  if (value >= -0x80 && value <= 0x7f) return Buffer.from([value & 0xff]);
  if (value >= -0x8000 && value <= 0x7fff) {
    const b = Buffer.alloc(2);
    b.writeInt16BE(value);
    return b;
  }
  if (value >= -0x80000000 && value <= 0x7fffffff) {
    const b = Buffer.alloc(4);
    b.writeInt32BE(value);
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(value));
  return b;
}

function encodeUnsigned(value: number): Buffer {
  if (value <= 0xff) return Buffer.from([value]);
  if (value <= 0xffff) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(value);
    return b;
  }
  if (value <= 0xffffffff) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(value));
  return b;
}
