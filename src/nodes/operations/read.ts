import type { NodeAPI } from 'node-red';
import { namedRecords, recordsToPayload } from '../../lib/content/payload';
import { ReadCompositeRequest } from '../../lib/lwm2m/requests/composite';
import { ReadRequest, ReadResult } from '../../lib/lwm2m/requests/read';
import { InputError, checkCompositeFormat, parsePath, resolveEndpoint, resolveFormat, resolvePath } from '../inputs';
import { OperationNodeDef, registerOperationNode } from '../operation-node';

interface ReadNodeDef extends OperationNodeDef {
  path?: string;
  format?: string;
  /** Read-Composite: several paths in one FETCH. */
  composite?: boolean;
  raw?: boolean;
}

/** lwm2m read: Read, or Read-Composite of the node's comma-separated paths or msg.paths. */
export function registerRead(RED: NodeAPI): void {
  registerOperationNode<ReadNodeDef, ReadResult>(RED, 'lwm2m-read', {
    request(def, msg, server, node) {
      const format = resolveFormat(def.format, msg);
      if (!def.composite) return new ReadRequest(resolvePath(def.path, msg), format);
      const listed: unknown = def.path?.trim() ? def.path.split(',') : msg.paths;
      if (!Array.isArray(listed) || listed.length === 0) throw new InputError('Read-Composite needs paths: in the node (comma-separated) or in msg.paths (an array)');
      checkCompositeFormat(node, 'fetch', format, server.registrations.getByEndpoint(resolveEndpoint(def.endpoint, msg)));
      return new ReadCompositeRequest(listed.map((path: unknown) => parsePath(typeof path === 'string' ? path.trim() : path)), format);
    },
    output(response, msg, { def, request, server }) {
      if (request instanceof ReadRequest) msg.path = request.path.toString();
      msg.payload = recordsToPayload(response.records, request.path);
      msg.resources = namedRecords(response.records, server.modelFor(msg.endpoint as string));
      if (def.raw) msg.raw = response.raw;
    },
  });
}
