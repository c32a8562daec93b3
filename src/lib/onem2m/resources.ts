import { ContentFormat } from '../coap/codes';
import { formatName } from '../content/formats';
import type { ContentRecord } from '../content/values';
import type { ObjectModel } from '../model/object-model';
import type { Registration } from '../lwm2m/registration';

/** The endpoint client name without "urn:" (TS-0014 6.2.2.1), usable as a resourceName (no "/"). */
export function endpointResourceName(endpoint: string): string {
  return endpoint.replace(/^urn:/i, '').replace(/\//g, '_');
}

/** AE-IDs start with C (CSE-relative) or S (SP-relative) in TS-0001; names that do not get a C. */
export function aeIdOf(endpoint: string): string {
  const name = endpointResourceName(endpoint);
  return /^[CS]/.test(name) ? name : `C${name}`;
}

/** oneM2M time: basic ISO 8601, UTC, as in expirationTime. */
export function onem2mTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
}

function expiration(registration: Registration): string {
  return onem2mTime(registration.lastUpdate + registration.lifetime * 1000);
}

function clientLabels(registration: Registration): string[] {
  return [`LWM2M Client: ${registration.lwm2mVersion}`, `LWM2M-Endpoint:${registration.endpoint}`];
}

export function nodeResource(registration: Registration, resourceName: string): Record<string, unknown> {
  return { 'm2m:nod': { rn: resourceName, ni: endpointResourceName(registration.endpoint), lbl: clientLabels(registration), et: expiration(registration) } };
}

export function nodeUpdate(registration: Registration): Record<string, unknown> {
  return { 'm2m:nod': { lbl: clientLabels(registration), et: expiration(registration) } };
}

export function aeResource(registration: Registration, nodeLink: string | undefined): Record<string, unknown> {
  return {
    'm2m:ae': {
      rn: endpointResourceName(registration.endpoint),
      api: 'Norg.openmobilealliance.lwm2m',
      rr: false,
      srv: ['3'],
      lbl: clientLabels(registration),
      et: expiration(registration),
      ...(nodeLink ? { nl: nodeLink } : {}),
    },
  };
}

export function aeUpdate(registration: Registration): Record<string, unknown> {
  return { 'm2m:ae': { lbl: clientLabels(registration), et: expiration(registration) } };
}

/** The client's content formats as the LWM2MCT label names them (TLV when it announced none, as LwM2M 1.0 implies). */
function contentFormatLabel(registration: Registration): string {
  const formats = registration.contentFormats.length > 0 ? registration.contentFormats : [ContentFormat.Tlv];
  return formats.map((format) => formatName(format)).join(',');
}

/** A container for an object ("3") or object instance ("3/0"), labelled as TS-0014 6.3.2 says. */
export function objectContainer(registration: Registration, model: ObjectModel, objectId: number, instanceId: number | undefined, maxInstances: number): Record<string, unknown> {
  const uri = instanceId === undefined ? `/${objectId}` : `/${objectId}/${instanceId}`;
  // As TS-0014 writes it: the object's URN without the version the registry appends.
  const urn = (model.getObject(objectId)?.urn ?? `urn:oma:lwm2m:x:${objectId}`).replace(/:\d+\.\d+$/, '');
  return {
    'm2m:cnt': {
      rn: String(instanceId ?? objectId),
      lbl: [`LWM2MRT:${urn}`, `LWM2MPTH:${registration.rootPath}`, `LWM2MURI:${uri}`, `LWM2MCT:${contentFormatLabel(registration)}`],
      mni: maxInstances,
    },
  };
}

/** A plain container of the IPE's own (commands, results, send, a resource in semantic mode). */
export function container(resourceName: string, labels: string[], maxInstances: number): Record<string, unknown> {
  return { 'm2m:cnt': { rn: resourceName, lbl: labels, mni: maxInstances } };
}

/** Transparent mode: the device's payload as it came, base64 when it is not text. */
export function encapsulatedInstance(raw: Buffer, contentFormat: number | undefined, paths: string[]): Record<string, unknown> {
  const textual = contentFormat === ContentFormat.TextPlain || contentFormat === ContentFormat.SenmlJson || contentFormat === ContentFormat.Lwm2mJson;
  const type = contentFormat === undefined ? 'text/plain' : formatName(contentFormat);
  return {
    'm2m:cin': {
      con: textual ? raw.toString('utf8') : raw.toString('base64'),
      cnf: `${type}:${textual ? 0 : 1}`,
      lbl: ['LWM2M-Object-Encapsulation', ...paths.map((path) => `LWM2MURI:${path}`)],
    },
  };
}

/** Semantic mode: one decoded value. */
export function valueInstance(record: ContentRecord): Record<string, unknown> {
  const value = record.value;
  const binary = Buffer.isBuffer(value);
  const con = binary ? value.toString('base64') : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return {
    'm2m:cin': {
      con,
      cnf: binary ? 'application/octet-stream:1' : typeof value === 'object' ? 'application/json:0' : 'text/plain:0',
      lbl: [`LWM2MURI:${record.path}`, `LWM2MTYPE:${record.type}`, ...(record.timestamp !== undefined ? [`LWM2MTIME:${record.timestamp}`] : [])],
    },
  };
}

export function jsonInstance(value: unknown, labels: string[]): Record<string, unknown> {
  return { 'm2m:cin': { con: JSON.stringify(value), cnf: 'application/json:0', lbl: labels } };
}

export function subscription(resourceName: string, notificationUrl: string): Record<string, unknown> {
  // net 3: creation of a direct child resource (a command contentInstance).
  return { 'm2m:sub': { rn: resourceName, nu: [notificationUrl], enc: { net: [3] }, nct: 1 } };
}
