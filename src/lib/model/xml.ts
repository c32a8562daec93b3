/**
 * A minimal XML reader for DDF files: elements, attributes, text, CDATA,
 * comments, processing instructions and the predefined entities. DTDs are
 * refused, so no entity expansion can blow up.
 */

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

export class XmlError extends Error {
  constructor(message: string, position: number) {
    super(`${message} at offset ${position}`);
    this.name = 'XmlError';
  }
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const MAX_DEPTH = 64;

function decodeEntities(text: string, position: number): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);/g, (_, entity: string) => {
    if (entity.startsWith('#x')) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(parseInt(entity.slice(1), 10));
    const value = ENTITIES[entity];
    if (value === undefined) throw new XmlError(`unknown entity &${entity};`, position);
    return value;
  });
}

export function parseXml(source: string): XmlElement {
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;

  const skipUntil = (terminator: string, what: string) => {
    const end = source.indexOf(terminator, i);
    if (end < 0) throw new XmlError(`unterminated ${what}`, i);
    const content = source.slice(i, end);
    i = end + terminator.length;
    return content;
  };

  while (i < source.length) {
    const lt = source.indexOf('<', i);
    const text = source.slice(i, lt < 0 ? source.length : lt);
    if (text.trim().length > 0) {
      if (stack.length === 0) throw new XmlError('text outside the root element', i);
      stack[stack.length - 1].text += decodeEntities(text, i);
    }
    if (lt < 0) break;
    i = lt;
    if (source.startsWith('<!--', i)) {
      i += 4;
      skipUntil('-->', 'comment');
    } else if (source.startsWith('<![CDATA[', i)) {
      i += 9;
      const content = skipUntil(']]>', 'CDATA section');
      if (stack.length === 0) throw new XmlError('CDATA outside the root element', i);
      stack[stack.length - 1].text += content;
    } else if (source.startsWith('<?', i)) {
      i += 2;
      skipUntil('?>', 'processing instruction');
    } else if (source.startsWith('<!', i)) {
      throw new XmlError('DTDs and declarations are not accepted', i);
    } else if (source.startsWith('</', i)) {
      i += 2;
      const name = skipUntil('>', 'end tag').trim();
      const open = stack.pop();
      if (!open || open.name !== name) throw new XmlError(`</${name}> does not close <${open?.name ?? 'nothing'}>`, i);
    } else {
      i += 1;
      const tagEnd = findTagEnd(source, i);
      let body = source.slice(i, tagEnd);
      i = tagEnd + 1;
      const selfClosing = body.endsWith('/');
      if (selfClosing) body = body.slice(0, -1);
      const element = parseTag(body, lt);
      if (stack.length > 0) stack[stack.length - 1].children.push(element);
      else if (root) throw new XmlError('more than one root element', lt);
      else root = element;
      if (!selfClosing) {
        if (stack.length >= MAX_DEPTH) throw new XmlError(`elements nested deeper than ${MAX_DEPTH}`, lt);
        stack.push(element);
      }
    }
  }
  if (stack.length > 0) throw new XmlError(`<${stack[stack.length - 1].name}> is never closed`, source.length);
  if (!root) throw new XmlError('no root element', 0);
  return root;
}

/** The ">" ending a start tag, skipping ">" inside quoted attribute values. */
function findTagEnd(source: string, from: number): number {
  let quote: string | undefined;
  for (let j = from; j < source.length; j++) {
    const c = source[j];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '>') return j;
  }
  throw new XmlError('unterminated start tag', from);
}

function parseTag(body: string, position: number): XmlElement {
  const nameMatch = /^([A-Za-z_][\w.:-]*)/.exec(body);
  if (!nameMatch) throw new XmlError('invalid element name', position);
  const element: XmlElement = { name: nameMatch[1], attributes: {}, children: [], text: '' };
  const rest = body.slice(nameMatch[1].length);
  const attribute = /\s+([A-Za-z_][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/gy;
  let consumed = 0;
  for (let match; (match = attribute.exec(rest)); consumed = attribute.lastIndex) {
    element.attributes[match[1]] = decodeEntities(match[3] ?? match[4], position);
  }
  if (rest.slice(consumed).trim().length > 0) throw new XmlError(`invalid attributes in <${element.name}>`, position);
  return element;
}

export function childText(element: XmlElement, name: string): string | undefined {
  return element.children.find((child) => child.name === name)?.text.trim();
}
