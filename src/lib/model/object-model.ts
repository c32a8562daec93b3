import fs from 'node:fs';
import path from 'node:path';
import type { ResourceType } from '../content/values';
import { parseDdf } from './ddf';
import type { ObjectDefinition, ResourceDefinition } from './object-definition';
import { compareVersions, impliedVersion } from './object-versions';
import type { Lwm2mPath } from './path';

/** Every version of each object, oldest first. */
type Catalogue = Map<number, readonly ObjectDefinition[]>;

/** oma-registry.json: each distinct resource once, and every object version with the indices of its resources. */
interface PackedRegistry {
  resources: ResourceDefinition[];
  objects: (Omit<ObjectDefinition, 'resources'> & { resources: number[] })[];
}

let registry: Catalogue | undefined;

/** The OMA registry objects compiled into the pack, every version: versions share their identical resource definitions. */
function builtInObjects(): Catalogue {
  if (!registry) {
    const packed = JSON.parse(fs.readFileSync(path.join(__dirname, 'oma-registry.json'), 'utf8')) as PackedRegistry;
    registry = catalogue(
      packed.objects.map((object) => ({ ...object, resources: Object.fromEntries(object.resources.map((index) => [packed.resources[index].id, packed.resources[index]])) })),
    );
  }
  return registry;
}

/** Groups definitions by object id, oldest version first; a later definition of the same id and version replaces an earlier one. */
function catalogue(definitions: ObjectDefinition[]): Catalogue {
  const byId = new Map<number, ObjectDefinition[]>();
  for (const definition of definitions) {
    const versions = byId.get(definition.id) ?? [];
    byId.set(definition.id, [...versions.filter((known) => known.version !== definition.version), definition].sort((a, b) => compareVersions(a.version, b.version)));
  }
  return byId;
}

/** The definition for a version: that one, else the newest of the same major version (a compatible one), else the newest. */
function pick(versions: readonly ObjectDefinition[], version: string): ObjectDefinition | undefined {
  const exact = versions.find((definition) => definition.version === version);
  if (exact) return exact;
  const major = version.split('.')[0];
  const sameMajor = versions.filter((definition) => definition.version.split('.')[0] === major);
  return sameMajor[sameMajor.length - 1] ?? versions[versions.length - 1];
}

/** What a device's view of the model depends on: the objects it announced (with "ver") and its LwM2M version. */
export interface AnnouncedObjects {
  readonly objects: readonly { readonly id: number; readonly version?: string }[];
  readonly lwm2mVersion: string;
}

/** Distinct device views kept at most; a flood of made-up versions only makes them be computed again. */
const MAX_VIEWS = 4096;

export interface ModelLoadResult {
  model: ObjectModel;
  /** Files that could not be read or parsed, with the reason; the rest of the model still loads. */
  problems: string[];
}

/**
 * Object and resource definitions, every version of each object: the OMA
 * registry plus custom DDF files (custom definitions of an object id replace
 * every built-in version of it). getObject() without a version gives the
 * newest; forDevice() gives the view a device's announced versions select.
 */
export class ObjectModel {
  /** Device views by LwM2M version, then by the (shared, frozen) object list a registration holds: one weak entry per list. */
  private readonly views = new Map<string, WeakMap<object, ObjectModel>>();
  /** Views by the versions they select, so devices that select the same share one. */
  private readonly viewsByChoice = new Map<string, ObjectModel>();

  private constructor(
    private readonly custom: Catalogue,
    /** In a device's view: the definitions its versions select where they are not the newest. */
    private readonly chosen?: ReadonlyMap<number, ObjectDefinition>,
    private readonly base?: ObjectModel,
  ) {}

  static builtIn(): ObjectModel {
    return new ObjectModel(new Map());
  }

  static withDefinitions(definitions: ObjectDefinition[]): ObjectModel {
    return new ObjectModel(catalogue(definitions));
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
    const seen = new Map<string, string>();
    for (const file of files) {
      try {
        for (const definition of parseDdf(fs.readFileSync(path.join(folder, file), 'utf8'))) {
          const key = `${definition.id}@${definition.version}`;
          const earlier = seen.get(key);
          if (earlier) problems.push(`${file}: object ${definition.id} version ${definition.version} is defined in ${earlier} too; ${file} is used`);
          seen.set(key, file);
          definitions.push(definition);
        }
      } catch (error) {
        problems.push(`${file}: ${(error as Error).message}`);
      }
    }
    return { model: ObjectModel.withDefinitions(definitions), problems };
  }

  /** Every version the model holds of an object, oldest first. */
  versionsOf(objectId: number): readonly ObjectDefinition[] {
    return this.custom.get(objectId) ?? builtInObjects().get(objectId) ?? [];
  }

  /** An object's definition: of the version asked for (see pick), else the one this view selects, else the newest. */
  getObject(objectId: number, version?: string): ObjectDefinition | undefined {
    if (version !== undefined) return pick(this.versionsOf(objectId), version);
    const chosen = this.chosen?.get(objectId);
    if (chosen) return chosen;
    const versions = this.versionsOf(objectId);
    return versions[versions.length - 1];
  }

  getResource(objectId: number | undefined, resourceId: number | undefined): ResourceDefinition | undefined {
    if (objectId === undefined || resourceId === undefined) return undefined;
    return this.getObject(objectId)?.resources[resourceId];
  }

  /** The type of the resource a path points into, if the model knows it. */
  typeOf(target: Lwm2mPath): ResourceType | undefined {
    return this.getResource(target.objectId, target.resourceId)?.type;
  }

  /** One definition per object: the newest, or the one this view selects. */
  objects(): ObjectDefinition[] {
    const ids = new Set([...builtInObjects().keys(), ...this.custom.keys()]);
    return [...ids].sort((a, b) => a - b).map((id) => this.getObject(id) as ObjectDefinition);
  }

  /**
   * The model as a device sees it: each object in the version its Register
   * announced ("ver"), or the one its LwM2M version implies. Devices that
   * announce the same links share one object list, and devices that select
   * the same versions share one view: nothing is kept per device but a weak
   * map entry per object list. A device that selects only newest versions
   * gets the model itself.
   */
  forDevice(device: AnnouncedObjects): ObjectModel {
    const base = this.base ?? this;
    let byList = base.views.get(device.lwm2mVersion);
    const known = byList?.get(device.objects);
    if (known) return known;
    const chosen = new Map<number, ObjectDefinition>();
    let choice = '';
    for (const object of device.objects) {
      const versions = base.versionsOf(object.id);
      if (versions.length < 2) continue;
      const definition = pick(versions, impliedVersion(object.id, object.version, device.lwm2mVersion))!;
      if (definition === versions[versions.length - 1]) continue;
      chosen.set(object.id, definition);
      choice += `${object.id}@${definition.version} `;
    }
    let view = choice === '' ? base : base.viewsByChoice.get(choice);
    if (!view) {
      if (base.viewsByChoice.size >= MAX_VIEWS) base.viewsByChoice.clear();
      view = new ObjectModel(base.custom, chosen, base);
      base.viewsByChoice.set(choice, view);
    }
    if (!byList) base.views.set(device.lwm2mVersion, (byList = new WeakMap()));
    byList.set(device.objects, view);
    return view;
  }
}
