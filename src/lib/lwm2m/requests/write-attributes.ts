import { Method, ResponseCode } from '../../coap/codes';
import { plainDecimal } from '../../content/decimal';
import { ContentError } from '../../content/values';
import type { ObjectModel } from '../../model/object-model';
import { compareVersions } from '../../model/object-versions';
import type { Lwm2mPath } from '../../model/path';
import type { Registration } from '../registration';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

/** Notification attributes (LwM2M Core 1.2 section 5.1.2); null removes one. */
export interface NotificationAttributes {
  pmin?: number | null;
  pmax?: number | null;
  gt?: number | null;
  lt?: number | null;
  st?: number | null;
  epmin?: number | null;
  epmax?: number | null;
  /** 1.2: notify on the rising (1) or falling (0) edge of a boolean resource. */
  edge?: number | null;
  /** 1.2: notifications confirmable (1) or not (0). */
  con?: number | null;
  /** 1.2: how many notifications the device keeps while it cannot send them. */
  hqmax?: number | null;
}

type AttributeName = keyof NotificationAttributes;

/** Whole numbers ≥ 0: seconds, and the queue length. */
const COUNT_ATTRIBUTES: readonly AttributeName[] = ['pmin', 'pmax', 'epmin', 'epmax', 'hqmax'];
/** 0 or 1. */
const FLAG_ATTRIBUTES: readonly AttributeName[] = ['edge', 'con'];
/** Thresholds of numeric resources. */
const THRESHOLD_ATTRIBUTES: readonly AttributeName[] = ['gt', 'lt', 'st'];
/** The LwM2M version that defined each attribute after 1.0. */
/** The LwM2M version that defined each attribute newer than 1.0 (editors read it too). */
export const ATTRIBUTE_SINCE: Readonly<Partial<Record<AttributeName, string>>> = { epmin: '1.1', epmax: '1.1', edge: '1.2', con: '1.2', hqmax: '1.2' };

/** Every attribute the server accepts, in the order editors show them. */
export const ATTRIBUTE_NAMES: readonly string[] = ['pmin', 'pmax', 'gt', 'lt', 'st', 'epmin', 'epmax', 'edge', 'con', 'hqmax'];

/** CoAP's limit on one Uri-Query option (RFC 7252 section 5.10). */
const MAX_QUERY_BYTES = 255;

/** Checks attributes from a flow and returns them typed; throws ContentError with the reason. */
export function parseAttributes(input: unknown): NotificationAttributes {
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    throw new ContentError('attributes must be an object such as {"pmin": 10, "pmax": 60}');
  }
  const attributes: NotificationAttributes = {};
  for (const [name, raw] of Object.entries(input as Record<string, unknown>)) {
    if (!ATTRIBUTE_NAMES.includes(name)) throw new ContentError(`unknown attribute "${name}": use ${ATTRIBUTE_NAMES.join(', ')}`);
    const key = name as AttributeName;
    if (raw === null || raw === undefined || raw === '') {
      attributes[key] = null;
      continue;
    }
    const value = typeof raw === 'boolean' && FLAG_ATTRIBUTES.includes(key) ? Number(raw) : typeof raw === 'string' ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new ContentError(`attribute ${name} must be a number, not ${JSON.stringify(raw)}`);
    if (COUNT_ATTRIBUTES.includes(key) && (!Number.isInteger(value) || value < 0)) {
      throw new ContentError(name === 'hqmax' ? 'attribute hqmax must be a whole number of notifications ≥ 0' : `attribute ${name} must be a whole number of seconds ≥ 0`);
    }
    if (FLAG_ATTRIBUTES.includes(key) && value !== 0 && value !== 1) throw new ContentError(`attribute ${name} must be 0 or 1, not ${JSON.stringify(raw)}`);
    if (name === 'st' && value < 0) throw new ContentError('attribute st must not be negative');
    if (name.length + 1 + plainDecimal(value).length > MAX_QUERY_BYTES) {
      throw new ContentError(`attribute ${name} is ${plainDecimal(value).length} digits long written out, more than a CoAP query option holds (${MAX_QUERY_BYTES} bytes)`);
    }
    attributes[key] = value;
  }
  const { pmin, pmax, epmin, epmax, gt, lt, st } = attributes;
  if (typeof pmin === 'number' && typeof pmax === 'number' && pmax < pmin) throw new ContentError(`pmax (${pmax}) must not be less than pmin (${pmin})`);
  if (typeof epmin === 'number' && typeof epmax === 'number' && epmax < epmin) throw new ContentError(`epmax (${epmax}) must not be less than epmin (${epmin})`);
  if (typeof gt === 'number' && typeof lt === 'number') {
    if (lt >= gt) throw new ContentError(`lt (${lt}) must be less than gt (${gt})`);
    if (typeof st === 'number' && lt + 2 * st >= gt) throw new ContentError(`lt + 2·st (${lt + 2 * st}) must be less than gt (${gt})`);
  }
  if (Object.keys(attributes).length === 0) throw new ContentError('no attributes to write');
  return attributes;
}

export function attributeQueries(attributes: NotificationAttributes): string[] {
  return Object.entries(attributes).map(([name, value]) => (value === null ? name : `${name}=${plainDecimal(value as number)}`));
}

/** The attributes as they fit each path: thresholds on a numeric resource, edge on a boolean one (where the model knows the type). */
export function checkAttributeTargets(attributes: NotificationAttributes, paths: readonly Lwm2mPath[], model?: ObjectModel): void {
  const thresholds = THRESHOLD_ATTRIBUTES.filter((name) => name in attributes);
  const edge = 'edge' in attributes;
  if (thresholds.length === 0 && !edge) return;
  for (const path of paths) {
    const what = [...thresholds, ...(edge ? ['edge'] : [])].join(', ');
    if (!path.isResource() && !path.isResourceInstance()) throw new ContentError(`${what} apply to a resource, not to ${path}`);
    const resource = model?.getResource(path.objectId, path.resourceId);
    if (!resource) continue;
    const numeric = resource.type === 'integer' || resource.type === 'unsigned' || resource.type === 'float';
    if (thresholds.length > 0 && !numeric) throw new ContentError(`${thresholds.join(', ')} apply to a numeric resource; ${path} (${resource.name}) is ${resource.type}`);
    if (edge && resource.type !== 'boolean') throw new ContentError(`edge applies to a boolean resource; ${path} (${resource.name}) is ${resource.type}`);
  }
}

/** Refuses attributes the device's LwM2M version does not define (epmin and epmax since 1.1; edge, con and hqmax since 1.2). */
export function checkAttributeVersion(attributes: NotificationAttributes, registration: Pick<Registration, 'endpoint' | 'lwm2mVersion'>): void {
  const newer = (Object.keys(attributes) as AttributeName[]).filter((name) => ATTRIBUTE_SINCE[name] !== undefined && compareVersions(ATTRIBUTE_SINCE[name]!, registration.lwm2mVersion) > 0);
  if (newer.length > 0) {
    throw new ContentError(`${newer.join(', ')} ${newer.length === 1 ? 'is an attribute' : 'are attributes'} of LwM2M ${ATTRIBUTE_SINCE[newer[newer.length - 1]]}; ${registration.endpoint} registered with LwM2M ${registration.lwm2mVersion}`);
  }
}

/**
 * Whether a device takes notification attributes in the Observe request's
 * query (LwM2M 1.2: GET /3303/0/5700?pmin=5&gt=30 with Observe 0) rather
 * than by an earlier Write-Attributes.
 */
export function attributesInObserve(registration: Pick<Registration, 'lwm2mVersion'>): boolean {
  return compareVersions(registration.lwm2mVersion, '1.2') >= 0;
}

/** Write-Attributes (PUT with query parameters, no payload). */
export class WriteAttributesRequest implements DeviceRequest<Record<string, never>> {
  readonly operation = 'write-attributes';
  readonly successCode = ResponseCode.Changed;
  readonly attributes: NotificationAttributes;

  constructor(
    readonly path: Lwm2mPath,
    attributes: unknown,
  ) {
    if (path.isRoot()) throw new ContentError('attributes are written to an object, instance or resource, not to the root');
    this.attributes = parseAttributes(attributes);
    checkAttributeTargets(this.attributes, [path]);
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    checkAttributeVersion(this.attributes, context.registration);
    checkAttributeTargets(this.attributes, [this.path], context.model);
    return { method: Method.PUT, path: this.path, query: attributeQueries(this.attributes) };
  }

  fromCoap(): Record<string, never> {
    return {};
  }
}
