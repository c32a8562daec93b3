import type { Lwm2mPath } from '../model/path';

/** The data types of LwM2M resources (Core spec, Appendix C). */
export type ResourceType = 'string' | 'integer' | 'unsigned' | 'float' | 'boolean' | 'opaque' | 'time' | 'objlnk' | 'corelnk' | 'none';

export const RESOURCE_TYPES: readonly ResourceType[] = [
  'string',
  'integer',
  'unsigned',
  'float',
  'boolean',
  'opaque',
  'time',
  'objlnk',
  'corelnk',
  'none',
];

/**
 * A resource value as flows see it: numbers, strings, booleans, Buffers for
 * opaque, Dates for time, and "objectId:instanceId" strings for object links.
 */
export type ResourceValue = string | number | boolean | Buffer | Date;

/** One resource or resource instance value with its absolute path: the unit every content format is read into. */
export interface ContentRecord {
  path: Lwm2mPath;
  value: ResourceValue;
  type: ResourceType;
  /** Time of the value in seconds since the epoch, where the format carried one (SenML, LwM2M JSON). */
  timestamp?: number;
}

/** A device sent content that does not decode: answered to the flow as an error with the reason. */
export class ContentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContentError';
  }
}

const OBJLNK = /^(\d{1,5}):(\d{1,5})$/;

export function isObjectLink(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const match = OBJLNK.exec(value);
  return match !== null && Number(match[1]) <= 65535 && Number(match[2]) <= 65535;
}

/** The type a value has when no object model says otherwise. */
export function inferType(value: ResourceValue): ResourceType {
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'float';
  if (Buffer.isBuffer(value)) return 'opaque';
  if (value instanceof Date) return 'time';
  return 'string';
}

/**
 * Converts a value from a flow (or a loosely typed format) to the resource type,
 * throwing ContentError with the reason when it does not fit.
 */
export function coerceValue(value: unknown, type: ResourceType, where: string): ResourceValue {
  const fail = (expected: string): never => {
    throw new ContentError(`${where} is ${type}: ${describe(value)} is not ${expected}`);
  };
  switch (type) {
    case 'string':
    case 'corelnk':
      if (typeof value === 'string') return value;
      if (typeof value === 'number' || typeof value === 'boolean') return String(value);
      return fail('a string');
    case 'integer':
    case 'unsigned': {
      const number = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
      if (typeof number !== 'number' || !Number.isInteger(number)) return fail('an integer');
      if (type === 'unsigned' && number < 0) return fail('a non-negative integer');
      if (!Number.isSafeInteger(number)) return fail('an integer within ±2^53');
      return number;
    }
    case 'float': {
      const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof number !== 'number' || Number.isNaN(number)) return fail('a number');
      return number;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 0 || value === 1) return value === 1;
      if (value === '0' || value === '1' || value === 'true' || value === 'false') return value === '1' || value === 'true';
      return fail('a boolean');
    case 'opaque':
      if (Buffer.isBuffer(value)) return value;
      if (value instanceof Uint8Array) return Buffer.from(value);
      if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return Buffer.from(value);
      if (isSerializedBuffer(value)) return Buffer.from(value.data);
      if (typeof value === 'string') return Buffer.from(value, 'utf8');
      return fail('a Buffer');
    case 'time': {
      if (value instanceof Date && !Number.isNaN(value.getTime())) return value;
      if (typeof value === 'number' && Number.isFinite(value)) return new Date(Math.trunc(value) * 1000);
      if (typeof value === 'string') {
        if (/^-?\d+$/.test(value.trim())) return new Date(Number(value) * 1000);
        const date = new Date(value);
        if (!Number.isNaN(date.getTime())) return date;
      }
      return fail('a time (Date, seconds since 1970 or ISO 8601)');
    }
    case 'objlnk':
      if (isObjectLink(value)) return value;
      if (value && typeof value === 'object' && 'objectId' in value && 'instanceId' in value) {
        const link = `${(value as { objectId: unknown }).objectId}:${(value as { instanceId: unknown }).instanceId}`;
        if (isObjectLink(link)) return link;
      }
      return fail('an object link such as "3:0"');
    case 'none':
      return fail('a value: the resource has none');
  }
}

function isSerializedBuffer(value: unknown): value is { type: 'Buffer'; data: number[] } {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((value as { data?: unknown }).data)
  );
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (Buffer.isBuffer(value)) return `a Buffer of ${value.length} bytes`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Seconds since 1970 of a time value. */
export function timeToSeconds(value: Date): number {
  return Math.floor(value.getTime() / 1000);
}
