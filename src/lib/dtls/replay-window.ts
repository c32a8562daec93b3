const WINDOW = 64;

/**
 * Sliding anti-replay window of RFC 6347 section 4.1.2.6, one per epoch: 64
 * records, bit i set when newest - i was seen, in two 32-bit halves (no
 * BigInt allocated per record).
 */
export class ReplayWindow {
  private newest = -1;
  /** Bits 0-31 and 32-63 of the window. */
  private low = 0;
  private high = 0;

  /** The newest sequence number accepted (-1 before any). */
  get highest(): number {
    return this.newest;
  }

  /** Starts from a saved newest sequence number, taking every older one as seen: nothing from before a restart is accepted again. */
  restore(highest: number): void {
    this.newest = highest;
    this.low = highest < 0 ? 0 : -1 >>> 0;
    this.high = this.low;
  }

  /** True when the sequence number is new and not older than the window. Does not record it: call accept after the record authenticated. */
  isFresh(sequence: number): boolean {
    if (sequence > this.newest) return true;
    const age = this.newest - sequence;
    if (age >= WINDOW) return false;
    return age < 32 ? (this.low & (1 << age)) === 0 : (this.high & (1 << (age - 32))) === 0;
  }

  /** Records an authenticated sequence number; true when it is now the newest seen. */
  accept(sequence: number): boolean {
    if (sequence > this.newest) {
      const shift = this.newest < 0 ? WINDOW : sequence - this.newest;
      if (shift >= WINDOW) {
        this.low = 1;
        this.high = 0;
      } else if (shift >= 32) {
        this.high = (this.low << (shift - 32)) >>> 0;
        this.low = 1;
      } else {
        this.high = ((this.high << shift) | (this.low >>> (32 - shift))) >>> 0;
        this.low = ((this.low << shift) | 1) >>> 0;
      }
      this.newest = sequence;
      return true;
    }
    const age = this.newest - sequence;
    if (age < 32) this.low = (this.low | (1 << age)) >>> 0;
    else this.high = (this.high | (1 << (age - 32))) >>> 0;
    return false;
  }
}
