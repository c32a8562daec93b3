import type { NodeAPI } from 'node-red';
import { DeleteRequest } from '../../lib/lwm2m/requests/delete';
import { resolvePath } from '../inputs';
import { registerOperationNode } from '../operation-node';

/** lwm2m delete: removes an object instance such as /3303/1. */
export function registerDelete(RED: NodeAPI): void {
  registerOperationNode<'lwm2m-delete', Record<string, never>>(RED, 'lwm2m-delete', {
    request: (settings, msg) => new DeleteRequest(resolvePath(settings.path, msg)),
    output(_response, msg, { request }) {
      msg.path = request.path.toString();
    },
  });
}
