import type { ResourceValue } from '../lib/content/values';

/** An error code and reason a device answers a request with. */
export interface DeviceRefusal {
  code: number;
  reason: string;
}

/** A simulated device's data: executables are functions (which may refuse), multiple resources are maps of instances. */
export type ExecuteHandler = (args: string) => void | DeviceRefusal;
export type Resource = ResourceValue | ExecuteHandler | Map<number, ResourceValue>;
/** objectId -> instanceId -> resourceId -> resource */
export type ObjectTree = Map<number, Map<number, Map<number, Resource>>>;

type ResourceInit = ResourceValue | ExecuteHandler | ResourceValue[];
export interface ObjectTreeInit {
  [objectId: number]: { [instanceId: number]: { [resourceId: number]: ResourceInit } };
}

export function buildObjectTree(init: ObjectTreeInit): ObjectTree {
  const tree: ObjectTree = new Map();
  for (const [objectId, instances] of Object.entries(init)) {
    const instanceMap = new Map<number, Map<number, Resource>>();
    for (const [instanceId, resources] of Object.entries(instances as Record<string, Record<string, ResourceInit>>)) {
      const resourceMap = new Map<number, Resource>();
      for (const [resourceId, value] of Object.entries(resources)) {
        resourceMap.set(Number(resourceId), Array.isArray(value) ? new Map(value.map((v, i) => [i, v])) : value);
      }
      instanceMap.set(Number(instanceId), resourceMap);
    }
    tree.set(Number(objectId), instanceMap);
  }
  return tree;
}

/** A Server object, a Device object (3), a temperature sensor (3303) and a set point (3308), as a typical constrained device has them. */
export function defaultObjectTree(endpoint: string, onReboot: ExecuteHandler = () => undefined): ObjectTree {
  return buildObjectTree({
    1: { 0: { 0: 1, 1: 60, 2: 1, 3: 60, 6: false, 7: 'U', 8: () => undefined, 9: () => undefined } },
    3: {
      0: {
        0: 'Node-RED LwM2M',
        1: 'Simulated Device',
        2: endpoint,
        3: '1.0.0',
        4: onReboot,
        6: [1, 5],
        7: [3800, 5000],
        9: 100,
        11: [0],
        13: new Date(Math.floor(Date.now() / 1000) * 1000),
        14: '+01:00',
        16: 'U',
      },
    },
    3303: { 0: { 5700: 21.5, 5701: 'Cel', 5601: 18.25, 5602: 24.75 } },
    3308: { 0: { 5900: 20, 5701: 'Cel' } },
  });
}
