const WINDOW = 64n;

/** Sliding anti-replay window of RFC 6347 section 4.1.2.6, one per epoch. */
export class ReplayWindow {
  private highest = -1;
  private bitmap = 0n;

  /** True when the sequence number is new and not older than the window. Does not record it: call accept after the record authenticated. */
  isFresh(sequence: number): boolean {
    if (sequence > this.highest) return true;
    const age = BigInt(this.highest - sequence);
    if (age >= WINDOW) return false;
    return (this.bitmap & (1n << age)) === 0n;
  }

  /** Records an authenticated sequence number; true when it is now the newest seen. */
  accept(sequence: number): boolean {
    if (sequence > this.highest) {
      const shift = this.highest < 0 ? WINDOW : BigInt(sequence - this.highest);
      this.bitmap = shift >= WINDOW ? 1n : ((this.bitmap << shift) | 1n) & ((1n << WINDOW) - 1n);
      this.highest = sequence;
      return true;
    }
    this.bitmap |= 1n << BigInt(this.highest - sequence);
    return false;
  }
}
