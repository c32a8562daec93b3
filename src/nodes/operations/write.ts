import type { NodeAPI } from 'node-red';
import { payloadToRecords } from '../../lib/content/payload';
import { ContentRecord } from '../../lib/content/values';
import { WriteCompositeRequest } from '../../lib/lwm2m/requests/composite';
import { WriteRequest } from '../../lib/lwm2m/requests/write';
import { InputError, checkCompositeFormat, isEmpty, parsePath, resolveEndpoint, resolveFormat, resolvePath } from '../inputs';
import { registerOperationNode } from '../operation-node';

/** lwm2m write: msg.payload is the value, {resource: value} for an instance, or {path: value} for Write-Composite. */
export function registerWrite(RED: NodeAPI): void {
  registerOperationNode<'lwm2m-write', Record<string, never>>(RED, 'lwm2m-write', {
    request(settings, msg, server, node) {
      const format = resolveFormat(settings.format, msg);
      const mode = isEmpty(settings.mode) ? (msg.mode ?? 'replace') : settings.mode;
      if (mode === 'composite') {
        const payload = msg.payload;
        if (!payload || typeof payload !== 'object' || Array.isArray(payload) || Buffer.isBuffer(payload)) {
          throw new InputError('Write-Composite takes msg.payload as {"/1/0/1": 300, "/3308/0/5900": 21} (null removes a resource instance: {"/3/0/7/1": null})');
        }
        const model = server.modelFor(resolveEndpoint(settings.endpoint, msg));
        // null removes a resource instance (LwM2M 1.2, in a SenML-ETCH Patch Pack).
        const entries = Object.entries(payload);
        const removals = entries.filter(([, value]) => value === null).map(([path]) => parsePath(path));
        const records: ContentRecord[] = entries.filter(([, value]) => value !== null).flatMap(([path, value]) => payloadToRecords(value, parsePath(path), model));
        checkCompositeFormat(node, 'ipatch', format, server.registrations.getByEndpoint(resolveEndpoint(settings.endpoint, msg)));
        return new WriteCompositeRequest(records, format, removals);
      }
      if (mode !== 'replace' && mode !== 'update') throw new InputError(`unknown write mode "${mode}": use replace, update or composite`);
      const path = resolvePath(settings.path, msg);
      return new WriteRequest(path, payloadToRecords(msg.payload, path, server.modelFor(resolveEndpoint(settings.endpoint, msg))), mode, format);
    },
    output(_response, msg, { request }) {
      if (request instanceof WriteRequest) msg.path = request.path.toString();
    },
  });
}
