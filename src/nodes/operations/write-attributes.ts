import type { NodeAPI } from 'node-red';
import { WriteAttributesRequest } from '../../lib/lwm2m/requests/write-attributes';
import { attributesOf, resolvePath } from '../inputs';
import { registerOperationNode } from '../operation-node';

/** lwm2m write-attributes: the node's attributes, or msg.payload as an object (null removes one) when the node sets none. */
export function registerWriteAttributes(RED: NodeAPI): void {
  registerOperationNode<'lwm2m-write-attributes', Record<string, never>>(RED, 'lwm2m-write-attributes', {
    request(settings, msg) {
      const fromNode = attributesOf(settings);
      return new WriteAttributesRequest(resolvePath(settings.path, msg), Object.keys(fromNode).length > 0 ? fromNode : msg.payload);
    },
    output(_response, msg, { request }) {
      msg.path = request.path.toString();
      msg.payload = { ...(request as WriteAttributesRequest).attributes };
    },
  });
}
