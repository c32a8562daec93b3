/** CoRE Link Format (RFC 6690) as used by LwM2M registration and discovery. */

export interface Link {
  /** The URI reference between angle brackets, e.g. "/3/0". */
  path: string;
  /** Attribute values; a bare attribute (no "=") is true. */
  attributes: Record<string, string | true>;
}

export class LinkFormatError extends Error {
  constructor(message: string, readonly position: number) {
    super(`${message} at character ${position}`);
    this.name = 'LinkFormatError';
  }
}

const MAX_LINKS = 10_000;

/** The attributes of every link that has none (most links of a registration): one frozen object, not one each. */
const NO_ATTRIBUTES: Record<string, string | true> = Object.freeze(Object.create(null));

/** A character of a link-extension name (RFC 6690 parmname: RFC 5987 attr-char): letters, digits and !#$&+-.^_`|~ (and * for ext-name*). */
function isNameCharacter(c: number): boolean {
  return (
    (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) ||
    c === 33 || c === 35 || c === 36 || c === 38 || c === 43 || c === 45 || c === 46 || c === 94 || c === 95 || c === 96 || c === 124 || c === 126 || c === 42
  );
}

/** The index of the first character at or after i that is not white space. */
function skipSpace(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r' || text[i] === '\n')) i++;
  return i;
}

/** Parses a link-value-list; quoted strings may hold "," and ";". Links without attributes share one frozen, empty attributes object. */
export function parseLinkFormat(text: string): Link[] {
  const links: Link[] = [];
  let i = skipSpace(text, 0);
  if (i === text.length) return links;
  for (;;) {
    if (links.length === MAX_LINKS) throw new LinkFormatError(`more than ${MAX_LINKS} links`, i);
    if (text[i] !== '<') throw new LinkFormatError(`expected "<"`, i);
    const close = text.indexOf('>', i + 1);
    if (close < 0) throw new LinkFormatError('missing ">"', i);
    const path = text.slice(i + 1, close);
    if (/[\s<"]/.test(path)) throw new LinkFormatError(`invalid character in URI reference "${path}"`, i + 1);
    i = close + 1;
    let attributes = NO_ATTRIBUTES;
    if (text[i] === ';') attributes = Object.create(null);
    while (text[i] === ';') {
      i++;
      const nameStart = i;
      while (i < text.length && isNameCharacter(text.charCodeAt(i))) i++;
      const name = text.slice(nameStart, i);
      if (name.length === 0) throw new LinkFormatError('empty attribute name', nameStart);
      if (text[i] !== '=') {
        attributes[name] = true;
        continue;
      }
      i++;
      if (text[i] === '"') {
        let value = '';
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          value += text[i++];
        }
        if (i >= text.length) throw new LinkFormatError('unterminated quoted string', nameStart);
        i++;
        attributes[name] = value;
      } else {
        const valueStart = i;
        while (i < text.length && text[i] !== ';' && text[i] !== ',') i++;
        const value = text.slice(valueStart, i);
        if (value.length === 0 || /[\s"<>]/.test(value)) throw new LinkFormatError(`invalid value for "${name}"`, valueStart);
        attributes[name] = value;
      }
    }
    links.push({ path, attributes });
    i = skipSpace(text, i);
    if (i === text.length) return links;
    if (text[i] !== ',') throw new LinkFormatError(`expected "," or ";"`, i);
    i = skipSpace(text, i + 1);
  }
}

export function formatLinkFormat(links: Link[]): string {
  return links
    .map((link) => {
      let text = `<${link.path}>`;
      for (const [name, value] of Object.entries(link.attributes)) {
        if (value === true) text += `;${name}`;
        else if (/^[0-9A-Za-z.\-_]+$/.test(value) && name !== 'rt') text += `;${name}=${value}`;
        else text += `;${name}="${value.replace(/(["\\])/g, '\\$1')}"`;
      }
      return text;
    })
    .join(',');
}
