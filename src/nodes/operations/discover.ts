import type { NodeAPI } from 'node-red';
import { DiscoverRequest, DiscoverResult } from '../../lib/lwm2m/requests/discover';
import { Lwm2mPath } from '../../lib/model/path';
import { InputError, isEmpty, numberFrom, resolvePath } from '../inputs';
import { registerOperationNode } from '../operation-node';

/** lwm2m discover: the links under a path, named from the object model, with their attributes. */
export function registerDiscover(RED: NodeAPI): void {
  registerOperationNode<'lwm2m-discover', DiscoverResult>(RED, 'lwm2m-discover', {
    request(settings, msg) {
      const depthSetting = isEmpty(settings.depth) ? msg.depth : settings.depth;
      let depth: number | undefined;
      if (depthSetting !== undefined && depthSetting !== '') {
        depth = numberFrom(depthSetting);
        if (!Number.isInteger(depth)) throw new InputError(`depth must be 0..3, not ${JSON.stringify(depthSetting)}`);
      }
      return new DiscoverRequest(resolvePath(settings.path, msg), depth);
    },
    output(response, msg, { request, server }) {
      msg.path = request.path.toString();
      const model = server.modelFor(msg.endpoint as string);
      msg.payload = response.links.map((link) => {
        let name: string | undefined;
        try {
          const path = Lwm2mPath.parse(link.path);
          name = path.length >= 3 ? model.getResource(path.objectId, path.resourceId)?.name : path.objectId !== undefined ? model.getObject(path.objectId)?.name : undefined;
        } catch {
          name = undefined;
        }
        return { path: link.path, ...(name ? { name } : {}), attributes: { ...link.attributes } };
      });
    },
  });
}
