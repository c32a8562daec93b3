import { randomFillSync } from 'node:crypto';

/** One pool of random bytes for every token and id: a CSPRNG call for each would cost more than the rest of their work. */
const pool = Buffer.alloc(4096);
let used = pool.length;

/** `bytes` random bytes as hex or base64url text, cut from the pool and refilled 4 KiB at a time. */
export function randomText(bytes: number, encoding: 'hex' | 'base64url'): string {
  if (used + bytes > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  used += bytes;
  return pool.toString(encoding, used - bytes, used);
}
