/** An LwM2M path: /object/instance/resource/resource-instance, any prefix of it, or "/" for the root. */
export class Lwm2mPath {
  private text: string | undefined = undefined;

  private constructor(readonly ids: readonly number[]) {}

  static readonly ROOT = new Lwm2mPath([]);

  static of(...ids: number[]): Lwm2mPath {
    if (ids.length > 4) throw new PathError(`path /${ids.join('/')} is deeper than a resource instance`);
    ids.forEach((id, level) => checkId(id, level, `/${ids.join('/')}`));
    return new Lwm2mPath(ids);
  }

  /** Parses "/3/0/1", "3/0/1" or "/" and throws PathError with a reason otherwise. */
  static parse(text: string): Lwm2mPath {
    if (typeof text !== 'string') throw new PathError(`path must be a string like /3/0/1, not ${typeof text}`);
    // Paths are immutable and flows name the same few over and over: parsed ones are kept (bounded).
    const known = parsed.get(text);
    if (known) return known;
    const path = Lwm2mPath.parseText(text);
    if (parsed.size >= MAX_PARSED) parsed.clear();
    parsed.set(text, path);
    return path;
  }

  private static parseText(text: string): Lwm2mPath {
    const trimmed = text.trim();
    if (trimmed === '/' || trimmed === '') {
      if (trimmed === '') throw new PathError('path is empty');
      return Lwm2mPath.ROOT;
    }
    const segments = trimmed.replace(/^\//, '').replace(/\/$/, '').split('/');
    if (segments.length > 4) throw new PathError(`path ${text} is deeper than a resource instance`);
    const ids = segments.map((segment) => {
      if (!/^\d{1,5}$/.test(segment)) throw new PathError(`path ${text} has "${segment}" where a number is expected`);
      return Number(segment);
    });
    ids.forEach((id, level) => checkId(id, level, text));
    return new Lwm2mPath(ids);
  }

  get objectId(): number | undefined {
    return this.ids[0];
  }
  get instanceId(): number | undefined {
    return this.ids[1];
  }
  get resourceId(): number | undefined {
    return this.ids[2];
  }
  get resourceInstanceId(): number | undefined {
    return this.ids[3];
  }
  get length(): number {
    return this.ids.length;
  }
  isRoot(): boolean {
    return this.ids.length === 0;
  }
  isObject(): boolean {
    return this.ids.length === 1;
  }
  isInstance(): boolean {
    return this.ids.length === 2;
  }
  isResource(): boolean {
    return this.ids.length === 3;
  }
  isResourceInstance(): boolean {
    return this.ids.length === 4;
  }

  child(id: number): Lwm2mPath {
    return Lwm2mPath.of(...this.ids, id);
  }

  parent(): Lwm2mPath {
    return new Lwm2mPath(this.ids.slice(0, -1));
  }

  startsWith(prefix: Lwm2mPath): boolean {
    return prefix.ids.every((id, i) => this.ids[i] === id);
  }

  equals(other: Lwm2mPath): boolean {
    return this.ids.length === other.ids.length && this.startsWith(other);
  }

  toString(): string {
    return (this.text ??= '/' + this.ids.join('/'));
  }
}

const parsed = new Map<string, Lwm2mPath>();
const MAX_PARSED = 4096;

export class PathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PathError';
  }
}

/** Object ids go to 65535 (65535 itself reserved), instance ids to 65534 (65535 is "no instance"). */
function checkId(id: number, level: number, text: string): void {
  const max = level === 0 ? 65534 : level === 1 ? 65534 : 65535;
  if (!Number.isInteger(id) || id < 0 || id > max) throw new PathError(`path ${text} has id ${id} out of range 0..${max}`);
}
