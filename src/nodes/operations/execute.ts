import type { NodeAPI } from 'node-red';
import { ExecuteRequest } from '../../lib/lwm2m/requests/execute';
import { resolvePath } from '../inputs';
import { OperationNodeDef, registerOperationNode } from '../operation-node';

interface ExecuteNodeDef extends OperationNodeDef {
  path?: string;
  /** Arguments such as 0='x',1; msg.payload when empty. */
  args?: string;
}

/** lwm2m execute: runs a resource such as /3/0/4 (Reboot), with arguments from the node or msg.payload. */
export function registerExecute(RED: NodeAPI): void {
  registerOperationNode<ExecuteNodeDef, Record<string, never>>(RED, 'lwm2m-execute', {
    request(def, msg) {
      const args = def.args?.trim() ? def.args : typeof msg.payload === 'string' || (msg.payload && typeof msg.payload === 'object') ? msg.payload : '';
      return new ExecuteRequest(resolvePath(def.path, msg), args);
    },
    output(_response, msg, { request }) {
      msg.path = request.path.toString();
    },
  });
}
