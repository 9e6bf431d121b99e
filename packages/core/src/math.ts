/** Scalar math helpers shared by the reference backend and the tensor ops. */

/**
 * erf(x) to about 1e-15 relative accuracy (W. J. Cody's rational approximations are overkill
 * here; this uses the series for |x| < 2.5 and the continued fraction of erfc beyond).
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  if (ax > 6) return x < 0 ? -1 : 1;
  const tail = erfcTail(ax);
  return x < 0 ? tail - 1 : 1 - tail;
}

/** erfc(x) for x ≥ 2.5: exp(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …)))), evaluated bottom-up. */
function erfcTail(x: number): number {
  let cf = 0;
  for (let n = 60; n >= 1; n--) cf = n / 2 / (x + cf);
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / (x + cf);
}

/**
 * erfc(x) = 1 − erf(x) with full relative accuracy in the upper tail (where `1 − erf(x)` cancels
 * to 0): the continued fraction of erf's tail for x ≥ 2.5, `1 − erf(x)` below (at most 4 of 16
 * digits lost there; none for x < 0).
 */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x < 2.5) return 1 - erf(x);
  if (x > 27) return 0; // exp(−x²) underflows in f64
  return erfcTail(x);
}
