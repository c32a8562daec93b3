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

/** Parses a link-value-list; quoted strings may hold "," and ";". */
export function parseLinkFormat(text: string): Link[] {
  const links: Link[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r' || text[i] === '\n')) i++;
  };
  skipSpace();
  if (i === text.length) return links;
  for (;;) {
    if (links.length === MAX_LINKS) throw new LinkFormatError(`more than ${MAX_LINKS} links`, i);
    if (text[i] !== '<') throw new LinkFormatError(`expected "<"`, i);
    const close = text.indexOf('>', i + 1);
    if (close < 0) throw new LinkFormatError('missing ">"', i);
    const path = text.slice(i + 1, close);
    if (/[\s<"]/.test(path)) throw new LinkFormatError(`invalid character in URI reference "${path}"`, i + 1);
    i = close + 1;
    const attributes: Record<string, string | true> = Object.create(null);
    while (text[i] === ';') {
      i++;
      const nameStart = i;
      while (i < text.length && /[A-Za-z0-9!#$&+\-.^_`|~*]/.test(text[i])) i++;
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
    skipSpace();
    if (i === text.length) return links;
    if (text[i] !== ',') throw new LinkFormatError(`expected "," or ";"`, i);
    i++;
    skipSpace();
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
