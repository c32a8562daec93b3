import type { NodeAPI } from 'node-red';
import { ExecuteRequest } from '../../lib/lwm2m/requests/execute';
import { isEmpty, resolvePath } from '../inputs';
import { registerOperationNode } from '../operation-node';

/** lwm2m execute: runs a resource such as /3/0/4 (Reboot), with arguments from the node or msg.payload. */
export function registerExecute(RED: NodeAPI): void {
  registerOperationNode<'lwm2m-execute', Record<string, never>>(RED, 'lwm2m-execute', {
    request(settings, msg) {
      const fromMsg = typeof msg.payload === 'string' || (msg.payload && typeof msg.payload === 'object') ? msg.payload : '';
      return new ExecuteRequest(resolvePath(settings.path, msg), isEmpty(settings.args) ? fromMsg : settings.args);
    },
    output(_response, msg, { request }) {
      msg.path = request.path.toString();
    },
  });
}
