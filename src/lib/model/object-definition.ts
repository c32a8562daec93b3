import type { ResourceType } from '../content/values';

export interface ResourceDefinition {
  id: number;
  name: string;
  /** "R", "W", "RW", "E" or "" (none). */
  operations: string;
  multiple: boolean;
  mandatory: boolean;
  type: ResourceType;
  range?: string;
  units?: string;
  description?: string;
}

export interface ObjectDefinition {
  id: number;
  name: string;
  version: string;
  lwm2mVersion?: string;
  urn?: string;
  multiple: boolean;
  mandatory: boolean;
  description?: string;
  resources: Record<number, ResourceDefinition>;
}

export function isReadable(resource: ResourceDefinition): boolean {
  return resource.operations.includes('R');
}

export function isWritable(resource: ResourceDefinition): boolean {
  return resource.operations.includes('W');
}

export function isExecutable(resource: ResourceDefinition): boolean {
  return resource.operations.includes('E');
}
