'use strict';

/** Polls a (possibly async) predicate until it holds; false after timeoutMs. */
async function holdsWithin(predicate, timeoutMs = 3000, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return true;
}

/** Polls until the predicate holds; throws naming what it waited for after timeoutMs. */
async function until(predicate, timeoutMs = 5000, what = 'the condition') {
  if (!(await holdsWithin(predicate, timeoutMs))) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

module.exports = { holdsWithin, until };
