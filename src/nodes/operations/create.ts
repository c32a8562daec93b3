import type { NodeAPI } from 'node-red';
import { payloadToRecords } from '../../lib/content/payload';
import { CreateRequest, CreateResult } from '../../lib/lwm2m/requests/create';
import { InputError, isEmpty, numberFrom, resolveEndpoint, resolveFormat, resolvePath } from '../inputs';
import { registerOperationNode } from '../operation-node';

/** An instance with the device's defaults: no payload, an empty string or an empty object. */
function isEmptyPayload(payload: unknown): boolean {
  if (payload === undefined || payload === null || payload === '') return true;
  return typeof payload === 'object' && !Buffer.isBuffer(payload) && !Array.isArray(payload) && Object.keys(payload).length === 0;
}

/** lwm2m create: a new instance of an object from msg.payload {resource: value}, or with the device's defaults from an empty one. */
export function registerCreate(RED: NodeAPI): void {
  registerOperationNode<'lwm2m-create', CreateResult>(RED, 'lwm2m-create', {
    request(settings, msg, server) {
      const path = resolvePath(settings.path, msg);
      if (!path.isObject()) throw new InputError(`create needs an object path such as /3303, not ${path}`);
      const requested = isEmpty(settings.instanceId) ? msg.instanceId : settings.instanceId;
      const format = resolveFormat(settings.format, msg);
      let instanceId: number | undefined;
      if (requested !== undefined && requested !== '') {
        instanceId = numberFrom(requested);
        if (!Number.isInteger(instanceId) || instanceId < 0 || instanceId > 65534) throw new InputError(`instance id must be 0..65534, not ${JSON.stringify(requested)}`);
      } else if (!isEmptyPayload(msg.payload)) {
        const registration = server.registrations.getByEndpoint(resolveEndpoint(settings.endpoint, msg));
        if (registration) instanceId = CreateRequest.instanceFor(path.objectId!, undefined, { registration });
      }
      const records = isEmptyPayload(msg.payload) ? [] : payloadToRecords(msg.payload, path.child(instanceId ?? 0), server.modelFor(resolveEndpoint(settings.endpoint, msg)));
      return new CreateRequest(path, records, instanceId, format);
    },
    output(response, msg) {
      msg.path = response.location;
      msg.payload = { instanceId: response.instanceId, location: response.location };
    },
  });
}
