import type { NodeAPI } from 'node-red';
import { payloadToRecords } from '../../lib/content/payload';
import { CreateRequest, CreateResult } from '../../lib/lwm2m/requests/create';
import { InputError, isEmpty, numberFrom, resolveEndpoint, resolveFormat, resolvePath } from '../inputs';
import { registerOperationNode } from '../operation-node';

/** lwm2m create: a new instance of an object from msg.payload {resource: value}. */
export function registerCreate(RED: NodeAPI): void {
  registerOperationNode<'lwm2m-create', CreateResult>(RED, 'lwm2m-create', {
    request(settings, msg, server) {
      const path = resolvePath(settings.path, msg);
      if (!path.isObject()) throw new InputError(`create needs an object path such as /3303, not ${path}`);
      const requested = isEmpty(settings.instanceId) ? msg.instanceId : settings.instanceId;
      let instanceId: number | undefined;
      if (requested !== undefined && requested !== '') {
        instanceId = numberFrom(requested);
        if (!Number.isInteger(instanceId) || instanceId < 0 || instanceId > 65534) throw new InputError(`instance id must be 0..65534, not ${JSON.stringify(requested)}`);
      } else {
        const registration = server.registrations.getByEndpoint(resolveEndpoint(settings.endpoint, msg));
        if (registration) instanceId = CreateRequest.instanceFor(path.objectId!, undefined, { registration });
      }
      const records = payloadToRecords(msg.payload, path.child(instanceId ?? 0), server.model);
      return new CreateRequest(path, records, instanceId, resolveFormat(settings.format, msg));
    },
    output(response, msg) {
      msg.path = response.location;
      msg.payload = { instanceId: response.instanceId, location: response.location };
    },
  });
}
