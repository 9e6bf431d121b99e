// Embedding family: row gather out[t, :] = table[ids[t], :] with a bounds check on every id.
// Layout: src/kernels.ts. Nothing is read outside the table: a bad id stops the gather.

/**
 * Kernels.gather: copies `dim` floats per id. Returns −1 when every id is in [0, vocab), else the
 * first position t whose id is not; rows 0 … t−1 have been written, row t and later are untouched.
 */
export function gather(table: usize, vocab: i32, dim: i32, ids: usize, n: i32, out: usize): i32 {
  const rowBytes = <usize>max(dim, 0) << 2;
  for (let t = 0; t < n; t++) {
    const id = load<i32>(ids + (<usize>t << 2));
    // one unsigned compare catches id < 0 as well (and vocab ≤ 0 rejects everything)
    if (vocab <= 0 || <u32>id >= <u32>vocab) return t;
    memory.copy(out + <usize>t * rowBytes, table + <usize>id * rowBytes, rowBytes);
  }
  return -1;
}
