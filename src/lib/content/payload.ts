import type { ObjectModel } from '../model/object-model';
import { Lwm2mPath, PathError } from '../model/path';
import { sortRecords } from './typing';
import { ContentError, ContentRecord, ResourceType, ResourceValue, coerceValue, inferType } from './values';

/** A plain JSON tree for msg.payload: ids as keys below the request path, values at the leaves. */
export type PlainPayload = ResourceValue | { [id: string]: PlainPayload };

/** What a flow sees: the value itself for one resource, nested objects keyed by id for more. */
export function recordsToPayload(records: ContentRecord[], target: Lwm2mPath): PlainPayload {
  if (records.length === 1 && records[0].path.equals(target)) return records[0].value;
  const root: { [id: string]: PlainPayload } = {};
  for (const record of records) {
    const relative = record.path.ids.slice(target.length);
    if (relative.length === 0) throw new ContentError(`${record.path} arrived together with values below it`);
    let node = root;
    relative.slice(0, -1).forEach((id) => {
      const next = node[id];
      if (next === undefined) node[id] = {};
      else if (!isTree(next)) throw new ContentError(`${record.path} arrived together with a value above it`);
      node = node[id] as { [id: string]: PlainPayload };
    });
    node[relative[relative.length - 1]] = record.value;
  }
  return root;
}

function isTree(value: PlainPayload): value is { [id: string]: PlainPayload } {
  return typeof value === 'object' && value !== null && !Buffer.isBuffer(value) && !(value instanceof Date);
}

/** The named, typed view of records: msg.resources. */
export interface NamedRecord {
  path: string;
  name?: string;
  type: ResourceType;
  value: ResourceValue;
  units?: string;
  timestamp?: number;
}

export function namedRecords(records: ContentRecord[], model: ObjectModel): NamedRecord[] {
  return records.map((record) => {
    const resource = model.getResource(record.path.objectId, record.path.resourceId);
    const named: NamedRecord = { path: record.path.toString(), type: record.type, value: record.value };
    if (resource) named.name = resource.name;
    if (resource?.units) named.units = resource.units;
    if (record.timestamp !== undefined) named.timestamp = record.timestamp;
    return named;
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !Buffer.isBuffer(value) &&
    !(value instanceof Date) &&
    !(value instanceof Uint8Array) &&
    (value as { type?: unknown }).type !== 'Buffer'
  );
}

/**
 * Turns msg.payload into typed records for a Write or Create at the target:
 * a value for a resource, {instanceId: value} or an array for a multiple
 * resource, {resourceId or resource name: value} for an instance. Values are
 * checked against the object model; anything that does not fit throws ContentError.
 */
export function payloadToRecords(payload: unknown, target: Lwm2mPath, model: ObjectModel): ContentRecord[] {
  if (payload === undefined || payload === null) throw new ContentError(`nothing to write to ${target}: msg.payload is empty`);
  if (target.length < 2) throw new ContentError(`values are written to an instance, resource or resource instance, not to ${target}`);
  if (target.isInstance()) return instanceRecords(payload, target, model);
  if (target.isResource()) return resourceRecords(payload, target, model);
  return [leafRecord(payload, target, model)];
}

function instanceRecords(payload: unknown, target: Lwm2mPath, model: ObjectModel): ContentRecord[] {
  if (!isPlainObject(payload)) {
    throw new ContentError(`writing ${target} takes an object of resources such as {"1": 300} or {"Lifetime": 300}`);
  }
  const objectId = target.objectId!;
  const definition = model.getObject(objectId);
  const byName = new Map(Object.values(definition?.resources ?? {}).map((resource) => [resource.name.toLowerCase(), resource.id]));
  const records: ContentRecord[] = [];
  for (const [key, value] of Object.entries(payload)) {
    const resourceId = /^\d+$/.test(key) ? Number(key) : byName.get(key.toLowerCase());
    if (resourceId === undefined) {
      throw new ContentError(`object ${definition?.name ?? objectId} has no resource named "${key}"`);
    }
    records.push(...resourceRecords(value, child(target, resourceId), model));
  }
  if (records.length === 0) throw new ContentError(`nothing to write to ${target}: msg.payload has no resources`);
  return sortRecords(records);
}

function resourceRecords(payload: unknown, path: Lwm2mPath, model: ObjectModel): ContentRecord[] {
  const resource = model.getResource(path.objectId, path.resourceId);
  const multipleByShape = Array.isArray(payload) || (isPlainObject(payload) && !('objectId' in payload));
  if (resource ? resource.multiple : multipleByShape) {
    if (!multipleByShape) throw new ContentError(`${path} (${resource!.name}) has multiple instances: write {instanceId: value} or an array`);
    const entries: [string, unknown][] = Array.isArray(payload) ? payload.map((value, index) => [String(index), value]) : Object.entries(payload as object);
    return entries.map(([key, value]) => {
      if (!/^\d+$/.test(key)) throw new ContentError(`resource instance id "${key}" under ${path} is not a number`);
      return leafRecord(value, child(path, Number(key)), model);
    });
  }
  return [leafRecord(payload, path, model)];
}

function leafRecord(value: unknown, path: Lwm2mPath, model: ObjectModel): ContentRecord {
  const resource = model.getResource(path.objectId, path.resourceId);
  const where = resource ? `${path} (${resource.name})` : `${path}`;
  if (resource?.type === 'none') throw new ContentError(`${where} is executable and holds no value`);
  const type = resource?.type ?? guessType(value, where);
  return { path, type, value: coerceValue(value, type, where) };
}

function guessType(value: unknown, where: string): ResourceType {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || Buffer.isBuffer(value) || value instanceof Date) {
    return inferType(value);
  }
  throw new ContentError(`${where} is not in the object model and ${value === null ? 'null' : typeof value} is not a resource value`);
}

function child(path: Lwm2mPath, id: number): Lwm2mPath {
  try {
    return path.child(id);
  } catch (error) {
    throw new ContentError((error as PathError).message);
  }
}
