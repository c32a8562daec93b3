import type { NodeAPI } from 'node-red';
import { namedRecords, recordsToPayload } from '../../lib/content/payload';
import { ReadCompositeRequest } from '../../lib/lwm2m/requests/composite';
import { ReadRequest, ReadResult } from '../../lib/lwm2m/requests/read';
import { checkCompositeFormat, compositePaths, resolveEndpoint, resolveFormat, resolvePath } from '../inputs';
import { registerOperationNode } from '../operation-node';

/** lwm2m read: Read, or Read-Composite of the node's comma-separated paths or msg.paths. */
export function registerRead(RED: NodeAPI): void {
  registerOperationNode<'lwm2m-read', ReadResult>(RED, 'lwm2m-read', {
    request(settings, msg, server, node) {
      const format = resolveFormat(settings.format, msg);
      if (!settings.composite) return new ReadRequest(resolvePath(settings.path, msg), format);
      const paths = compositePaths(settings.path, msg, 'Read-Composite');
      checkCompositeFormat(node, 'fetch', format, server.registrations.getByEndpoint(resolveEndpoint(settings.endpoint, msg)));
      return new ReadCompositeRequest(paths, format);
    },
    output(response, msg, { settings, request, server }) {
      if (request instanceof ReadRequest) msg.path = request.path.toString();
      msg.payload = recordsToPayload(response.records, request.path);
      msg.resources = namedRecords(response.records, server.modelFor(msg.endpoint as string));
      if (settings.raw) msg.raw = response.raw;
    },
  });
}
