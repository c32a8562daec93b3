import fs from 'node:fs';
import path from 'node:path';
import type { ResourceType } from '../content/values';
import { parseDdf } from './ddf';
import type { ObjectDefinition, ResourceDefinition } from './object-definition';
import type { Lwm2mPath } from './path';

let registry: Map<number, ObjectDefinition> | undefined;

/** The OMA registry objects compiled into the pack (src/lib/model/oma-registry.json). */
function builtInObjects(): Map<number, ObjectDefinition> {
  if (!registry) {
    const definitions = JSON.parse(fs.readFileSync(path.join(__dirname, 'oma-registry.json'), 'utf8')) as ObjectDefinition[];
    registry = new Map(definitions.map((definition) => [definition.id, definition]));
  }
  return registry;
}

export interface ModelLoadResult {
  model: ObjectModel;
  /** Files that could not be read or parsed, with the reason; the rest of the model still loads. */
  problems: string[];
}

/**
 * Object and resource definitions: the OMA registry plus custom DDF files,
 * a custom definition replacing a built-in one with the same object id.
 */
export class ObjectModel {
  private constructor(private readonly custom: Map<number, ObjectDefinition>) {}

  static builtIn(): ObjectModel {
    return new ObjectModel(new Map());
  }

  static withDefinitions(definitions: ObjectDefinition[]): ObjectModel {
    return new ObjectModel(new Map(definitions.map((definition) => [definition.id, definition])));
  }

  /** Adds every *.xml file of a folder (read once, at start, so the model is complete before any request). */
  static fromFolder(folder: string): ModelLoadResult {
    const problems: string[] = [];
    const definitions: ObjectDefinition[] = [];
    let files: string[];
    try {
      files = fs.readdirSync(folder).filter((file) => file.toLowerCase().endsWith('.xml')).sort();
    } catch (error) {
      return { model: ObjectModel.builtIn(), problems: [`${folder}: ${(error as Error).message}`] };
    }
    for (const file of files) {
      try {
        definitions.push(...parseDdf(fs.readFileSync(path.join(folder, file), 'utf8')));
      } catch (error) {
        problems.push(`${file}: ${(error as Error).message}`);
      }
    }
    return { model: ObjectModel.withDefinitions(definitions), problems };
  }

  getObject(objectId: number): ObjectDefinition | undefined {
    return this.custom.get(objectId) ?? builtInObjects().get(objectId);
  }

  getResource(objectId: number | undefined, resourceId: number | undefined): ResourceDefinition | undefined {
    if (objectId === undefined || resourceId === undefined) return undefined;
    return this.getObject(objectId)?.resources[resourceId];
  }

  /** The type of the resource a path points into, if the model knows it. */
  typeOf(target: Lwm2mPath): ResourceType | undefined {
    return this.getResource(target.objectId, target.resourceId)?.type;
  }

  objects(): ObjectDefinition[] {
    const all = new Map(builtInObjects());
    for (const [id, definition] of this.custom) all.set(id, definition);
    return [...all.values()].sort((a, b) => a.id - b.id);
  }
}
