/** A small in-memory LwM2M object tree for the simulated device. */

export type ResourceValue = string | number | boolean | Buffer;
export type ExecuteHandler = (args: string) => void;
export type Resource = ResourceValue | ExecuteHandler;
/** objectId -> instanceId -> resourceId -> value */
export type ObjectTree = Map<number, Map<number, Map<number, Resource>>>;

export interface ObjectTreeInit {
  [objectId: number]: { [instanceId: number]: { [resourceId: number]: Resource } };
}

export function buildObjectTree(init: ObjectTreeInit): ObjectTree {
  const tree: ObjectTree = new Map();
  for (const [objectId, instances] of Object.entries(init)) {
    const instanceMap = new Map<number, Map<number, Resource>>();
    for (const [instanceId, resources] of Object.entries(instances as Record<string, Record<string, Resource>>)) {
      instanceMap.set(Number(instanceId), new Map(Object.entries(resources).map(([id, value]) => [Number(id), value])));
    }
    tree.set(Number(objectId), instanceMap);
  }
  return tree;
}

/** A Device object (3) and a temperature sensor (3303) as a typical constrained device has them. */
export function defaultObjectTree(endpoint: string): ObjectTree {
  return buildObjectTree({
    1: { 0: { 0: 1, 1: 60, 6: false, 7: 'U' } },
    3: {
      0: {
        0: 'Node-RED LwM2M',
        1: 'Simulated Device',
        2: endpoint,
        3: '1.0.0',
        4: () => undefined,
        9: 100,
        11: 0,
        13: Math.floor(Date.now() / 1000),
        16: 'U',
      },
    },
    3303: { 0: { 5700: 21.5, 5701: 'Cel' } },
  });
}

/** Text/plain representation of a single resource value (LwM2M Core, Plain Text content format). */
export function formatText(value: ResourceValue): string {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (typeof value === 'boolean') return value ? '1' : '0';
  return String(value);
}

/** Parses text/plain into the type the resource already holds. */
export function parseText(text: string, current: Resource | undefined): ResourceValue {
  if (typeof current === 'number') {
    const number = Number(text);
    if (text.trim() === '' || Number.isNaN(number)) throw new Error(`"${text}" is not a number`);
    return number;
  }
  if (typeof current === 'boolean') {
    if (text !== '0' && text !== '1') throw new Error(`"${text}" is not a boolean (0 or 1)`);
    return text === '1';
  }
  if (Buffer.isBuffer(current)) return Buffer.from(text, 'base64');
  return text;
}
