import { Method, ResponseCode } from '../../coap/codes';
import { plainDecimal } from '../../content/decimal';
import { ContentError } from '../../content/values';
import type { Lwm2mPath } from '../../model/path';
import type { CoapRequestSpec, DeviceRequest } from './device-request';

/** Notification attributes (LwM2M Core 5.1.2); null removes one. */
export interface NotificationAttributes {
  pmin?: number | null;
  pmax?: number | null;
  gt?: number | null;
  lt?: number | null;
  st?: number | null;
  epmin?: number | null;
  epmax?: number | null;
}

const INTEGER_ATTRIBUTES = ['pmin', 'pmax', 'epmin', 'epmax'] as const;
const NUMBER_ATTRIBUTES = ['gt', 'lt', 'st'] as const;
export const ATTRIBUTE_NAMES: readonly string[] = [...INTEGER_ATTRIBUTES, ...NUMBER_ATTRIBUTES];

/** Checks attributes from a flow and returns them typed; throws ContentError with the reason. */
export function parseAttributes(input: unknown): NotificationAttributes {
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    throw new ContentError('attributes must be an object such as {"pmin": 10, "pmax": 60}');
  }
  const attributes: NotificationAttributes = {};
  for (const [name, raw] of Object.entries(input as Record<string, unknown>)) {
    if (!ATTRIBUTE_NAMES.includes(name)) throw new ContentError(`unknown attribute "${name}": use ${ATTRIBUTE_NAMES.join(', ')}`);
    if (raw === null || raw === undefined || raw === '') {
      attributes[name as keyof NotificationAttributes] = null;
      continue;
    }
    const value = typeof raw === 'string' ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new ContentError(`attribute ${name} must be a number, not ${JSON.stringify(raw)}`);
    if ((INTEGER_ATTRIBUTES as readonly string[]).includes(name) && (!Number.isInteger(value) || value < 0)) {
      throw new ContentError(`attribute ${name} must be a whole number of seconds ≥ 0`);
    }
    if (name === 'st' && value < 0) throw new ContentError('attribute st must not be negative');
    if (name.length + 1 + plainDecimal(value).length > MAX_QUERY_BYTES) {
      throw new ContentError(`attribute ${name} is ${plainDecimal(value).length} digits long written out, more than a CoAP query option holds (${MAX_QUERY_BYTES} bytes)`);
    }
    attributes[name as keyof NotificationAttributes] = value;
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

/** CoAP's limit on one Uri-Query option (RFC 7252 section 5.10). */
const MAX_QUERY_BYTES = 255;

export function attributeQueries(attributes: NotificationAttributes): string[] {
  return Object.entries(attributes).map(([name, value]) => (value === null ? name : `${name}=${plainDecimal(value as number)}`));
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
    if (!path.isResource() && !path.isResourceInstance() && ['gt', 'lt', 'st'].some((name) => name in this.attributes)) {
      throw new ContentError('gt, lt and st apply to a numeric resource only');
    }
  }

  toCoap(): CoapRequestSpec {
    return { method: Method.PUT, path: this.path, query: attributeQueries(this.attributes) };
  }

  fromCoap(): Record<string, never> {
    return {};
  }
}
