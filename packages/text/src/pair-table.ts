/**
 * Open-addressing hash table from a pair of non-negative int32 ids to a non-negative int32 value
 * (BPE merge ranks): typed arrays and integer hashing, several times faster than a `Map` keyed by
 * `left · 2^21 + right` (keys above 2^31 are heap numbers in V8).
 */
export class PairTable {
  private left: Int32Array;
  private right: Int32Array;
  private vals: Int32Array;
  private mask: number;
  private count = 0;

  constructor(expected = 16) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.left = new Int32Array(cap).fill(-1);
    this.right = new Int32Array(cap);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
  }

  private slot(a: number, b: number): number {
    return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x632be5ab, 0x85ebca77)) & this.mask;
  }

  /** The value of `(a, b)`, or undefined. */
  get(a: number, b: number): number | undefined {
    const { left, right, mask } = this;
    for (let i = this.slot(a, b); ; i = (i + 1) & mask) {
      const l = left[i];
      if (l === -1) return undefined;
      if (l === a && right[i] === b) return this.vals[i];
    }
  }

  /** Set `(a, b)` unless present (the first value wins). */
  setIfAbsent(a: number, b: number, v: number): void {
    if ((this.count + 1) * 2 > this.left.length) this.grow();
    const { left, right, mask } = this;
    for (let i = this.slot(a, b); ; i = (i + 1) & mask) {
      const l = left[i];
      if (l === -1) {
        left[i] = a;
        right[i] = b;
        this.vals[i] = v;
        this.count++;
        return;
      }
      if (l === a && right[i] === b) return;
    }
  }

  private grow(): void {
    const { left, right, vals } = this;
    this.left = new Int32Array(left.length * 2).fill(-1);
    this.right = new Int32Array(left.length * 2);
    this.vals = new Int32Array(left.length * 2);
    this.mask = left.length * 2 - 1;
    this.count = 0;
    for (let i = 0; i < left.length; i++) if (left[i] !== -1) this.setIfAbsent(left[i], right[i], vals[i]);
  }
}
