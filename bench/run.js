'use strict';
// npm run bench: every server under test in a process of its own on 127.0.0.1, driven by the same C
// load generator (bench/c/fleet.c), measured from outside, in interleaved rounds with its baselines.
// Workloads are modules in bench/workloads/ exporting {name, run({runs, sizes, results})}.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Results } = require('./lib/results');

const RUNS = Number(process.env.BENCH_RUNS || 3);
const SIZES = (process.env.BENCH_DEVICES || '1000,20000,50000,100000').split(',').map(Number);
/** BENCH_ONLY=register,notifications runs a subset of the workloads, by name. */
const ONLY = process.env.BENCH_ONLY?.split(',');

const WORKLOADS = ['register-update', 'notifications', 'reads', 'tcp-reads', 'dtls', 'firmware', 'cluster'].map((file) => require(`./workloads/${file}`));

async function main() {
  const results = new Results({ date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, runs: RUNS, sizes: SIZES });
  const started = Date.now();
  for (const workload of WORKLOADS) {
    if (ONLY && !ONLY.includes(workload.name)) continue;
    process.stderr.write(`${workload.name}\n`);
    await workload.run({ runs: RUNS, sizes: SIZES, results });
  }
  const markdown = results.markdown();
  console.log(markdown);
  const out = path.join(__dirname, 'results', `bench-${results.meta.date.replace(/[:.]/g, '-')}`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(`${out}.json`, JSON.stringify(results.json(), null, 2));
  fs.writeFileSync(`${out}.md`, `${markdown}\n`);
  console.log(`\n${((Date.now() - started) / 60000).toFixed(1)} min; results in ${path.relative(process.cwd(), out)}.{json,md}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
