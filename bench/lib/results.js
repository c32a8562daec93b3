'use strict';
// What a run of the bench measured: one sample per subject per round, grouped by workload. The
// report compares each sample with its workload's baseline measured in the same round (pairs,
// then their median), and shows every run's loss and the machine's load beside the medians.
const { cpuNs, loadAverage, pinServer } = require('./processes');
const { median } = require('./stats');

const now = () => performance.now();

/**
 * Runs body() (which performs operations) and measures process pid meanwhile: wall time, CPU of all its
 * threads, the load average before. body resolves with {ok, bad?, lost?, retransmissions?, ms?, ...extras}.
 */
async function measure(pid, body) {
  pinServer(pid);
  const load = loadAverage();
  const cpuBefore = cpuNs(pid);
  const started = now();
  const outcome = await body();
  const ms = outcome.ms ?? now() - started; // the body's own clock when it has one (the generator's, or up to the last delivery)
  const cpu = cpuNs(pid) - cpuBefore;
  const operations = outcome.ok;
  return { ...outcome, ms, rate: (operations / ms) * 1000, cpuMsPer1k: operations ? cpu / 1e3 / operations : undefined, load };
}

const fixed = (value, digits) => (value === undefined || Number.isNaN(value) ? '' : value.toFixed(digits));
const range = (values, digits) => (values.length > 1 ? ` (${fixed(Math.min(...values), digits)}-${fixed(Math.max(...values), digits)})` : '');

class Results {
  constructor(meta) {
    this.meta = meta;
    /** workload -> {baseline, note, subjects: Map(subject -> {samples: [{round, ...}], note})} */
    this.workloads = new Map();
  }

  /** A workload's rows; baseline names the subject each sample is compared with, round by round. */
  workload(name, { baseline, describe }) {
    if (!this.workloads.has(name)) this.workloads.set(name, { baseline, describe, subjects: new Map() });
    return this.workloads.get(name);
  }

  add(workloadName, subject, round, sample) {
    const workload = this.workloads.get(workloadName);
    if (!workload.subjects.has(subject)) workload.subjects.set(subject, []);
    workload.subjects.get(subject).push({ round, ...sample });
    const lost = sample.lost || sample.bad ? `, ${sample.lost ?? 0} lost, ${sample.bad ?? 0} bad` : '';
    process.stderr.write(`  [${workloadName}] ${subject} round ${round + 1}: ${Math.round(sample.rate)}/s, ${fixed(sample.cpuMsPer1k, 1)} ms CPU per 1k${lost}, load ${sample.load}\n`);
  }

  /** One row per subject: medians, per-round ratios to the baseline, every run's loss and load. */
  rows() {
    const rows = [];
    for (const [workloadName, workload] of this.workloads) {
      const base = workload.subjects.get(workload.baseline) ?? [];
      const baseOf = (round) => base.find((sample) => sample.round === round);
      for (const [subject, samples] of workload.subjects) {
        const pairs = samples.map((sample) => ({ sample, base: baseOf(sample.round) })).filter((pair) => pair.base);
        const cpuRatios = pairs.filter((p) => p.sample.cpuMsPer1k && p.base.cpuMsPer1k).map((p) => p.sample.cpuMsPer1k / p.base.cpuMsPer1k);
        const rateRatios = pairs.map((p) => p.sample.rate / p.base.rate);
        const lost = samples.map((s) => (s.lost ?? 0) + (s.bad ?? 0));
        const row = {
          workload: workloadName,
          server: subject,
          rate: median(samples.map((s) => s.rate)),
          rates: samples.map((s) => Math.round(s.rate)),
          cpuMsPer1k: samples.every((s) => s.cpuMsPer1k !== undefined) ? median(samples.map((s) => s.cpuMsPer1k)) : undefined,
          cpuVsBaseline: subject === workload.baseline || !cpuRatios.length ? undefined : { median: median(cpuRatios), runs: cpuRatios },
          rateVsBaseline: subject === workload.baseline || !rateRatios.length ? undefined : { median: median(rateRatios), runs: rateRatios },
          lostPerRun: lost,
          worstLost: Math.max(...lost),
          worstLostOf: Math.max(...samples.map((s, i) => (s.ok + lost[i] ? lost[i] / (s.ok + lost[i]) : 0))),
          load: samples.map((s) => s.load),
          note: workload.describe?.(subject, samples) ?? '',
          isBaseline: subject === workload.baseline,
        };
        rows.push(row);
      }
    }
    return rows;
  }

  /** The rows as a Markdown table (what the README shows). */
  markdown() {
    const lines = [
      '| workload | server | per s, median (runs) | CPU ms per 1k | CPU vs baseline, median of pairs (range) | rate vs baseline | lost per run (worst %) | load | notes |',
      '|---|---|---|---|---|---|---|---|---|',
    ];
    for (const row of this.rows()) {
      const lost = row.lostPerRun.every((l) => l === 0) ? '0' : `${row.lostPerRun.join(' / ')} (${(row.worstLostOf * 100).toFixed(2)} %)`;
      lines.push(
        `| ${row.workload} | ${row.server} | ${Math.round(row.rate).toLocaleString('en')} (${row.rates.join(' / ')}) | ${fixed(row.cpuMsPer1k, 1)} | ${row.cpuVsBaseline ? `${fixed(row.cpuVsBaseline.median, 2)}x${range(row.cpuVsBaseline.runs, 2)}` : row.isBaseline ? 'baseline' : ''} | ${row.rateVsBaseline ? `${(row.rateVsBaseline.median * 100).toFixed(1)} %${range(row.rateVsBaseline.runs.map((r) => r * 100), 1)}` : ''} | ${lost} | ${row.load.join(' / ')} | ${row.note} |`,
      );
    }
    return lines.join('\n');
  }

  json() {
    return { ...this.meta, workloads: Object.fromEntries([...this.workloads].map(([name, w]) => [name, { baseline: w.baseline, subjects: Object.fromEntries(w.subjects) }])), rows: this.rows() };
  }
}

module.exports = { Results, measure };
