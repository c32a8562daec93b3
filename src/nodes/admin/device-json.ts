import { registrationToJson, type Registration } from '../../lib/lwm2m/registration';
import type { Lwm2mServer } from '../../lib/lwm2m/server';
import type { ObjectDefinition } from '../../lib/model/object-definition';

/** Values as JSON for the editor: bytes as {hex}, times as ISO text. */
export function jsonValue(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return { hex: value.toString('hex') };
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(jsonValue);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, jsonValue(item)]));
  return value;
}

/** Values from the editor: {hex} back to bytes, everything else as it came. */
export function valueFromJson(value: unknown): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    if (typeof object.hex === 'string' && Object.keys(object).length === 1) {
      if (!/^([0-9a-fA-F]{2})*$/.test(object.hex)) return value;
      return Buffer.from(object.hex, 'hex');
    }
    return Object.fromEntries(Object.entries(object).map(([key, item]) => [key, valueFromJson(item)]));
  }
  if (Array.isArray(value)) return value.map(valueFromJson);
  return value;
}

/** A device as a row of the devices list: small and of fixed size, whatever the device has (a page of 50 stays far below 50 KB). */
export function deviceSummary(server: Lwm2mServer, registration: Registration) {
  const identity = registrationToJson(registration);
  return {
    endpoint: registration.endpoint,
    address: registration.address,
    port: registration.port,
    transport: registration.transport,
    security: identity.security,
    binding: registration.binding,
    lwm2mVersion: registration.lwm2mVersion,
    lifetime: registration.lifetime,
    queueMode: registration.queueMode,
    awake: server.presence.isAwake(registration.endpoint),
    registeredAt: registration.registeredAt,
    lastSeen: registration.lastSeen,
    objects: registration.objects.length,
  };
}

export type DeviceSummary = ReturnType<typeof deviceSummary>;

/** Everything the device console shows about one registration. */
export function deviceDetails(server: Lwm2mServer, registration: Registration, observationValues: (id: string) => { payload: unknown; time: number } | undefined, consoleOwner: string) {
  return {
    ...registrationToJson(registration),
    summary: deviceSummary(server, registration),
    awake: server.presence.isAwake(registration.endpoint),
    queued: server.pendingRequests(registration.endpoint),
    objects: registration.objects.map((object) => {
      // The definition the server types this device's values by: the version it announced, or the one its LwM2M version implies.
      const definition = server.modelFor(registration).getObject(object.id);
      return {
        id: object.id,
        /** As the device announced it (absent when it did not). */
        version: object.version,
        /** The version of the definition its values are typed by. */
        modelVersion: definition?.version,
        name: definition?.name,
        instances: [...object.instances],
      };
    }),
    observations: server.observations.list(registration.endpoint).map((observation) => {
      const last = observationValues(observation.id);
      return {
        id: observation.id,
        paths: [...observation.paths],
        byConsole: observation.owner === consoleOwner,
        ...(last ? { value: jsonValue(last.payload), time: last.time } : {}),
      };
    }),
  };
}

/** An object definition for the editor's cache (per object id and version). */
export function objectJson(definition: ObjectDefinition) {
  return {
    id: definition.id,
    name: definition.name,
    version: definition.version,
    multiple: definition.multiple,
    mandatory: definition.mandatory,
    description: definition.description,
    resources: Object.values(definition.resources).map((resource) => ({
      id: resource.id,
      name: resource.name,
      type: resource.type,
      operations: resource.operations,
      multiple: resource.multiple,
      mandatory: resource.mandatory,
      units: resource.units,
      range: resource.range,
      description: resource.description,
    })),
  };
}
