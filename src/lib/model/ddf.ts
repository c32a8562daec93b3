import type { ResourceType } from '../content/values';
import type { ObjectDefinition, ResourceDefinition } from './object-definition';
import { XmlElement, childText, parseXml } from './xml';

export class DdfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DdfError';
  }
}

const TYPES: Record<string, ResourceType> = {
  string: 'string',
  integer: 'integer',
  'unsigned integer': 'unsigned',
  float: 'float',
  boolean: 'boolean',
  opaque: 'opaque',
  time: 'time',
  objlnk: 'objlnk',
  corelnk: 'corelnk',
  '': 'none',
};

const MAX_DESCRIPTION = 300;

/** Reads the object definitions of a DDF XML document (the OMA LwM2M registry format). */
export function parseDdf(xml: string): ObjectDefinition[] {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (error) {
    throw new DdfError(`not well-formed XML: ${(error as Error).message}`);
  }
  if (root.name !== 'LWM2M') throw new DdfError(`root element is <${root.name}>, not <LWM2M>`);
  const objects = root.children.filter((child) => child.name === 'Object');
  if (objects.length === 0) throw new DdfError('no <Object> element');
  return objects.map(parseObject);
}

function parseObject(element: XmlElement): ObjectDefinition {
  const id = integer(childText(element, 'ObjectID'), 'ObjectID', 65534);
  const name = required(childText(element, 'Name'), `object ${id}: <Name>`);
  const resourcesElement = element.children.find((child) => child.name === 'Resources');
  const resources: Record<number, ResourceDefinition> = {};
  for (const item of resourcesElement?.children.filter((child) => child.name === 'Item') ?? []) {
    const resource = parseResource(item, id);
    if (resources[resource.id]) throw new DdfError(`object ${id} defines resource ${resource.id} twice`);
    resources[resource.id] = resource;
  }
  return {
    id,
    name,
    version: childText(element, 'ObjectVersion') || '1.0',
    lwm2mVersion: childText(element, 'LWM2MVersion') || undefined,
    urn: childText(element, 'ObjectURN') || undefined,
    multiple: childText(element, 'MultipleInstances') === 'Multiple',
    mandatory: childText(element, 'Mandatory') === 'Mandatory',
    description: shorten(childText(element, 'Description1')),
    resources,
  };
}

function parseResource(item: XmlElement, objectId: number): ResourceDefinition {
  const id = integer(item.attributes.ID, `object ${objectId}: Item ID`, 65534);
  const where = `object ${objectId} resource ${id}`;
  const typeText = (childText(item, 'Type') ?? '').toLowerCase();
  const type = TYPES[typeText];
  if (!type) throw new DdfError(`${where}: unknown type "${typeText}"`);
  const operations = (childText(item, 'Operations') ?? '').toUpperCase();
  if (!/^(R|W|RW|E|)$/.test(operations)) throw new DdfError(`${where}: unknown operations "${operations}"`);
  const resource: ResourceDefinition = {
    id,
    name: required(childText(item, 'Name'), `${where}: <Name>`),
    operations,
    multiple: childText(item, 'MultipleInstances') === 'Multiple',
    mandatory: childText(item, 'Mandatory') === 'Mandatory',
    type,
  };
  const range = childText(item, 'RangeEnumeration');
  if (range) resource.range = range;
  const units = childText(item, 'Units');
  if (units) resource.units = units;
  const description = shorten(childText(item, 'Description'));
  if (description) resource.description = description;
  return resource;
}

function integer(text: string | undefined, what: string, max: number): number {
  if (text === undefined || !/^\d{1,5}$/.test(text.trim()) || Number(text) > max) throw new DdfError(`${what} "${text ?? ''}" is not an id`);
  return Number(text);
}

function required(text: string | undefined, what: string): string {
  if (!text) throw new DdfError(`${what} is missing`);
  return text;
}

/** Descriptions are kept for the editor, up to their first paragraph. */
function shorten(text: string | undefined): string | undefined {
  if (!text) return undefined;
  const paragraph = text.split(/\n\s*\n/)[0].replace(/\s+/g, ' ').trim();
  return paragraph.length > MAX_DESCRIPTION ? paragraph.slice(0, MAX_DESCRIPTION - 1) + '…' : paragraph;
}
