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

const ARGUMENT = /^\d(='[\x21\x23-\x26\x28-\x5b\x5d-\x7e ]*')?$/;

/** Accepts the argument string itself, or {digit: value or null} to build it. */
export function formatArguments(args: unknown): string {
  if (args === undefined || args === null || args === '') return '';
  let text: string;
  if (typeof args === 'string') text = args.trim();
  else if (typeof args === 'object' && !Array.isArray(args) && !Buffer.isBuffer(args)) {
    text = Object.entries(args as Record<string, unknown>)
      .map(([key, value]) => {
        if (value === null || value === undefined || value === '') return key;
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') throw new ContentError(`execute argument ${key} must be text or a number`);
        return `${key}='${value}'`;
      })
      .join(',');
  } else throw new ContentError('execute arguments must be a string such as 0=\'x\',1 or an object such as {"0": "x", "1": null}');
  for (const argument of text.split(',')) {
    if (!ARGUMENT.test(argument)) throw new ContentError(`invalid execute argument "${argument}": use a digit, optionally ='text' (no quotes or backslashes inside)`);
  }
  return text;
}
