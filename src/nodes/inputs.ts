import type { Node, NodeAPI, NodeMessage } from 'node-red';
import { parseContentFormat } from '../lib/content/formats';
import type { Registration } from '../lib/lwm2m/registration';
import { CompositeMethod, compositeFormats } from '../lib/lwm2m/requests/composite';
import { Lwm2mPath, PathError } from '../lib/model/path';
import { ATTRIBUTE_NAMES } from '../lib/lwm2m/requests/write-attributes';

/** A msg that cannot become a request: reported with node.error(err, msg). */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

export type Msg = Record<string, unknown> & { payload?: unknown; _msgid?: string };

/*
 * One rule for every property, as in the core nodes: a setting made in the
 * node wins; a setting left empty is taken from the msg (msg.endpoint,
 * msg.path or msg.topic, msg.timeout, msg.contentFormat, msg.instanceId,
 * msg.depth, msg.payload). A typed setting (msg, flow, global, env) names
 * where the value comes from and is read for each msg.
 */

/** The types a device or path setting may have in the editor. */
const SETTING_TYPES = new Set(['str', 'msg', 'flow', 'global', 'env']);

/**
 * A typed setting's value for one msg: a text as it is (empty: the msg's
 * value applies), the others read now (flow and global may live in an
 * asynchronous context store); a msg, flow, global or env property that is
 * not set is an error naming it.
 */
export function typedSetting(RED: NodeAPI, node: Node, value: string, type: string | undefined, msg: Msg): string | Promise<string> {
  const kind = type || 'str';
  if (kind === 'str') return value;
  if (!SETTING_TYPES.has(kind)) return Promise.reject(new InputError(`unknown setting type "${kind}"`));
  return new Promise((resolve, reject) =>
    RED.util.evaluateNodeProperty(value, kind, node, msg as NodeMessage, (error, result) => {
      // A property below one that is missing fails to evaluate: for the flow, it is just not set.
      if (error || result === undefined || result === null || String(result).trim() === '') reject(new InputError(`${kind}.${value} is not set`));
      else resolve(String(result));
    }),
  );
}

/** The node's device wins where set; otherwise msg.endpoint. */
export function resolveEndpoint(setting: string | undefined, msg: Msg): string {
  const value = setting?.trim() || msg.endpoint;
  if (typeof value !== 'string' || value.trim() === '') throw new InputError('no device: set the endpoint in the node or in msg.endpoint');
  return value.trim();
}

/** The node's path wins where set; otherwise msg.path, or msg.topic when it looks like a path. */
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

/** Whether a node setting was left empty (so the msg's value applies). */
export function isEmpty(setting: unknown): boolean {
  return setting === undefined || setting === null || String(setting).trim() === '';
}

/** The request timeout in milliseconds: the node's seconds where set, otherwise msg.timeout, otherwise 10 s. */
export function resolveTimeoutMs(setting: string | number | undefined, msg: Msg): number {
  const given = isEmpty(setting) ? msg.timeout : setting;
  const value = given === undefined ? 10 : numberFrom(given);
  if (!Number.isFinite(value) || value <= 0 || value > 3600) throw new InputError(`timeout must be between 0 and 3600 seconds, not ${JSON.stringify(given)}`);
  return value * 1000;
}

/** msg.ttl: seconds a request may wait for a sleeping queue-mode device (the server's setting otherwise). */
export function resolveTtlMs(msg: Msg): number | undefined {
  if (msg.ttl === undefined) return undefined;
  const value = numberFrom(msg.ttl);
  if (!Number.isFinite(value) || value <= 0) throw new InputError(`msg.ttl must be a positive number of seconds, not ${JSON.stringify(msg.ttl)}`);
  return value * 1000;
}

/** The paths of a composite operation: the node's comma-separated paths where set, otherwise msg.paths. */
export function compositePaths(setting: string | undefined, msg: Msg, operation: string): Lwm2mPath[] {
  const listed: unknown = setting?.trim() ? setting.split(',') : msg.paths;
  if (!Array.isArray(listed) || listed.length === 0) throw new InputError(`${operation} needs paths: in the node (comma-separated) or in msg.paths (an array)`);
  return listed.map((path: unknown) => parsePath(typeof path === 'string' ? path.trim() : path));
}

/** The notification attributes a node sets (the empty ones left out). */
export function attributesOf(settings: object): Record<string, string> {
  const values = settings as Record<string, unknown>;
  return Object.fromEntries(ATTRIBUTE_NAMES.filter((name) => !isEmpty(values[name])).map((name) => [name, String(values[name]).trim()]));
}
