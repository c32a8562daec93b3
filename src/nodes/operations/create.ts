import type { NodeAPI } from 'node-red';
import { payloadToRecords } from '../../lib/content/payload';
import { CreateRequest, CreateResult } from '../../lib/lwm2m/requests/create';
import { InputError, numberFrom, resolveEndpoint, resolveFormat, resolvePath } from '../inputs';
import { OperationNodeDef, registerOperationNode } from '../operation-node';

interface CreateNodeDef extends OperationNodeDef {
  path?: string;
  format?: string;
  instanceId?: string;
}

/** An instance with the device's defaults: no payload, an empty string or an empty object. */
function isEmpty(payload: unknown): boolean {
  if (payload === undefined || payload === null || payload === '') return true;
  return typeof payload === 'object' && !Buffer.isBuffer(payload) && !Array.isArray(payload) && Object.keys(payload).length === 0;
}

/** lwm2m create: a new instance of an object from msg.payload {resource: value}, or with the device's defaults from an empty one. */
export function registerCreate(RED: NodeAPI): void {
  registerOperationNode<CreateNodeDef, CreateResult>(RED, 'lwm2m-create', {
    request(def, msg, server) {
      const path = resolvePath(def.path, msg);
      if (!path.isObject()) throw new InputError(`create needs an object path such as /3303, not ${path}`);
      const requested = def.instanceId?.trim() ? def.instanceId : msg.instanceId;
      const format = resolveFormat(def.format, msg);
      let instanceId: number | undefined;
      if (requested !== undefined && requested !== '') {
        instanceId = numberFrom(requested);
        if (!Number.isInteger(instanceId) || instanceId < 0 || instanceId > 65534) throw new InputError(`instance id must be 0..65534, not ${JSON.stringify(requested)}`);
      } else if (!isEmpty(msg.payload)) {
        const registration = server.registrations.getByEndpoint(resolveEndpoint(def.endpoint, msg));
        if (registration) instanceId = CreateRequest.instanceFor(path.objectId!, undefined, { registration });
      }
      const records = isEmpty(msg.payload) ? [] : payloadToRecords(msg.payload, path.child(instanceId ?? 0), server.modelFor(resolveEndpoint(def.endpoint, msg)));
      return new CreateRequest(path, records, instanceId, format);
    },
    output(response, msg) {
      msg.path = response.location;
      msg.payload = { instanceId: response.instanceId, location: response.location };
    },
  });
}
