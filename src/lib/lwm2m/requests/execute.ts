import { Method, ResponseCode } from '../../coap/codes';
import { ContentError } from '../../content/values';
import { isExecutable } from '../../model/object-definition';
import type { Lwm2mPath } from '../../model/path';
import type { CoapRequestSpec, DeviceRequest, RequestContext } from './device-request';

/** Execute (POST) on a resource, with optional arguments: 0='text',1 (LwM2M Core 5.4.5). */
export class ExecuteRequest implements DeviceRequest<Record<string, never>> {
  readonly operation = 'execute';
  readonly successCode = ResponseCode.Changed;
  readonly args: string;

  constructor(
    readonly path: Lwm2mPath,
    args: unknown = '',
  ) {
    if (!path.isResource()) throw new ContentError(`Execute targets a resource such as /3/0/4, not ${path}`);
    this.args = formatArguments(args);
  }

  toCoap(context: RequestContext): CoapRequestSpec {
    const resource = context.model.getResource(this.path.objectId, this.path.resourceId);
    if (resource && !isExecutable(resource)) throw new ContentError(`${this.path} (${resource.name}) is not executable`);
    return { method: Method.POST, path: this.path, ...(this.args ? { contentFormat: 0, payload: Buffer.from(this.args, 'utf8') } : {}) };
  }

  fromCoap(): Record<string, never> {
    return {};
  }
}

const ALLOWED = 'printable ASCII except space, ", \' and \\';

/**
 * Execute arguments by the ABNF of the LwM2M TS (1.0.2 section 5.4.5, Core
 * 1.1.1 section 6.3.5):
 *
 *   arglist = arg *( "," arg )
 *   arg     = DIGIT / DIGIT "=" "'" *CHAR "'"
 *   DIGIT   = "0" / "1" / "2" / "3" / "4" / "5" / "6" / "7" / "8" / "9"
 *   CHAR    = "!" / %x23-26 / %x28-5B / %x5D-7E
 *
 * CHAR is printable ASCII without space, '"', "'" and "\": no white space
 * anywhere (OMA's answer in OMA_LwM2M_for_Developers#487), while a comma
 * inside quotes is part of the value. Each digit names one argument and may
 * appear once (OMA_LwM2M_for_Developers#536): a second value for it is refused too.
 */
function checkArguments(text: string): void {
  const fail = (reason: string): never => {
    throw new ContentError(`invalid execute arguments ${JSON.stringify(text)}: ${reason}`);
  };
  const seen = new Set<string>();
  let i = 0;
  for (;;) {
    const digit = text[i];
    if (digit === undefined || digit < '0' || digit > '9') fail(`expected an argument digit 0-9 at character ${i}${digit === undefined ? '' : `, not ${JSON.stringify(digit)}`}`);
    if (seen.has(digit)) fail(`argument ${digit} is given twice`);
    seen.add(digit);
    i++;
    if (text[i] === '=') {
      if (text[++i] !== "'") fail(`expected ' after ${digit}= at character ${i}`);
      for (i++; i < text.length && text[i] !== "'"; i++) {
        if (!isArgumentChar(text.charCodeAt(i))) fail(`${JSON.stringify(text[i])} at character ${i} is not allowed in a value (${ALLOWED})`);
      }
      if (i === text.length) fail(`the value of argument ${digit} has no closing '`);
      i++;
    }
    if (i === text.length) return;
    if (text[i] !== ',') fail(`expected , between arguments at character ${i}, not ${JSON.stringify(text[i])}`);
    i++;
  }
}

function isArgumentChar(code: number): boolean {
  return code === 0x21 || (code >= 0x23 && code <= 0x26) || (code >= 0x28 && code <= 0x5b) || (code >= 0x5d && code <= 0x7e);
}

/** Accepts the argument string itself, or {digit: value or null} to build it; throws ContentError for what the grammar refuses. */
export function formatArguments(args: unknown): string {
  if (args === undefined || args === null || args === '') return '';
  let text: string;
  if (typeof args === 'string') text = args.trim();
  else if (typeof args === 'object' && !Array.isArray(args) && !Buffer.isBuffer(args)) {
    text = Object.entries(args as Record<string, unknown>)
      .map(([key, value]) => {
        if (value === null || value === undefined || value === '') return key;
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') throw new ContentError(`execute argument ${key} must be text or a number`);
        const written = String(value);
        const bad = [...written].find((char) => !isArgumentChar(char.charCodeAt(0)));
        if (bad !== undefined) throw new ContentError(`execute argument ${key}: ${JSON.stringify(bad)} is not allowed in a value (${ALLOWED})`);
        return `${key}='${written}'`;
      })
      .join(',');
  } else throw new ContentError('execute arguments must be a string such as 0=\'x\',1 or an object such as {"0": "x", "1": null}');
  if (text !== '') checkArguments(text);
  return text;
}
