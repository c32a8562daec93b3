import { ContentFormat } from '../coap/codes';
import { formatName } from '../content/formats';
import type { ContentRecord, ResourceValue } from '../content/values';
import type { ObjectModel } from '../model/object-model';
import { Registration, expiresAt } from '../lwm2m/registration';
import { nodeIdOf, nodeNameOf, resourceNameOf } from './names';

/** oneM2M time: basic ISO 8601, UTC, as in expirationTime. */
function onem2mTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
}

function expiration(registration: Registration): string {
  return onem2mTime(expiresAt(registration));
}

/** The label that marks the AEs and nodes of one IPE, by which it finds them again after a restart. */
export function ipeLabel(ipeName: string): string {
  return `LWM2M-IPE:${ipeName}`;
}

function clientLabels(registration: Registration, ipeName: string): string[] {
  return [`LWM2M Client: ${registration.lwm2mVersion}`, `LWM2M-Endpoint:${registration.endpoint}`, ipeLabel(ipeName)];
}

export function nodeResource(registration: Registration, ipeName: string): Record<string, unknown> {
  return { 'm2m:nod': { rn: nodeNameOf(registration.endpoint), ni: nodeIdOf(registration.endpoint), lbl: clientLabels(registration, ipeName), et: expiration(registration) } };
}

export function nodeUpdate(registration: Registration, ipeName: string): Record<string, unknown> {
  return { 'm2m:nod': { lbl: clientLabels(registration, ipeName), et: expiration(registration) } };
}

export function aeResource(registration: Registration, ipeName: string, nodeLink: string | undefined): Record<string, unknown> {
  return {
    'm2m:ae': {
      rn: resourceNameOf(registration.endpoint),
      api: 'Norg.openmobilealliance.lwm2m',
      rr: false,
      srv: ['3'],
      lbl: clientLabels(registration, ipeName),
      et: expiration(registration),
      ...(nodeLink ? { nl: nodeLink } : {}),
    },
  };
}

export function aeUpdate(registration: Registration, ipeName: string, nodeLink?: string): Record<string, unknown> {
  return { 'm2m:ae': { lbl: clientLabels(registration, ipeName), et: expiration(registration), ...(nodeLink ? { nl: nodeLink } : {}) } };
}

/** Short names of the content formats in the LWM2MCT label, after TS-0014's "LWM2M+JSON". */
const FORMAT_LABELS: Record<number, string> = {
  [ContentFormat.TextPlain]: 'TEXT',
  [ContentFormat.OctetStream]: 'OPAQUE',
  [ContentFormat.Cbor]: 'CBOR',
  [ContentFormat.SenmlJson]: 'SENML+JSON',
  [ContentFormat.SenmlCbor]: 'SENML+CBOR',
  [ContentFormat.Tlv]: 'LWM2M+TLV',
  [ContentFormat.Lwm2mJson]: 'LWM2M+JSON',
  [ContentFormat.Lwm2mCbor]: 'LWM2M+CBOR',
};
/** Labels are short strings to CSEs (Mobius keeps all labels of a resource in 200 characters). */
const MAX_FORMATS_LABELLED = 8;

/** The client's content formats as the LWM2MCT label names them (TLV when it announced none, as LwM2M 1.0 implies). */
function contentFormatLabel(registration: Registration): string {
  const formats = registration.contentFormats.length > 0 ? registration.contentFormats : [ContentFormat.Tlv];
  return formats
    .slice(0, MAX_FORMATS_LABELLED)
    .map((format) => FORMAT_LABELS[format] ?? String(format))
    .join(',');
}

/** The labels, expirationTime and ontologyRef of the container of an object ("3") or object instance ("3/0"), as TS-0014 6.3.2 says. */
function objectContainerAttributes(registration: Registration, model: ObjectModel, objectId: number, instanceId: number | undefined): Record<string, unknown> {
  const uri = instanceId === undefined ? `/${objectId}` : `/${objectId}/${instanceId}`;
  // As TS-0014 writes it: the object's URN without the version the registry appends.
  const urn = (model.getObject(objectId)?.urn ?? `urn:oma:lwm2m:x:${objectId}`).replace(/:\d+\.\d+$/, '');
  const resourceType = registration.objects.find((object) => object.id === objectId)?.resourceType;
  return {
    lbl: [`LWM2MRT:${urn}`, `LWM2MPTH:${registration.rootPath}`, `LWM2MURI:${uri}`, `LWM2MCT:${contentFormatLabel(registration)}`],
    // Table 6.3.2.2-3: the lifetime is the container's expirationTime.
    et: expiration(registration),
    ...(resourceType ? { or: resourceType } : {}),
  };
}

export function objectContainer(registration: Registration, model: ObjectModel, objectId: number, instanceId: number | undefined, maxInstances: number): Record<string, unknown> {
  return { 'm2m:cnt': { rn: String(instanceId ?? objectId), ...objectContainerAttributes(registration, model, objectId, instanceId), mni: maxInstances } };
}

export function objectContainerUpdate(registration: Registration, model: ObjectModel, objectId: number, instanceId: number | undefined): Record<string, unknown> {
  return { 'm2m:cnt': objectContainerAttributes(registration, model, objectId, instanceId) };
}

/** A plain container of the IPE's own (commands, results, send, a resource in semantic mode). */
export function container(resourceName: string, labels: string[], maxInstances: number): Record<string, unknown> {
  return { 'm2m:cnt': { rn: resourceName, lbl: labels, mni: maxInstances } };
}

/** Transparent mode: the device's payload as it came, base64 when it is not text (contentInfo ":2", TS-0004 6.3.4.2.28). */
export function encapsulatedInstance(raw: Buffer, contentFormat: number | undefined, paths: string[]): Record<string, unknown> {
  const textual = contentFormat === undefined || contentFormat === ContentFormat.TextPlain || contentFormat === ContentFormat.SenmlJson || contentFormat === ContentFormat.Lwm2mJson;
  const type = contentFormat === undefined ? 'text/plain' : formatName(contentFormat);
  return {
    'm2m:cin': {
      con: textual ? raw.toString('utf8') : raw.toString('base64'),
      cnf: `${type}:${textual ? 0 : 2}`,
      lbl: ['LWM2M-Object-Encapsulation', ...paths.map((path) => `LWM2MURI:${path}`)],
    },
  };
}

/** Semantic mode: one decoded value, typed as JSON types it (numbers and booleans as such, times as ISO 8601 text, opaque as base64). */
export function valueInstance(record: ContentRecord): Record<string, unknown> {
  return {
    'm2m:cin': {
      ...semanticContent(record.value),
      lbl: [`LWM2MURI:${record.path}`, `LWM2MTYPE:${record.type}`, ...(record.timestamp !== undefined ? [`LWM2MTIME:${record.timestamp}`] : [])],
    },
  };
}

function semanticContent(value: ResourceValue): { con: unknown; cnf: string } {
  if (Buffer.isBuffer(value)) return { con: value.toString('base64'), cnf: 'application/octet-stream:2' };
  if (value instanceof Date) return { con: value.toISOString(), cnf: 'text/plain:0' };
  if (typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) return { con: value, cnf: 'application/json:0' };
  return { con: String(value), cnf: 'text/plain:0' };
}

export function jsonInstance(value: unknown, labels: string[]): Record<string, unknown> {
  return { 'm2m:cin': { con: JSON.stringify(value), cnf: 'application/json:0', lbl: labels } };
}

export function subscription(resourceName: string, notificationUrl: string): Record<string, unknown> {
  // net 3: creation of a direct child resource (a command contentInstance).
  return { 'm2m:sub': { rn: resourceName, nu: [notificationUrl], enc: { net: [3] }, nct: 1 } };
}

export function subscriptionUpdate(notificationUrl: string): Record<string, unknown> {
  return { 'm2m:sub': { nu: [notificationUrl] } };
}
