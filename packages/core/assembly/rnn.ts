// Recurrent cells: the gate arithmetic of torch.nn.LSTM (gate order i, f, g, o) and torch.nn.GRU
// (order r, z, n) after the input/hidden projections have been done by GEMM. Layout: src/kernels.ts.
// f32x4 main loops use the rational sigmoid/tanh of inline/vmath.ts (absolute error ≤ 3.2e-7, no
// exp, no branch: an LSTM cell of H = 256 takes 0.74 µs against 2.0 µs with the exp-based forms);
// tails use f64 scalar math.
import { sigmoidRational4 as sigmoid4, tanhRational4 as tanh4 } from "./inline/vmath";
import { gemvRows } from "./gemv-rows";

// @ts-ignore: decorator
@inline function sigmoid1(x: f32): f32 {
  return <f32>(1.0 / (1.0 + Math.exp(-<f64>x)));
}

// @ts-ignore: decorator
@inline function tanh1(x: f32): f32 {
  return <f32>Math.tanh(<f64>x);
}

/**
 * Kernels.lstmCell: gates [batch, 4H] = (i, f, g, o) pre-activations.
 * c' = σ(f)⊙c + σ(i)⊙tanh(g) (in place in c [batch, H]); h' = σ(o)⊙tanh(c') to h (row stride ldh).
 */
export function lstmCell(gates: usize, c: usize, h: usize, ldh: i32, H: i32, batch: i32): void {
  lstmCellUnits(gates, 0, c, h, ldh, H, 0, H, batch);
}

/**
 * lstmCell on hidden units [j0, j1) only (j0 a multiple of 4, j1 one too or H): every unit takes the
 * path (f32x4 below H & ~3, scalar past it) it takes in the whole call, so a split is bitwise equal.
 * With `hh` ≠ 0 the pre-activations are gates + hh (the input and the recurrent parts apart).
 */
function lstmCellUnits(gates: usize, hh: usize, c: usize, h: usize, ldh: i32, H: i32, j0: i32, j1: i32, batch: i32): void {
  const v1 = min(j1, H & ~3);
  const gBytes = <usize>H << 2;
  for (let b = 0; b < batch; b++) {
    const g = gates + (<usize>b * <usize>(4 * H) << 2);
    const q = hh + (<usize>b * <usize>(4 * H) << 2);
    const cr = c + (<usize>b * <usize>H << 2);
    const hr = h + (<usize>b * <usize>ldh << 2);
    let j = j0;
    for (; j < v1; j += 4) {
      const o = <usize>j << 2;
      let gi = v128.load(g + o), gf = v128.load(g + gBytes + o);
      let gc = v128.load(g + 2 * gBytes + o), go = v128.load(g + 3 * gBytes + o);
      if (hh) {
        gi = f32x4.add(gi, v128.load(q + o));
        gf = f32x4.add(gf, v128.load(q + gBytes + o));
        gc = f32x4.add(gc, v128.load(q + 2 * gBytes + o));
        go = f32x4.add(go, v128.load(q + 3 * gBytes + o));
      }
      const ig = sigmoid4(gi);
      const fg = sigmoid4(gf);
      const gg = tanh4(gc);
      const og = sigmoid4(go);
      const cn = f32x4.add(f32x4.mul(fg, v128.load(cr + o)), f32x4.mul(ig, gg));
      v128.store(cr + o, cn);
      v128.store(hr + o, f32x4.mul(og, tanh4(cn)));
    }
    for (; j < j1; j++) {
      const o = <usize>j << 2;
      let gi = load<f32>(g + o), gf = load<f32>(g + gBytes + o);
      let gc = load<f32>(g + 2 * gBytes + o), go = load<f32>(g + 3 * gBytes + o);
      if (hh) {
        gi += load<f32>(q + o);
        gf += load<f32>(q + gBytes + o);
        gc += load<f32>(q + 2 * gBytes + o);
        go += load<f32>(q + 3 * gBytes + o);
      }
      const ig = sigmoid1(gi);
      const fg = sigmoid1(gf);
      const gg = tanh1(gc);
      const og = sigmoid1(go);
      const cn = fg * load<f32>(cr + o) + ig * gg;
      store<f32>(cr + o, cn);
      store<f32>(hr + o, og * tanh1(cn));
    }
  }
}

/**
 * Kernels.gruCell: gx = W_ih x + b_ih, gh = W_hh h + b_hh, both [batch, 3H] in (r, z, n) order.
 * r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r⊙gh_n), h' = (1 − z)⊙n + z⊙hPrev.
 * hOut may alias hPrev (each element is read before it is written).
 */
export function gruCell(gx: usize, gh: usize, hPrev: usize, ldp: i32, hOut: usize, ldo: i32, H: i32, batch: i32): void {
  gruCellUnits(gx, gh, hPrev, ldp, hOut, ldo, H, 0, H, batch);
}

/** gruCell on hidden units [j0, j1) only (as lstmCellUnits). */
function gruCellUnits(gx: usize, gh: usize, hPrev: usize, ldp: i32, hOut: usize, ldo: i32, H: i32, j0: i32, j1: i32, batch: i32): void {
  const v1 = min(j1, H & ~3);
  const gBytes = <usize>H << 2;
  const one = f32x4.splat(1.0);
  for (let b = 0; b < batch; b++) {
    const xr = gx + (<usize>b * <usize>(3 * H) << 2);
    const hg = gh + (<usize>b * <usize>(3 * H) << 2);
    const pr = hPrev + (<usize>b * <usize>ldp << 2);
    const or = hOut + (<usize>b * <usize>ldo << 2);
    let j = j0;
    for (; j < v1; j += 4) {
      const o = <usize>j << 2;
      const r = sigmoid4(f32x4.add(v128.load(xr + o), v128.load(hg + o)));
      const z = sigmoid4(f32x4.add(v128.load(xr + gBytes + o), v128.load(hg + gBytes + o)));
      const nn = tanh4(f32x4.add(v128.load(xr + 2 * gBytes + o), f32x4.mul(r, v128.load(hg + 2 * gBytes + o))));
      const hp = v128.load(pr + o);
      v128.store(or + o, f32x4.add(f32x4.mul(f32x4.sub(one, z), nn), f32x4.mul(z, hp)));
    }
    for (; j < j1; j++) {
      const o = <usize>j << 2;
      const r = sigmoid1(load<f32>(xr + o) + load<f32>(hg + o));
      const z = sigmoid1(load<f32>(xr + gBytes + o) + load<f32>(hg + gBytes + o));
      const nn = tanh1(load<f32>(xr + 2 * gBytes + o) + r * load<f32>(hg + 2 * gBytes + o));
      store<f32>(or + o, (1 - z) * nn + z * load<f32>(pr + o));
    }
  }
}

// ---- the recurrent loop of a layer direction, split over threads ----------------------------------
//
// Kernels.rnnSteps (layout and arguments: src/kernels.ts) runs the T steps of one layer direction:
// per step the recurrent product (gemvRows on each gate block of W_hh, once per batch row) and the
// cell. W_hh comes as G blocks packed by packRows(H, H) each, so a range of hidden units in 24-unit
// groups is a range of row groups in every block: the gates of those units, then their cell, need
// nothing from other units. Called once per thread with the same arguments but `tile` (a threaded
// build's pool runs `tiles` calls side by side), it cuts each step into `tiles` chunks of units;
// tile i runs chunk i, so each thread keeps reading the same rows of W_hh, step after step, from its
// own cache, and writes the gates it reads. Step s + 1 needs all of step s's hidden state: one wait
// a step.
//
// Sync words, each on a 64-byte line of its own (polling one does not slow the others): `done`
// (chunks completed) and `failed` on line 0, then on line 1 + i the last step whose chunk i was
// taken (−1 at first). A tile takes its chunk with a compare-exchange from s − 1 to s, runs it, adds
// 1 to `done` and polls `done` until the step is complete. While it polls it takes, now and then,
// any chunk of the step still untaken, so a thread that starts late (or never: a worker that is
// gone) costs speed, not a hang. A tile that polls ~2³² times gives up and sets `failed` (JS reports
// it): a tile trapped elsewhere must not hang the caller. With tiles = 1 the call runs every step on
// its own and uses no sync words.

// @ts-ignore: decorator
@inline const LINE = 64;
/** Polls between looks for untaken chunks (tens of microseconds). */
// @ts-ignore: decorator
@inline const STEAL_EVERY: u32 = 8192;

// @ts-ignore: decorator
@inline function syncLoad(p: usize): i32 {
  if (ASC_FEATURE_THREADS) return atomic.load<i32>(p);
  return load<i32>(p);
}
// @ts-ignore: decorator
@inline function syncAdd(p: usize, v: i32): void {
  if (ASC_FEATURE_THREADS) atomic.add<i32>(p, v);
  else store<i32>(p, load<i32>(p) + v);
}
// @ts-ignore: decorator
@inline function syncClaim(p: usize, from: i32, to: i32): bool {
  if (ASC_FEATURE_THREADS) return atomic.cmpxchg<i32>(p, from, to) == from;
  if (load<i32>(p) != from) return false;
  store<i32>(p, to);
  return true;
}

/** Written with the words `touch` loads, so that the loads stay. */
let touched: i32 = 0;

/**
 * Load one word of each 64-byte line of [p, p + bytes): the loads do not depend on each other, so
 * lines another core wrote arrive side by side, not one after the other inside the product's loop.
 */
function touch(p: usize, bytes: usize): void {
  let acc = touched;
  for (let o: usize = 0; o < bytes; o += LINE) acc ^= load<i32>(p + o);
  touched = acc;
}

export function rnnSteps(
  mode: i32, act: i32, reverse: i32, T: i32, B: i32, H: i32,
  pw: usize, bias: usize, xproj: usize, gh: usize, c: usize, h0: usize,
  out: usize, so: i32, ldo: i32, sync: usize, tile: i32, tiles: i32,
): void {
  if (T <= 0 || B <= 0 || H <= 0) return;
  if (tiles <= 1) {
    for (let s = 0; s < T; s++) rnnChunk(mode, act, reverse, T, B, H, pw, bias, xproj, gh, c, h0, out, so, ldo, s, 0, 1);
    return;
  }
  const claims = sync + LINE;
  for (let s = 0; s < T; s++) {
    if (syncClaim(claims + LINE * tile, s - 1, s)) {
      rnnChunk(mode, act, reverse, T, B, H, pw, bias, xproj, gh, c, h0, out, so, ldo, s, tile, tiles);
      syncAdd(sync, 1);
      // while the others finish: bring in this chunk's input projections of the next step (another
      // thread may have written them)
      if (s + 1 < T) touchGates(mode, reverse, T, B, H, xproj, s + 1, tile, tiles);
    }
    const target = tiles * (s + 1);
    let polls: u32 = 0;
    while (syncLoad(sync) < target) {
      if (syncLoad(sync + 4) != 0) return;
      if (++polls == 0) {
        syncAdd(sync + 4, 1);
        return;
      }
      if ((polls & (STEAL_EVERY - 1)) != 0) continue;
      for (let i = 0; i < tiles; i++) {
        if (syncLoad(claims + LINE * i) == s - 1 && syncClaim(claims + LINE * i, s - 1, s)) {
          rnnChunk(mode, act, reverse, T, B, H, pw, bias, xproj, gh, c, h0, out, so, ldo, s, i, tiles);
          syncAdd(sync, 1);
        }
      }
    }
  }
}

/**
 * First hidden unit of chunk i of `tiles` (H for i = tiles): whole row groups of 24 units, and when
 * H is a multiple of 16 (and large enough) whole pairs of them, 48 units: then every chunk's part of
 * a 64-byte-aligned `[·, H]` row (hidden state, cell state, each gate block) is whole cache lines,
 * so threads never write the same line. Two threads writing one line cost LSTM H = 192 over half
 * its 2-thread gain (the gate rows are read, added to and written back, each step).
 */
function chunkStart(H: i32, i: i32, tiles: i32): i32 {
  const unit = (H & 15) == 0 && H >= 96 * tiles ? 48 : 24;
  const n = (H + unit - 1) / unit;
  return min(H, ((i * n) / tiles) * unit);
}

/** Chunk i of `tiles` of step s: the units [chunkStart(i), chunkStart(i + 1)). */
function rnnChunk(
  mode: i32, act: i32, reverse: i32, T: i32, B: i32, H: i32,
  pw: usize, bias: usize, xproj: usize, gh: usize, c: usize, h0: usize,
  out: usize, so: i32, ldo: i32, s: i32, i: i32, tiles: i32,
): void {
  const G = mode == 1 ? 4 : mode == 2 ? 3 : 1;
  const GH = G * H;
  const groups = (H + 23) / 24;
  const j0 = chunkStart(H, i, tiles);
  const j1 = chunkStart(H, i + 1, tiles);
  if (j1 <= j0) return;
  const t = reverse ? T - 1 - s : s;
  const g = xproj + (<usize>t * <usize>B * <usize>GH << 2);
  const ho = out + (<usize>t * <usize>so << 2);
  let hp = h0;
  let ldp = H;
  if (s > 0) {
    hp = out + (<usize>(reverse ? t + 1 : t - 1) * <usize>so << 2);
    ldp = ldo;
  }
  // the previous hidden state, written in part by other threads: all its lines at once
  if (tiles > 1) for (let b = 0; b < B; b++) touch(hp + (<usize>b * <usize>ldp << 2), <usize>H << 2);
  // the gates of units [j0, j1): rows q·H + j0 … of each block, at row group j0 / 24 of its packing
  const groupBytes = <usize>24 * <usize>(((H + 3) >> 2) << 2) * 4;
  const blockBytes = <usize>groups * groupBytes;
  const pw0 = pw + <usize>(j0 / 24) * groupBytes;
  for (let q = 0; q < G; q++) {
    const r0 = q * H + j0;
    const pwq = pw0 + <usize>q * blockBytes;
    const bq = bias ? bias + (<usize>r0 << 2) : 0;
    for (let b = 0; b < B; b++) {
      const x = hp + (<usize>b * <usize>ldp << 2);
      const row = (<usize>b * <usize>GH + <usize>r0) << 2;
      if (mode != 0) gemvRows(j1 - j0, H, x, pwq, gh + row, bq, 0, 0);
      else gemvRows(j1 - j0, H, x, pwq, g + row, bq, 1, act);
    }
  }
  if (mode == 1) lstmCellUnits(g, gh, c, ho, ldo, H, j0, j1, B);
  else if (mode == 2) gruCellUnits(g, gh, hp, ldp, ho, ldo, H, j0, j1, B);
  else {
    for (let b = 0; b < B; b++) {
      memory.copy(ho + ((<usize>b * <usize>ldo + <usize>j0) << 2), g + ((<usize>b * <usize>GH + <usize>j0) << 2), <usize>(j1 - j0) << 2);
    }
  }
}

/** `touch` the rows of xproj that chunk i of step s reads. */
function touchGates(mode: i32, reverse: i32, T: i32, B: i32, H: i32, xproj: usize, s: i32, i: i32, tiles: i32): void {
  const G = mode == 1 ? 4 : mode == 2 ? 3 : 1;
  const j0 = chunkStart(H, i, tiles);
  const j1 = chunkStart(H, i + 1, tiles);
  const t = reverse ? T - 1 - s : s;
  const g = xproj + (<usize>t * <usize>B * <usize>(G * H) << 2);
  for (let b = 0; b < B; b++) {
    for (let q = 0; q < G; q++) touch(g + ((<usize>(b * G + q) * <usize>H + <usize>j0) << 2), <usize>(j1 - j0) << 2);
  }
}
