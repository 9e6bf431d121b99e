// Comparison rules of FORMAT.md §4: F32 within atol + rtol·|expected|, integer tensors exactly,
// JSON kinds exactly except the numbers of float matrices.

/** @typedef {{ atol: number, rtol: number }} Tol */

export const DEFAULT_TOL = { atol: 1e-4, rtol: 1e-3 };

/**
 * Compare one tensor. Returns { ok, maxAbs, maxRel, reason }.
 * @param {{ dtype: string, shape: readonly number[], data: ArrayLike<number> }} actual
 * @param {{ dtype: string, shape: readonly number[], data: ArrayLike<number> }} expected
 * @param {string} fileDtype  the expected tensor's dtype in the file (F32, I64, BOOL, …)
 * @param {Tol} tol
 */
export function compareTensor(name, actual, expected, fileDtype, tol) {
  const shapeStr = (s) => `[${s.join(", ")}]`;
  if (actual.shape.length !== expected.shape.length || actual.shape.some((d, i) => d !== expected.shape[i])) {
    return {
      ok: false,
      maxAbs: Number.NaN,
      maxRel: Number.NaN,
      reason: `${name}: shape ${shapeStr(actual.shape)} != expected ${shapeStr(expected.shape)}`,
    };
  }
  const exact = fileDtype !== "F32" && fileDtype !== "F16" && fileDtype !== "BF16";
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const a = Number(actual.data[i]);
    const e = Number(expected.data[i]);
    if (exact) {
      if (a !== e)
        return {
          ok: false,
          maxAbs: Math.abs(a - e),
          maxRel: Number.NaN,
          reason: `${name}: element ${i} is ${a}, expected ${e} (exact)`,
        };
      continue;
    }
    if (Number.isNaN(a))
      return {
        ok: false,
        maxAbs: Number.NaN,
        maxRel: Number.NaN,
        reason: `${name}: element ${i} is NaN, expected ${e}`,
      };
    if (a === e) continue; // covers equal infinities
    const d = Math.abs(a - e);
    if (!Number.isFinite(d))
      return {
        ok: false,
        maxAbs: Number.POSITIVE_INFINITY,
        maxRel: Number.NaN,
        reason: `${name}: element ${i} is ${a}, expected ${e}`,
      };
    if (d > maxAbs) maxAbs = d;
    if (Math.abs(e) > 0) maxRel = Math.max(maxRel, d / Math.abs(e));
    const excess = d - (tol.atol + tol.rtol * Math.abs(e));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    const a = Number(actual.data[worst]);
    const e = Number(expected.data[worst]);
    return {
      ok: false,
      maxAbs,
      maxRel,
      reason: `${name}: element ${worst} is ${a}, expected ${e} (|diff| ${Math.abs(a - e).toExponential(3)} > atol ${tol.atol} + rtol ${tol.rtol}·|e|)`,
    };
  }
  return { ok: true, maxAbs, maxRel };
}

// "padded": int32 pad_sequences cases carry atol = rtol = 0, so they stay exact
const FLOAT_JSON_KEYS = new Set(["texts_to_matrix", "sequences_to_matrix", "padded"]);

/**
 * Deep comparison for the JSON kinds. Numbers are exact except inside float matrices
 * (tokenizer matrices, float32 pad_sequences), which use the tolerance.
 */
export function compareJson(actual, expected, tol, floatPaths = FLOAT_JSON_KEYS) {
  const stats = { maxAbs: 0, maxRel: 0 };
  const fail = (path, msg) => ({ ok: false, ...stats, reason: `${path || "(root)"}: ${msg}` });
  const show = (v) => {
    const s = JSON.stringify(v);
    return s && s.length > 80 ? `${s.slice(0, 77)}...` : s;
  };
  const rec = (a, e, path, loose) => {
    if (typeof e === "number") {
      if (typeof a !== "number") return fail(path, `expected number ${e}, got ${show(a)}`);
      if (a === e) return null;
      const d = Math.abs(a - e);
      if (!loose || Number.isNaN(d)) return fail(path, `expected ${e}, got ${a}`);
      stats.maxAbs = Math.max(stats.maxAbs, d);
      if (e !== 0) stats.maxRel = Math.max(stats.maxRel, d / Math.abs(e));
      if (d > tol.atol + tol.rtol * Math.abs(e)) return fail(path, `expected ${e}, got ${a} (outside tolerance)`);
      return null;
    }
    if (e === null || typeof e !== "object") {
      return a === e ? null : fail(path, `expected ${show(e)}, got ${show(a)}`);
    }
    if (Array.isArray(e)) {
      if (!Array.isArray(a)) return fail(path, `expected a list, got ${show(a)}`);
      if (a.length !== e.length) return fail(path, `expected ${e.length} items, got ${a.length}`);
      for (let i = 0; i < e.length; i++) {
        const r = rec(a[i], e[i], `${path}[${i}]`, loose);
        if (r) return r;
      }
      return null;
    }
    if (a === null || typeof a !== "object" || Array.isArray(a))
      return fail(path, `expected an object, got ${show(a)}`);
    const ek = Object.keys(e);
    const ak = Object.keys(a);
    for (const k of ek) if (!(k in a)) return fail(path, `missing key ${JSON.stringify(k)}`);
    for (const k of ak) if (!(k in e)) return fail(path, `unexpected key ${JSON.stringify(k)}`);
    for (const k of ek) {
      const r = rec(a[k], e[k], path ? `${path}.${k}` : k, loose || floatPaths.has(k));
      if (r) return r;
    }
    return null;
  };
  return rec(actual, expected, "", false) ?? { ok: true, ...stats };
}
