import type { NodeAPI } from 'node-red';
import { ATTRIBUTE_NAMES, WriteAttributesRequest } from '../../lib/lwm2m/requests/write-attributes';
import { resolvePath } from '../inputs';
import { OperationNodeDef, registerOperationNode } from '../operation-node';

type AttributeSettings = Partial<Record<'pmin' | 'pmax' | 'gt' | 'lt' | 'st' | 'epmin' | 'epmax', string>>;

interface WriteAttributesNodeDef extends OperationNodeDef, AttributeSettings {
  path?: string;
}

/** lwm2m write-attributes: pmin, pmax, gt, lt, st, epmin, epmax from the node, or msg.payload as an object (null removes one). */
export function registerWriteAttributes(RED: NodeAPI): void {
  registerOperationNode<WriteAttributesNodeDef, Record<string, never>>(RED, 'lwm2m-write-attributes', {
    request(def, msg) {
      const fromNode = Object.fromEntries(
        ATTRIBUTE_NAMES.map((name) => [name, def[name as keyof AttributeSettings]]).filter(([, value]) => typeof value === 'string' && value.trim() !== ''),
      );
      const attributes = Object.keys(fromNode).length > 0 ? fromNode : msg.payload;
      return new WriteAttributesRequest(resolvePath(def.path, msg), attributes);
    },
    output(_response, msg, { request }) {
      msg.path = request.path.toString();
      msg.payload = { ...(request as WriteAttributesRequest).attributes };
    },
  });
}
