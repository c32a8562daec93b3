/**
 * Milliseconds since 1970, at most a second old. Date.now() allocates a new
 * number at each call, which the paths run for every notification and every
 * answer must not: they read this instead (one timer for the process, which
 * does not keep it alive).
 */
let now = Date.now();
let ticking: NodeJS.Timeout | undefined;

function coarseNow(): number {
  if (!ticking) {
    now = Date.now();
    ticking = setInterval(() => (now = Date.now()), 1000);
    ticking.unref();
  }
  return now;
}

/** Notes that a device just talked, without ever moving the time back (the clock may lag an exact reading). */
export function touch(target: { lastSeen: number }): void {
  const time = coarseNow();
  if (time > target.lastSeen) target.lastSeen = time;
}
