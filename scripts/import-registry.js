'use strict';
// Regenerates src/lib/model/oma-registry.json from the OMA LwM2M registry DDF files,
// the current ones and every older version in version_history/ (<id>-<major>_<minor>.xml):
//   node scripts/build.js && node scripts/import-registry.js [path/to/lwm2m-registry]
// The registry is BSD-3 licensed; its notice is kept in src/lib/model/OMA-REGISTRY-LICENSE.
//
// The file holds each distinct resource definition once ("resources") and every
// object version as its fields plus the indices of its resources ("objects"):
// most versions of an object repeat most of their resources word for word.
const fs = require('node:fs');
const path = require('node:path');
const { parseDdf } = require('../dist/lib/model/ddf');
const { compareVersions } = require('../dist/lib/model/object-versions');

const root = path.resolve(__dirname, '..');
const registryDir = path.resolve(process.argv[2] || path.join(root, '..', 'shared', 'lwm2m-registry'));
const historyDir = path.join(registryDir, 'version_history');
const byKey = new Map();
const problems = [];

/** Reads one DDF file; a version_history file's name gives the version where the file states none. */
function importFile(file, nameVersion) {
  const xml = fs.readFileSync(file, 'utf8');
  let definitions;
  try {
    definitions = parseDdf(xml);
  } catch (error) {
    problems.push(`${path.relative(registryDir, file)}: ${error.message}`);
    return;
  }
  for (const definition of definitions) {
    if (nameVersion !== undefined && !/<ObjectVersion>/.test(xml)) definition.version = nameVersion;
    if (nameVersion !== undefined && definition.version !== nameVersion) {
      problems.push(`${path.relative(registryDir, file)}: states version ${definition.version}, its name ${nameVersion}; kept as ${definition.version}`);
    }
    const key = `${definition.id}@${definition.version}`;
    // The current file of an object wins over a copy of the same version in version_history.
    if (nameVersion === undefined || !byKey.has(key)) byKey.set(key, definition);
  }
}

for (const file of fs.readdirSync(registryDir).filter((f) => /^\d+\.xml$/.test(f))) importFile(path.join(registryDir, file));
const current = new Set(byKey.keys());
if (fs.existsSync(historyDir)) {
  for (const file of fs.readdirSync(historyDir)) {
    const match = /^(\d+)-(\d+)_(\d+)\.xml$/.exec(file);
    if (!match) continue;
    const key = `${match[1]}@${match[2]}.${match[3]}`;
    if (current.has(key)) continue;
    importFile(path.join(historyDir, file), `${match[2]}.${match[3]}`);
  }
}

const objects = [...byKey.values()].sort((a, b) => a.id - b.id || compareVersions(a.version, b.version));
const resources = [];
const resourceIndex = new Map();
const packed = objects.map((object) => ({
  ...object,
  resources: Object.values(object.resources).map((resource) => {
    const text = JSON.stringify(resource);
    let index = resourceIndex.get(text);
    if (index === undefined) {
      index = resources.push(resource) - 1;
      resourceIndex.set(text, index);
    }
    return index;
  }),
}));
const target = path.join(root, 'src', 'lib', 'model', 'oma-registry.json');
fs.writeFileSync(
  target,
  '{"resources":[\n' + resources.map((r) => JSON.stringify(r)).join(',\n') + '\n],\n"objects":[\n' + packed.map((o) => JSON.stringify(o)).join(',\n') + '\n]}\n',
);

// Every registry file carries the same BSD-3 notice; keep it beside the data.
const header = fs.readFileSync(path.join(registryDir, '3.xml'), 'utf8');
const notice = /LEGAL DISCLAIMER\n([\s\S]*?)-->/.exec(header)[1].replace(/^ {2}/gm, '').trim();
fs.writeFileSync(
  path.join(root, 'src', 'lib', 'model', 'OMA-REGISTRY-LICENSE'),
  `The object definitions in oma-registry.json are generated from the OMA LwM2M\nregistry (DDF XML files, the current ones and the older versions in its\nversion_history folder), distributed under this license:\n\n${notice}\n`,
);
const ids = new Set(objects.map((o) => o.id)).size;
console.log(`${objects.length} object versions of ${ids} objects (${resources.length} distinct resources) written to ${path.relative(root, target)}: ${fs.statSync(target).size} bytes`);
for (const problem of problems) console.warn(`note: ${problem}`);
