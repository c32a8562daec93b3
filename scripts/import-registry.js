'use strict';
// Regenerates src/lib/model/oma-registry.json from the OMA LwM2M registry DDF files:
//   node scripts/build.js && node scripts/import-registry.js [path/to/lwm2m-registry]
// The registry is BSD-3 licensed; its notice is kept in src/lib/model/OMA-REGISTRY-LICENSE.
const fs = require('node:fs');
const path = require('node:path');
const { parseDdf } = require('../dist/lib/model/ddf');

const root = path.resolve(__dirname, '..');
const registryDir = path.resolve(process.argv[2] || path.join(root, '..', 'shared', 'lwm2m-registry'));
const objects = [];
const problems = [];
for (const file of fs.readdirSync(registryDir).filter((f) => /^\d+\.xml$/.test(f))) {
  try {
    objects.push(...parseDdf(fs.readFileSync(path.join(registryDir, file), 'utf8')));
  } catch (error) {
    problems.push(`${file}: ${error.message}`);
  }
}
objects.sort((a, b) => a.id - b.id);
const target = path.join(root, 'src', 'lib', 'model', 'oma-registry.json');
fs.writeFileSync(target, '[\n' + objects.map((object) => JSON.stringify(object)).join(',\n') + '\n]\n');

// Every registry file carries the same BSD-3 notice; keep it beside the data.
const header = fs.readFileSync(path.join(registryDir, '3.xml'), 'utf8');
const notice = /LEGAL DISCLAIMER\n([\s\S]*?)-->/.exec(header)[1].replace(/^ {2}/gm, '').trim();
fs.writeFileSync(
  path.join(root, 'src', 'lib', 'model', 'OMA-REGISTRY-LICENSE'),
  `The object definitions in oma-registry.json are generated from the OMA LwM2M\nregistry (DDF XML files), distributed under this license:\n\n${notice}\n`,
);
console.log(`${objects.length} objects written to ${path.relative(root, target)}`);
for (const problem of problems) console.warn(`skipped ${problem}`);
