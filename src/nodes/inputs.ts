import type { Node } from 'node-red';
import { parseContentFormat } from '../lib/content/formats';
import type { Registration } from '../lib/lwm2m/registration';
import { CompositeMethod, compositeFormats } from '../lib/lwm2m/requests/composite';
import { Lwm2mPath, PathError } from '../lib/model/path';

/** A msg that cannot become a request: reported with node.error(err, msg). */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

export type Msg = Record<string, unknown> & { payload?: unknown; _msgid?: string };

/** The node's setting wins where set; otherwise msg.endpoint. */
export function resolveEndpoint(setting: string | undefined, msg: Msg): string {
  const value = setting?.trim() || msg.endpoint;
  if (typeof value !== 'string' || value.trim() === '') throw new InputError('no device: set the endpoint in the node or in msg.endpoint');
  return value.trim();
}

/** The node's setting wins where set; otherwise msg.path, or msg.topic when it looks like a path. */
export function resolvePath(setting: string | undefined, msg: Msg): Lwm2mPath {
  const fromMsg = msg.path ?? (typeof msg.topic === 'string' && msg.topic.trim().startsWith('/') ? msg.topic : undefined);
  const value = setting?.trim() || fromMsg;
  if (value === undefined || value === '') throw new InputError('no path: set it in the node, in msg.path or in msg.topic (such as /3/0/0)');
  return parsePath(value);
}

export function parsePath(value: unknown): Lwm2mPath {
  if (typeof value !== 'string') throw new InputError(`path must be a string such as /3/0/0, not ${typeof value}`);
  try {
    return Lwm2mPath.parse(value);
  } catch (error) {
    throw new InputError((error as PathError).message);
  }
}

/** A content format from the node ("auto" or empty: none) or msg.contentFormat. */
export function resolveFormat(setting: string | undefined, msg: Msg): number | undefined {
  const value = setting && setting !== 'auto' ? setting : msg.contentFormat;
  if (value === undefined || value === null || value === '' || value === 'auto') return undefined;
  try {
    return parseContentFormat(value);
  } catch (error) {
    throw new InputError((error as Error).message);
  }
}

/**
 * Checks the format of a composite operation on a device before anything is
 * sent, and warns when it is a guess (the device announced none of the formats).
 */
export function checkCompositeFormat(node: Node, method: CompositeMethod, format: number | undefined, registration: Registration | undefined): void {
  if (!registration) return;
  const { fallback } = compositeFormats(method, format, registration);
  if (fallback) node.warn(fallback);
}

/** A number from a msg property or a node setting; NaN for anything that is neither number nor text. */
export function numberFrom(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '') return Number(value);
  return NaN;
}

/** Timeout in seconds from the node, or msg.timeout; in milliseconds. */
export function resolveTimeoutMs(setting: string | number | undefined, msg: Msg): number {
  const value = numberFrom(msg.timeout ?? (setting === '' ? undefined : setting) ?? 10);
  if (!Number.isFinite(value) || value <= 0 || value > 3600) throw new InputError(`timeout must be between 0 and 3600 seconds, not ${JSON.stringify(msg.timeout ?? setting)}`);
  return value * 1000;
}

/** msg.ttl: seconds a request may wait for a sleeping queue-mode device (the server's setting otherwise). */
export function resolveTtlMs(msg: Msg): number | undefined {
  if (msg.ttl === undefined) return undefined;
  const value = numberFrom(msg.ttl);
  if (!Number.isFinite(value) || value <= 0) throw new InputError(`msg.ttl must be a positive number of seconds, not ${JSON.stringify(msg.ttl)}`);
  return value * 1000;
}
