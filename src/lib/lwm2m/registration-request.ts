import { ContentFormat, ResponseCode } from '../coap/codes';
import { CoapRequestError } from '../coap/errors';
import { Link, LinkFormatError, parseLinkFormat } from './link-format';
import type { ClientDescription, ObjectInfo } from './registration';
import { decodeUtf8 } from '../content/utf8';

export const SUPPORTED_LWM2M_VERSIONS = ['1.0', '1.1', '1.2'];
export const DEFAULT_LIFETIME = 86400;
const MAX_LIFETIME = 0xffffffff;
const MAX_ENDPOINT_LENGTH = 255;
const MAX_PROFILE_ID_LENGTH = 255;
/** LwM2M 1.0 names whole binding modes, queue mode (Q) among them (Core TS 1.0 section 5.3.1.1). */
const BINDINGS_1_0 = new Set(['U', 'UQ', 'S', 'SQ', 'US', 'UQS']);
/** From 1.1 on, b lists transports: UDP, SMS, Non-IP, TCP; 1.2 adds MQTT and HTTP. Queue mode is the Q parameter. */
const BINDING_LETTERS: Record<string, string> = { '1.1': 'USNT', '1.2': 'USNTMH' };
const MAX_OBJECT_ID = 65535;
const MAX_INSTANCE_ID = 65534;


function badRequest(reason: string): CoapRequestError {
  return new CoapRequestError(ResponseCode.BadRequest, reason);
}

/** Splits Uri-Query options into parameters; a flag such as "Q" has the value true. */
export function parseQueries(queries: string[]): Map<string, string | true> {
  const parameters = new Map<string, string | true>();
  for (const query of queries) {
    const equals = query.indexOf('=');
    const name = equals < 0 ? query : query.slice(0, equals);
    if (name.length === 0) throw badRequest(`invalid query parameter "${query}"`);
    if (parameters.has(name)) throw badRequest(`query parameter "${name}" given twice`);
    parameters.set(name, equals < 0 ? true : query.slice(equals + 1));
  }
  return parameters;
}

function stringParameter(parameters: Map<string, string | true>, name: string, label: string): string | undefined {
  const value = parameters.get(name);
  if (value === true) throw badRequest(`${label} (${name}) needs a value`);
  return value;
}

export interface RegisterRequest extends ClientDescription {
  endpoint: string;
}

/** Reads a Register request (POST /rd?ep=...): throws CoapRequestError with the code and reason to answer. */
export function parseRegisterRequest(queries: string[], payload: Buffer, contentFormat: number | undefined): RegisterRequest {
  const parameters = parseQueries(queries);
  const endpoint = stringParameter(parameters, 'ep', 'endpoint client name');
  if (endpoint === undefined || endpoint.length === 0) throw badRequest('missing endpoint client name (ep)');
  if (endpoint.length > MAX_ENDPOINT_LENGTH) throw badRequest(`endpoint client name longer than ${MAX_ENDPOINT_LENGTH} characters`);
  if (/[\u0000-\u001f\u007f]/.test(endpoint)) throw badRequest('endpoint client name contains control characters');

  const lwm2mVersion = parseVersion(stringParameter(parameters, 'lwm2m', 'LwM2M version'));
  const binding = parseBinding(stringParameter(parameters, 'b', 'binding mode') ?? 'U', lwm2mVersion);
  const lifetimeText = stringParameter(parameters, 'lt', 'lifetime');
  const links = describePayload(payload, contentFormat);
  return {
    endpoint,
    lifetime: lifetimeText === undefined ? DEFAULT_LIFETIME : parseLifetime(lifetimeText),
    lwm2mVersion,
    binding,
    queueMode: parameters.get('Q') === true || binding.includes('Q'),
    smsNumber: stringParameter(parameters, 'sms', 'MSISDN'),
    profileId: parseProfileId(stringParameter(parameters, 'pid', 'profile ID')),
    rootPath: links.rootPath,
    objects: links.objects,
    contentFormats: links.contentFormats,
  };
}

export type UpdateRequest = Partial<Pick<ClientDescription, 'lifetime' | 'binding' | 'smsNumber' | 'queueMode' | 'profileId'>> &
  Partial<Pick<ClientDescription, 'rootPath' | 'objects' | 'contentFormats'>>;

const NO_UPDATE: UpdateRequest = Object.freeze({});

/** Reads an Update request (POST /rd/{id}?lt=...) of a client registered with an LwM2M version: only what the client sent. */
export function parseUpdateRequest(queries: string[], payload: Buffer, contentFormat: number | undefined, lwm2mVersion: string): UpdateRequest {
  if (queries.length === 0 && payload.length === 0) return NO_UPDATE; // the common Update: "still here"
  const parameters = parseQueries(queries);
  const update: UpdateRequest = {};
  const lifetime = stringParameter(parameters, 'lt', 'lifetime');
  if (lifetime !== undefined) update.lifetime = parseLifetime(lifetime);
  const binding = stringParameter(parameters, 'b', 'binding mode');
  if (binding !== undefined) {
    update.binding = parseBinding(binding, lwm2mVersion);
    // In 1.0 the binding says whether the client queues; from 1.1 on an Update has no Q, and queue mode stays as registered.
    if (lwm2mVersion === '1.0') update.queueMode = update.binding.includes('Q');
  }
  if (parameters.get('Q') === true) update.queueMode = true;
  const sms = stringParameter(parameters, 'sms', 'MSISDN');
  if (sms !== undefined) update.smsNumber = sms;
  const profileId = parseProfileId(stringParameter(parameters, 'pid', 'profile ID'));
  if (profileId !== undefined) update.profileId = profileId;
  if (payload.length > 0) Object.assign(update, describePayload(payload, contentFormat));
  return update;
}

function parseVersion(text: string | undefined): string {
  if (text === undefined) return '1.0';
  if (!/^\d+\.\d+$/.test(text)) throw badRequest(`invalid LwM2M version "${text}"`);
  const supported = SUPPORTED_LWM2M_VERSIONS.find((version) => version === text);
  if (supported === undefined) {
    throw new CoapRequestError(
      ResponseCode.PreconditionFailed,
      `LwM2M version ${text} is not supported (supported: ${SUPPORTED_LWM2M_VERSIONS.join(', ')})`,
    );
  }
  return supported; // the constant, not a copy per device
}

function parseLifetime(text: string): number {
  if (!/^\d{1,10}$/.test(text)) throw badRequest(`invalid lifetime (lt) "${text}": a whole number of seconds is required`);
  const lifetime = Number(text);
  if (lifetime < 1 || lifetime > MAX_LIFETIME) throw badRequest(`lifetime (lt) ${lifetime} is out of range 1..${MAX_LIFETIME}`);
  return lifetime;
}

/** Valid binding strings seen so far, per LwM2M version: a fleet shares a handful ("U", "UQ"), not one string per device. */
const bindings: Record<string, Map<string, string>> = Object.fromEntries(SUPPORTED_LWM2M_VERSIONS.map((version) => [version, new Map()]));

/** A binding valid for the client's LwM2M version. */
function parseBinding(text: string, lwm2mVersion: string): string {
  const seen = bindings[lwm2mVersion];
  const known = seen.get(text);
  if (known !== undefined) return known;
  if (!isBinding(text, lwm2mVersion)) {
    if (lwm2mVersion === '1.0') throw badRequest(`invalid binding mode (b) "${text}": LwM2M 1.0 knows U, UQ, S, SQ, US and UQS`);
    const letters = BINDING_LETTERS[lwm2mVersion];
    const queue = text.includes('Q') ? ` (queue mode is the Q parameter since LwM2M 1.1, not a binding letter)` : '';
    throw badRequest(`invalid binding mode (b) "${text}": LwM2M ${lwm2mVersion} knows each of ${letters.split('').join(', ')} at most once${queue}`);
  }
  seen.set(text, text); // bounded: the 1.0 modes and the orderings of four or six letters
  return text;
}

function isBinding(text: string, lwm2mVersion: string): boolean {
  if (lwm2mVersion === '1.0') return BINDINGS_1_0.has(text);
  const letters = BINDING_LETTERS[lwm2mVersion];
  if (text.length === 0 || new Set(text).size !== text.length) return false;
  for (const letter of text) if (!letters.includes(letter)) return false;
  return true;
}

/** The profile ID (pid) of LwM2M 1.2, kept as the client gave it. */
function parseProfileId(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (text.length === 0 || text.length > MAX_PROFILE_ID_LENGTH || /[\u0000-\u001f\u007f]/.test(text)) throw badRequest(`invalid profile ID (pid) "${text.slice(0, 40)}"`);
  return text;
}

type ObjectDescription = Pick<ClientDescription, 'rootPath' | 'objects' | 'contentFormats'>;

/**
 * Descriptions by payload text. Devices of a fleet send the same object
 * links, so they share one frozen description (and are parsed once) instead
 * of each keeping its own arrays. Bounded: cleared when full.
 */
const descriptions = new Map<string, Readonly<ObjectDescription>>();
const MAX_SHARED_DESCRIPTIONS = 4096;

function describePayload(payload: Buffer, contentFormat: number | undefined): Readonly<ObjectDescription> {
  if (contentFormat !== undefined && contentFormat !== ContentFormat.LinkFormat) {
    throw new CoapRequestError(
      ResponseCode.UnsupportedContentFormat,
      `registration payload must be application/link-format (40), not ${contentFormat}`,
    );
  }
  let text: string;
  try {
    text = decodeUtf8(payload);
  } catch {
    throw badRequest('registration payload is not valid UTF-8');
  }
  const known = descriptions.get(text);
  if (known) return known;
  const described = Object.freeze(describeObjects(parseObjectLinks(text)));
  if (descriptions.size >= MAX_SHARED_DESCRIPTIONS) descriptions.clear();
  descriptions.set(text, described);
  return described;
}

function parseObjectLinks(text: string): Link[] {
  try {
    return parseLinkFormat(text);
  } catch (error) {
    if (error instanceof LinkFormatError) throw badRequest(`invalid link format: ${error.message}`);
    throw error;
  }
}

function isRootLink(link: Link): boolean {
  const rt = link.attributes.rt;
  return typeof rt === 'string' && rt.split(' ').includes('oma.lwm2m');
}

/**
 * Object descriptions (id, version, resource type, instances), shared: devices whose lists
 * differ still announce mostly the same objects with the same instances, so
 * each device keeps only its array of shared, frozen entries. By object id,
 * a few variants each; bounded (cleared when full, variants past the limit
 * not shared).
 */
const sharedObjects = new Map<number, ObjectInfo[]>();
const MAX_SHARED_IDS = 4096;
const MAX_VARIANTS_PER_ID = 64;
const NO_INSTANCES: readonly number[] = Object.freeze([]);
const NO_CONTENT_FORMATS: readonly number[] = Object.freeze([]);

function sameInstances(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sharedObject(id: number, version: string | undefined, resourceType: string | undefined, instances: readonly number[]): ObjectInfo {
  let variants = sharedObjects.get(id);
  if (variants) {
    for (const known of variants) {
      if (known.version === version && known.resourceType === resourceType && sameInstances(known.instances, instances)) return known;
    }
  } else {
    if (sharedObjects.size >= MAX_SHARED_IDS) sharedObjects.clear();
    variants = [];
    sharedObjects.set(id, variants);
  }
  // Only the attributes the client gave become fields, as before the entries were shared.
  const object: ObjectInfo = { id, instances: instances.length ? Object.freeze(instances) : NO_INSTANCES };
  if (version !== undefined) object.version = version;
  if (resourceType !== undefined) object.resourceType = resourceType;
  Object.freeze(object);
  if (variants.length < MAX_VARIANTS_PER_ID) variants.push(object);
  return object;
}

/** Turns the object links into the root path, content formats and object list (of shared entries). */
function describeObjects(links: Link[]): ObjectDescription {
  const rootLink = rootLinkOf(links);
  const rootPath = rootLink ? normalizeRoot(rootLink.path) : '/';
  const prefix = rootPath === '/' ? '' : rootPath;
  const base = prefix + '/';
  // Each entry carries its id, so that the map is read by values() without an [id, entry] array per object.
  // Instances start as one-element arrays: an empty array's first push reserves room for 17.
  const objects = new Map<number, { id: number; version?: string; resourceType?: string; instances: number[] | undefined }>();

  for (const link of links) {
    if (link === rootLink) continue;
    if (!link.path.startsWith(base)) throw badRequest(`link <${link.path}> is outside the root path ${rootPath}`);
    // "/{object}" or "/{object}/{instance}" after the root, read in place (this runs for every link of every Register).
    const start = base.length;
    const slash = link.path.indexOf('/', start);
    if (slash >= 0 && link.path.indexOf('/', slash + 1) >= 0) throw badRequest(`link <${link.path}> names a resource; only objects and instances are allowed`);
    const objectId = parseId(link.path, start, slash < 0 ? link.path.length : slash, MAX_OBJECT_ID);
    let object = objects.get(objectId);
    if (!object) {
      object = { id: objectId, version: undefined, resourceType: undefined, instances: undefined };
      objects.set(objectId, object);
    }
    const version = link.attributes.ver;
    if (typeof version === 'string') {
      if (!/^\d+\.\d+$/.test(version)) throw badRequest(`invalid object version "${version}" on <${link.path}>`);
      object.version = version;
    }
    if (typeof link.attributes.rt === 'string') object.resourceType = link.attributes.rt;
    if (slash >= 0) {
      const instanceId = parseId(link.path, slash + 1, link.path.length, MAX_INSTANCE_ID);
      if (object.instances === undefined) object.instances = [instanceId];
      else if (!object.instances.includes(instanceId)) object.instances.push(instanceId);
    }
  }
  // Sized once: a device keeps this array for as long as it is registered, without the slack pushes leave.
  const described = new Array<ObjectInfo>(objects.size);
  let at = 0;
  for (const object of objects.values()) described[at++] = sharedObject(object.id, object.version, object.resourceType, object.instances ? inOrder(object.instances, byNumber) : NO_INSTANCES);
  return {
    rootPath,
    objects: Object.freeze(inOrder(described, byId)),
    contentFormats: rootLink ? sharedContentFormats(rootLink) : NO_CONTENT_FORMATS,
  };
}

const byNumber = (a: number, b: number): number => a - b;
const byId = (a: ObjectInfo, b: ObjectInfo): number => a.id - b.id;

/** Sorted in place, unless already in order as clients mostly list their objects (sort() copies the array to work on). */
function inOrder<T>(items: T[], compare: (a: T, b: T) => number): T[] {
  for (let i = 1; i < items.length; i++) if (compare(items[i - 1], items[i]) > 0) return items.sort(compare);
  return items;
}

/** The link of the LwM2M objects' root: the first with rt="oma.lwm2m", else the first "/"; read by a loop, not find() with a closure per Register. */
function rootLinkOf(links: Link[]): Link | undefined {
  let bare: Link | undefined;
  for (const link of links) {
    if (isRootLink(link)) return link;
    if (bare === undefined && link.path === '/') bare = link;
  }
  return bare;
}

function normalizeRoot(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  if (trimmed === '') return '/';
  if (!trimmed.startsWith('/')) throw badRequest(`root path <${path}> must be absolute`);
  return trimmed;
}

/** The id written in path between start and end: 1 to 5 digits, at most max. */
function parseId(path: string, start: number, end: number, max: number): number {
  let id = 0;
  for (let i = start; i < end; i++) {
    const digit = path.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) throw badRequest(`invalid object link <${path}>`);
    id = id * 10 + digit;
  }
  if (end === start || end - start > 5 || id > max) throw badRequest(`invalid object link <${path}>`);
  return id;
}

/** Content-format lists by their text, shared the same way (a fleet announces a handful). */
const sharedFormats = new Map<string, readonly number[]>();

function sharedContentFormats(rootLink: Link): readonly number[] {
  const ct = rootLink.attributes.ct;
  if (ct === undefined) return NO_CONTENT_FORMATS;
  const known = typeof ct === 'string' ? sharedFormats.get(ct) : undefined;
  if (known) return known;
  const formats = Object.freeze(parseContentFormats(rootLink));
  if (sharedFormats.size >= MAX_SHARED_IDS) sharedFormats.clear();
  sharedFormats.set(ct as string, formats);
  return formats;
}

function parseContentFormats(rootLink: Link): number[] {
  const ct = rootLink.attributes.ct;
  if (ct === undefined) return [];
  if (ct === true) throw badRequest('content format (ct) attribute needs a value');
  const formats = ct.split(' ').filter((part) => part.length > 0);
  if (formats.some((format) => !/^\d{1,5}$/.test(format) || Number(format) > 65535)) {
    throw badRequest(`invalid content format list ct="${ct}"`);
  }
  return formats.map(Number);
}
