/**
 * What the heads look at: analyses of ViT attention weights (`forward(x, { outputAttentions: true })`).
 *
 * - `clsAttentionMap`: the CLS query's attention to every patch, per head, on the patch grid, as in
 *   DINO (Caron et al., 2021, https://arxiv.org/abs/2104.14294, `visualize_attention.py`), and
 *   `upsampleNearest` to bring it to image pixels the same way.
 * - `attentionRollout`: Abnar & Zuidema (2020), "Quantifying Attention Flow in Transformers",
 *   https://arxiv.org/abs/2005.00928: per layer Â = ½·(fuse_heads(A) + I) (rows re-normalised),
 *   rollout = Â_L · … · Â_1.
 * - `meanAttentionDistance`: per layer and head, the attention-weighted distance in pixels between
 *   query and key patches, averaged over queries (the ViT paper's Figure 7 and keras-io
 *   `probing_vits.py`, definition in FORMAT.md §6.11).
 *
 * All of them work in f64 on the host: they are O(L·H·T²) at most, small next to the model.
 */
import { InputError, ShapeError, Tensor } from "@wasmformer/core";

/** Throw an InputError unless `x` is a `Tensor`. */
function tensor(x: unknown, what: string): Tensor {
  if (!(x instanceof Tensor)) throw new InputError(`${what} must be a Tensor, got ${describe(x)}`);
  return x;
}

/** Throw an InputError unless `x` is an f32 `Tensor` (attention weights, as `forward` returns them). */
function f32Tensor(x: unknown, what: string): Tensor {
  if (tensor(x, what).dtype !== "f32")
    throw new InputError(`${what} must be an f32 Tensor, got ${(x as Tensor).dtype}`);
  return x as Tensor;
}

/** A short description of a value for error messages. */
function describe(x: unknown): string {
  if (x === null || x === undefined || typeof x !== "object")
    return typeof x === "string" ? JSON.stringify(x) : String(x);
  return Array.isArray(x) ? "an array" : (x.constructor?.name ?? "an object");
}

/** `opts` must be a plain options object with only the `allowed` keys. */
function checkOptions(opts: unknown, fn: string, allowed: readonly string[]): Record<string, unknown> {
  if (opts === undefined) return {};
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) {
    throw new InputError(`${fn}: options must be an object, got ${describe(opts)}`);
  }
  for (const k of Object.keys(opts)) {
    if (!allowed.includes(k)) {
      throw new InputError(`${fn}: unknown option "${k}" (allowed: ${allowed.join(", ")})`);
    }
  }
  return opts as Record<string, unknown>;
}

function dims4(a: Tensor, what: string): [number, number, number, number] {
  f32Tensor(a, what);
  if (a.ndim !== 4 || a.shape[2] !== a.shape[3]) {
    throw new ShapeError(`${what} must be [batch, heads, tokens, tokens], got [${a.shape.join(", ")}]`);
  }
  return a.shape as [number, number, number, number];
}

function checkGrid(T: number, grid: readonly [number, number], what: string): void {
  if (!Array.isArray(grid) || grid.length !== 2) {
    throw new InputError(`${what}: grid must be [gh, gw] (ViTOutput.grid), got ${describe(grid)}`);
  }
  const [gh, gw] = grid;
  if (!Number.isInteger(gh) || !Number.isInteger(gw) || gh < 1 || gw < 1 || gh * gw + 1 !== T) {
    throw new ShapeError(`${what}: patch grid ${gh}x${gw} does not fit ${T} tokens (1 CLS + gh·gw patches)`);
  }
}

/**
 * The CLS token's attention to each patch, per head, laid out on the patch grid:
 * `map[b, h, r, c] = A[b, h, 0, 1 + r·gw + c]` (not renormalised).
 * @param attentions one layer's weights `[B, H, T, T]`
 * @param grid `[gh, gw]` with `gh·gw = T − 1` (`ViTOutput.grid`)
 * @returns `[B, H, gh, gw]`
 */
export function clsAttentionMap(attentions: Tensor, grid: readonly [number, number]): Tensor<"f32"> {
  const [B, H, T] = dims4(attentions, "attentions");
  checkGrid(T, grid, "clsAttentionMap");
  const N = T - 1;
  const a = attentions.data as Float32Array;
  const out = new Float32Array(B * H * N);
  for (let bh = 0; bh < B * H; bh++) out.set(a.subarray(bh * T * T + 1, bh * T * T + T), bh * N);
  return new Tensor(out, [B, H, grid[0], grid[1]]);
}

/**
 * Nearest-neighbour upsampling of `[..., gh, gw]` maps to `[..., outH, outW]`, as
 * `F.interpolate(mode="nearest")` (source index ⌊dst · in/out⌋). With `outH = gh·p`, `outW = gw·p`
 * this is DINO's `scale_factor=patch_size` map over the image.
 */
export function upsampleNearest(map: Tensor, outH: number, outW: number): Tensor<"f32"> {
  tensor(map, "upsampleNearest map");
  if (map.ndim < 2) throw new ShapeError(`upsampleNearest needs [..., h, w], got [${map.shape.join(", ")}]`);
  if (!Number.isInteger(outH) || !Number.isInteger(outW) || outH < 1 || outW < 1) {
    throw new InputError(`upsampleNearest: output size must be positive integers, got ${outH}x${outW}`);
  }
  const h = map.shape[map.ndim - 2]!;
  const w = map.shape[map.ndim - 1]!;
  const lead = map.size / (h * w);
  const src = map.data as Float32Array;
  const out = new Float32Array(lead * outH * outW);
  const sy = h / outH;
  const sx = w / outW;
  const xs = Int32Array.from({ length: outW }, (_, x) => Math.min(Math.floor(x * sx), w - 1));
  for (let m = 0; m < lead; m++) {
    for (let y = 0; y < outH; y++) {
      const iy = Math.min(Math.floor(y * sy), h - 1);
      const row = m * h * w + iy * w;
      const o = (m * outH + y) * outW;
      for (let x = 0; x < outW; x++) out[o + x] = src[row + xs[x]!]!;
    }
  }
  return new Tensor(out, [...map.shape.slice(0, -2), outH, outW]);
}

/**
 * DINO's thresholded masks (`visualize_attention.py --threshold`): per map (the last two axes), keep
 * the largest weights that together hold a fraction `threshold` of the map's mass. Ascending sort,
 * normalised cumulative sum, keep where it exceeds `1 − threshold`.
 * @returns a `bool` tensor of the same shape (1 = kept)
 */
export function thresholdAttention(map: Tensor, threshold = 0.6): Tensor<"bool"> {
  if (typeof threshold !== "number" || !(threshold >= 0 && threshold <= 1))
    throw new InputError(`threshold must be a number in [0, 1], got ${describe(threshold)}`);
  tensor(map, "thresholdAttention map");
  if (map.ndim < 2) throw new ShapeError(`thresholdAttention needs [..., h, w], got [${map.shape.join(", ")}]`);
  const n = map.shape[map.ndim - 1]! * map.shape[map.ndim - 2]!;
  const src = map.data as Float32Array;
  const out = new Uint8Array(map.size);
  for (let m = 0; m < map.size / n; m++) {
    const base = m * n;
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => src[base + a]! - src[base + b]! || a - b);
    let total = 0;
    for (let i = 0; i < n; i++) total += src[base + i]!;
    let cum = 0;
    for (const i of order) {
      cum += src[base + i]!;
      if (total > 0 && cum / total > 1 - threshold) out[base + i] = 1;
    }
  }
  return new Tensor(out, map.shape, "bool");
}

const HEAD_FUSIONS = ["mean", "max", "min"] as const;

/**
 * @internal Check `attentionRollout` options (also before a model runs, by `ViTModel.attentionRollout`):
 * InputErrors name the option and what it allows. `L` = number of layers, when known.
 */
export function checkRolloutOptions(
  opts: unknown,
  L?: number,
): { headFusion: (typeof HEAD_FUSIONS)[number]; discardRatio: number; layers: readonly number[] | undefined } {
  const o = checkOptions(opts, "attentionRollout", ["headFusion", "discardRatio", "layers"]);
  const fusion = o.headFusion === undefined ? "mean" : o.headFusion;
  if (!(HEAD_FUSIONS as readonly unknown[]).includes(fusion)) {
    throw new InputError(
      `attentionRollout: headFusion must be one of ${HEAD_FUSIONS.map((f) => `"${f}"`).join(", ")}, got ${describe(fusion)}`,
    );
  }
  const discard = o.discardRatio === undefined ? 0 : o.discardRatio;
  if (typeof discard !== "number" || !(discard >= 0 && discard < 1)) {
    throw new InputError(`attentionRollout: discardRatio must be a number in [0, 1), got ${describe(discard)}`);
  }
  const layers = o.layers;
  if (layers !== undefined) {
    if (!Array.isArray(layers)) {
      throw new InputError(`attentionRollout: layers must be an array of layer indices, got ${describe(layers)}`);
    }
    for (const [i, l] of layers.entries()) {
      if (!Number.isInteger(l) || l < 0 || (L !== undefined && l >= L)) {
        const range = L !== undefined ? ` 0…${L - 1}` : "";
        throw new InputError(`attentionRollout: layers[${i}] = ${describe(l)} is not a layer index${range}`);
      }
    }
  }
  return { headFusion: fusion as (typeof HEAD_FUSIONS)[number], discardRatio: discard, layers };
}

export interface RolloutOptions {
  /** How the heads of a layer are combined: `"mean"` (Abnar & Zuidema), `"max"` or `"min"`. */
  headFusion?: "mean" | "max" | "min";
  /** Fraction of the smallest fused weights per layer set to 0 before adding the identity
   * (jacobgil/vit-explain's `discard_ratio`; the CLS→CLS weight is never discarded). Default 0. */
  discardRatio?: number;
  /** Layers to roll out (default: all). */
  layers?: readonly number[];
}

/**
 * Attention rollout (Abnar & Zuidema, 2020): the attention flow from every token to every input
 * token through the residual stream. For each layer, Â = (fuse(A) + I), rows divided by their sum,
 * and rollout = Â_L · … · Â_1.
 * @param attentions per layer `[B, H, T, T]`
 * @returns `[B, T, T]`; row 0 is the CLS token's attribution over the input tokens (each row sums to 1)
 */
export function attentionRollout(attentions: readonly Tensor[], opts: RolloutOptions = {}): Tensor<"f32"> {
  if (!Array.isArray(attentions))
    throw new InputError(
      `attentionRollout: attentions must be an array of [B, H, T, T] tensors, got ${describe(attentions)}`,
    );
  if (attentions.length === 0) throw new InputError("attentionRollout needs at least one layer of attentions");
  const o = checkRolloutOptions(opts, attentions.length);
  const [B, H, T] = dims4(attentions[0]!, "attentions[0]");
  for (const [i, a] of attentions.entries()) {
    const d = dims4(a, `attentions[${i}]`);
    if (d[0] !== B || d[1] !== H || d[2] !== T) {
      throw new ShapeError(`attentions[${i}] is [${a.shape.join(", ")}], attentions[0] is [${B}, ${H}, ${T}, ${T}]`);
    }
  }
  const fusion = o.headFusion;
  const discard = o.discardRatio;
  const layers = o.layers ?? attentions.map((_, i) => i);
  const out = new Float32Array(B * T * T);
  const TT = T * T;
  let roll = new Float64Array(TT);
  let next = new Float64Array(TT);
  const a = new Float64Array(TT);
  for (let b = 0; b < B; b++) {
    roll.fill(0);
    for (let i = 0; i < T; i++) roll[i * T + i] = 1;
    for (const l of layers) {
      const src = attentions[l]!.data as Float32Array;
      // fuse heads
      for (let e = 0; e < TT; e++) {
        let v = fusion === "mean" ? 0 : src[b * H * TT + e]!;
        for (let h = 0; h < H; h++) {
          const x = src[(b * H + h) * TT + e]!;
          if (fusion === "mean") v += x / H;
          else if (fusion === "max") v = Math.max(v, x);
          else v = Math.min(v, x);
        }
        a[e] = v;
      }
      if (discard > 0) {
        // zero the smallest `discard` fraction of the weights, keeping CLS→CLS (vit-explain)
        const order = Array.from({ length: TT }, (_, i) => i).sort((x, y) => a[x]! - a[y]!);
        const n = Math.floor(TT * discard);
        let dropped = 0;
        for (const e of order) {
          if (dropped >= n) break;
          if (e === 0) continue;
          a[e] = 0;
          dropped++;
        }
      }
      for (let i = 0; i < T; i++) {
        a[i * T + i]! += 1;
        let s = 0;
        for (let j = 0; j < T; j++) s += a[i * T + j]!;
        for (let j = 0; j < T; j++) a[i * T + j]! /= s;
      }
      // next = a · roll
      next.fill(0);
      for (let i = 0; i < T; i++)
        for (let m = 0; m < T; m++) {
          const aim = a[i * T + m]!;
          if (aim === 0) continue;
          for (let j = 0; j < T; j++) next[i * T + j]! += aim * roll[m * T + j]!;
        }
      [roll, next] = [next, roll];
    }
    for (let e = 0; e < TT; e++) out[b * TT + e] = roll[e]!;
  }
  return new Tensor(out, [B, T, T]);
}

/**
 * The CLS row of a rollout over the patches, on the grid: `[B, T, T]` → `[B, gh, gw]`
 * (optionally divided by its maximum, as attention-rollout visualisations do).
 */
export function rolloutMap(
  rollout: Tensor,
  grid: readonly [number, number],
  opts: { normalize?: boolean } = {},
): Tensor<"f32"> {
  const o = checkOptions(opts, "rolloutMap", ["normalize"]);
  if (o.normalize !== undefined && typeof o.normalize !== "boolean") {
    throw new InputError(`rolloutMap: normalize must be a boolean, got ${describe(o.normalize)}`);
  }
  f32Tensor(rollout, "rolloutMap rollout");
  if (rollout.ndim !== 3 || rollout.shape[1] !== rollout.shape[2]) {
    throw new ShapeError(`rollout must be [batch, tokens, tokens], got [${rollout.shape.join(", ")}]`);
  }
  const [B, T] = rollout.shape as [number, number, number];
  checkGrid(T, grid, "rolloutMap");
  const N = T - 1;
  const src = rollout.data as Float32Array;
  const out = new Float32Array(B * N);
  for (let b = 0; b < B; b++) {
    const row = src.subarray(b * T * T + 1, b * T * T + T);
    let max = 0;
    for (const v of row) max = Math.max(max, v);
    const s = opts.normalize && max > 0 ? 1 / max : 1;
    for (let n = 0; n < N; n++) out[b * N + n] = row[n]! * s;
  }
  return new Tensor(out, [B, grid[0], grid[1]]);
}

/**
 * Mean attention distance in pixels, per layer and head (FORMAT.md §6.11):
 * `(1/N) · Σ_i Σ_j A_l[b, h, 1+i, 1+j] · p · ‖(r_i, c_i) − (r_j, c_j)‖` over patches i (queries)
 * and j (keys); the CLS row and column are dropped and the weights are not renormalised.
 * @param attentions per layer `[B, H, T, T]`
 * @param grid `[gh, gw]` (`r = n div gw`, `c = n mod gw`)
 * @param patchSize pixels per patch side
 * @returns `[B, L, H]`
 */
export function meanAttentionDistance(
  attentions: readonly Tensor[],
  grid: readonly [number, number],
  patchSize: number,
): Tensor<"f32"> {
  if (!Array.isArray(attentions)) {
    throw new InputError(
      `meanAttentionDistance: attentions must be an array of [B, H, T, T] tensors, got ${describe(attentions)}`,
    );
  }
  if (attentions.length === 0) throw new InputError("meanAttentionDistance needs at least one layer of attentions");
  if (typeof patchSize !== "number" || !Number.isFinite(patchSize) || !(patchSize > 0))
    throw new InputError(`patchSize must be a positive finite number, got ${describe(patchSize)}`);
  const [B, H, T] = dims4(attentions[0]!, "attentions[0]");
  checkGrid(T, grid, "meanAttentionDistance");
  const L = attentions.length;
  const N = T - 1;
  const gw = grid[1];
  // distance table between patch centres, in pixels
  const dist = new Float64Array(N * N);
  for (let i = 0; i < N; i++)
    for (let j = 0; j < N; j++) {
      const dr = Math.floor(i / gw) - Math.floor(j / gw);
      const dc = (i % gw) - (j % gw);
      dist[i * N + j] = patchSize * Math.sqrt(dr * dr + dc * dc);
    }
  const out = new Float32Array(B * L * H);
  for (let l = 0; l < L; l++) {
    const a = attentions[l]!;
    const d = dims4(a, `attentions[${l}]`);
    if (d[0] !== B || d[1] !== H || d[2] !== T) {
      throw new ShapeError(`attentions[${l}] is [${a.shape.join(", ")}], attentions[0] is [${B}, ${H}, ${T}, ${T}]`);
    }
    const src = a.data as Float32Array;
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++) {
        const base = (b * H + h) * T * T;
        let s = 0;
        for (let i = 0; i < N; i++) {
          const row = base + (1 + i) * T + 1;
          for (let j = 0; j < N; j++) s += src[row + j]! * dist[i * N + j]!;
        }
        out[(b * L + l) * H + h] = s / N;
      }
  }
  return new Tensor(out, [B, L, H]);
}
