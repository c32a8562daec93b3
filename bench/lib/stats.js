'use strict';
// Small statistics: medians of per-round figures, and percentiles of pooled samples (all samples of all runs).

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** The value below which fraction of the (ascending) samples fall. */
const percentile = (sorted, fraction) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))];

/** Percentiles of every sample of every run together (never a median of per-run percentiles). */
function pooled(runs) {
  const total = runs.reduce((sum, samples) => sum + samples.length, 0);
  const all = new Float64Array(total);
  let at = 0;
  for (const samples of runs) {
    all.set(samples, at);
    at += samples.length;
  }
  all.sort();
  return { count: total, p50: percentile(all, 0.5), p99: percentile(all, 0.99), p999: percentile(all, 0.999), max: all[total - 1] };
}

module.exports = { median, pooled };
