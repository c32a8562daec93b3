import type { ObjectModel } from '../model/object-model';
import type { Lwm2mPath } from '../model/path';
import { ContentError, ContentRecord, ResourceType, ResourceValue, inferType, isObjectLink, timeToSeconds } from './values';

/** Where a decoded value lands: a resource or a resource instance, never shallower. */
export function requireLeaf(path: Lwm2mPath, format: string): void {
  if (path.length < 3) throw new ContentError(`${format} value at ${path} is not at a resource or resource instance`);
}

/** The model's type for a path, or undefined for a resource the model does not know. */
export function modelType(model: ObjectModel, path: Lwm2mPath): ResourceType | undefined {
  return model.typeOf(path);
}

/**
 * Types a value decoded from a self-describing format (JSON or CBOR), checking
 * it against the model; outside the model it keeps the type the format gave
 * it (an object link when it came as one: SenML "vlo", LwM2M JSON "ov").
 */
export function typedRecord(
  model: ObjectModel,
  path: Lwm2mPath,
  value: ResourceValue,
  timestamp: number | undefined,
  where: string,
  objectLink = false,
): ContentRecord {
  const type = modelType(model, path);
  const record: ContentRecord = { path, value, type: type ?? (objectLink ? 'objlnk' : inferType(value)) };
  if (timestamp !== undefined) record.timestamp = timestamp;
  if (type === undefined || type === 'none') {
    if (record.type === 'objlnk' && !isObjectLink(value)) throw new ContentError(`${where} ${path}: object link ${JSON.stringify(value)} is not like "3:0"`);
    return record;
  }
  record.value = fitToType(value, type, `${where} ${path}`);
  return record;
}

function fitToType(value: ResourceValue, type: ResourceType, where: string): ResourceValue {
  switch (type) {
    case 'integer':
    case 'unsigned':
      if (typeof value === 'number' && Number.isInteger(value) && (type === 'integer' || value >= 0)) return value;
      break;
    case 'float':
      if (typeof value === 'number') return value;
      break;
    case 'boolean':
      if (typeof value === 'boolean') return value;
      break;
    case 'time':
      if (value instanceof Date) return value;
      if (typeof value === 'number' && Number.isFinite(value)) return new Date(Math.trunc(value) * 1000);
      break;
    case 'opaque':
      if (Buffer.isBuffer(value)) return value;
      break;
    case 'objlnk':
      if (isObjectLink(value)) return value;
      break;
    case 'string':
    case 'corelnk':
      if (typeof value === 'string') return value;
      break;
  }
  throw new ContentError(`${where} should be ${type} but the device sent ${Buffer.isBuffer(value) ? 'bytes' : typeof value}`);
}

/** A number for the formats that carry time as seconds. */
export function numericValue(record: ContentRecord): number {
  return record.value instanceof Date ? timeToSeconds(record.value) : (record.value as number);
}

/** Sorts by path so encoders can group consecutive records. */
export function sortRecords(records: ContentRecord[]): ContentRecord[] {
  return [...records].sort((a, b) => {
    const x = a.path.ids;
    const y = b.path.ids;
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  });
}

/** Checks that every record lies at or below the request path. */
export function requireUnder(records: ContentRecord[], target: Lwm2mPath, format: string): void {
  for (const record of records) {
    if (!record.path.startsWith(target)) throw new ContentError(`${format} content names ${record.path}, outside the requested ${target}`);
  }
}
