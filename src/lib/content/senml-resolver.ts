import { Lwm2mPath, PathError } from '../model/path';
import { ContentError, ResourceValue } from './values';

/**
 * One record of SenML JSON, SenML CBOR or LwM2M JSON, its fields checked,
 * before resolution. LwM2M JSON's entries map onto it (sv, bv, ov become vs,
 * vb, vlo; the document's bn and bt are the first record's).
 */
export interface SenmlRecord {
  bver?: number;
  bn?: string;
  bt?: number;
  bv?: number;
  bs?: number;
  n?: string;
  t?: number;
  v?: number;
  s?: number;
  vs?: string;
  vb?: boolean;
  vd?: Buffer;
  vlo?: string;
  /** A Patch Pack record whose value is null (RFC 8790 section 5): what it names is to be removed. */
  remove?: true;
}

/** A record with its base fields applied: its full path, value and absolute time. */
export interface ResolvedRecord {
  path: Lwm2mPath;
  value?: ResourceValue;
  /** Seconds since 1970; absent when neither the record nor a base time carried one (measured "now"). */
  timestamp?: number;
  /** The value came as an object link (vlo). */
  objectLink?: boolean;
  /** A Patch Pack asked for the removal of what this record names. */
  removed?: true;
}

/** The SenML version this server reads; a newer one may carry fields it must not ignore (RFC 8428 section 4.4). */
const SENML_VERSION = 10;
/** Times below 2^28 are relative to now (RFC 8428 section 4.5.3). */
const RELATIVE_TIME_LIMIT = 2 ** 28;

/**
 * The one resolver of the SenML family (RFC 8428 sections 4.1, 4.5, 4.6):
 * bn, bt, bv, bs and bver apply to every following record until a record
 * changes them. Name is base name plus name; time is base time plus time, a
 * sum below 2^28 counting from now (negative: in the past); a numeric value
 * is base value plus value; a record with no value field but a sum (s plus
 * bs) has that sum as its value, LwM2M having no other place for it.
 */
export function resolveRecords(records: readonly SenmlRecord[], format: string, baseName = ''): ResolvedRecord[] {
  let bn = baseName;
  let bt: number | undefined;
  let bv: number | undefined;
  let bs: number | undefined;
  const now = Date.now() / 1000;
  const resolved: ResolvedRecord[] = [];
  for (let index = 0; index < records.length; index++) {
    const record = records[index];
    if (record.bver !== undefined && record.bver > SENML_VERSION) {
      throw new ContentError(`${format} record ${index} is SenML version ${record.bver}; this server reads version ${SENML_VERSION} and older`);
    }
    if (record.bn !== undefined) bn = record.bn;
    if (record.bt !== undefined) bt = record.bt;
    if (record.bv !== undefined) bv = record.bv;
    if (record.bs !== undefined) bs = record.bs;
    const name = joinName(bn, record.n);
    let path: Lwm2mPath;
    try {
      path = Lwm2mPath.parse(name);
    } catch (error) {
      throw new ContentError(`${format} record ${index}: name "${name}" is not an LwM2M path (${(error as PathError).message})`);
    }
    const one: ResolvedRecord = { path };
    const value = record.v !== undefined ? (bv === undefined ? record.v : bv + record.v) : record.vs ?? record.vb ?? record.vd ?? record.vlo;
    if (value !== undefined) one.value = value;
    else if (record.s !== undefined || bs !== undefined) one.value = (bs ?? 0) + (record.s ?? 0);
    if (record.vlo !== undefined) one.objectLink = true;
    if (record.remove) one.removed = true;
    if (record.t !== undefined || bt !== undefined) {
      const time = (bt ?? 0) + (record.t ?? 0);
      one.timestamp = time < RELATIVE_TIME_LIMIT ? now + time : time;
    }
    resolved.push(one);
  }
  return resolved;
}

/**
 * Base name plus name. LwM2M names are paths, so a base name without its
 * trailing slash ("/3303/0" + "5700", as some encoders write) still means
 * /3303/0/5700 rather than a mangled id.
 */
function joinName(base: string, name: string | undefined): string {
  if (name === undefined || name === '') return base;
  if (base === '' || base.endsWith('/') || name.startsWith('/')) return base + name;
  return `${base}/${name}`;
}
