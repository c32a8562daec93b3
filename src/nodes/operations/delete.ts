import type { NodeAPI } from 'node-red';
import { DeleteRequest } from '../../lib/lwm2m/requests/delete';
import { resolvePath } from '../inputs';
import { OperationNodeDef, registerOperationNode } from '../operation-node';

interface DeleteNodeDef extends OperationNodeDef {
  path?: string;
}

/** lwm2m delete: removes an object instance such as /3303/1. */
export function registerDelete(RED: NodeAPI): void {
  registerOperationNode<DeleteNodeDef, Record<string, never>>(RED, 'lwm2m-delete', {
    request: (def, msg) => new DeleteRequest(resolvePath(def.path, msg)),
    output(_response, msg, { request }) {
      msg.path = request.path.toString();
    },
  });
}
