/** Random state dicts with PyTorch's names, written out independently of src/ (the test's own list). */
import { Tensor } from "@wasmformer/core";
import { rng } from "./helpers.js";

export type Dict = Map<string, Tensor>;

export class DictBuilder {
  readonly map: Dict = new Map();
  readonly r: ReturnType<typeof rng>;
  constructor(seed: number) {
    this.r = rng(seed);
  }
  add(name: string, shape: number[], scale = 0.5): this {
    this.map.set(name, this.r.tensor(shape, scale));
    return this;
  }
  /** LayerNorm weights near 1, biases small */
  norm(p: string, d: number): this {
    const g = this.r.tensor([d], 0.2);
    for (let i = 0; i < d; i++) g.data[i] += 1;
    this.map.set(`${p}.weight`, g);
    return this.add(`${p}.bias`, [d], 0.1);
  }
  mha(p: string, E: number, o: { kdim?: number; vdim?: number; bias?: boolean } = {}): this {
    const kd = o.kdim ?? E;
    const vd = o.vdim ?? E;
    const s = 1 / Math.sqrt(E);
    if (kd === E && vd === E) this.add(`${p}in_proj_weight`, [3 * E, E], s * 1.5);
    else {
      this.add(`${p}q_proj_weight`, [E, E], s * 1.5);
      this.add(`${p}k_proj_weight`, [E, kd], 1.5 / Math.sqrt(kd));
      this.add(`${p}v_proj_weight`, [E, vd], 1.5 / Math.sqrt(vd));
    }
    if (o.bias ?? true) this.add(`${p}in_proj_bias`, [3 * E], 0.2).add(`${p}out_proj.bias`, [E], 0.2);
    return this.add(`${p}out_proj.weight`, [E, E], s);
  }
  layer(p: string, d: number, F: number, decoder: boolean): this {
    this.mha(`${p}self_attn.`, d);
    if (decoder) this.mha(`${p}multihead_attn.`, d);
    this.add(`${p}linear1.weight`, [F, d], 1 / Math.sqrt(d)).add(`${p}linear1.bias`, [F], 0.2);
    this.add(`${p}linear2.weight`, [d, F], 1 / Math.sqrt(F)).add(`${p}linear2.bias`, [d], 0.2);
    this.norm(`${p}norm1`, d).norm(`${p}norm2`, d);
    if (decoder) this.norm(`${p}norm3`, d);
    return this;
  }
  rnn(G: number, I: number, H: number, L: number, D: number, bias: boolean): this {
    const s = 1 / Math.sqrt(H);
    for (let l = 0; l < L; l++)
      for (let d = 0; d < D; d++) {
        const sfx = `l${l}${d ? "_reverse" : ""}`;
        this.add(`weight_ih_${sfx}`, [G * H, l === 0 ? I : D * H], s);
        this.add(`weight_hh_${sfx}`, [G * H, H], s);
        if (bias) this.add(`bias_ih_${sfx}`, [G * H], s).add(`bias_hh_${sfx}`, [G * H], s);
      }
    return this;
  }
  f32(name: string): Float32Array {
    return this.map.get(name)!.data as Float32Array;
  }
  record(): Record<string, Float32Array> {
    return Object.fromEntries([...this.map].map(([k, v]) => [k, v.data as Float32Array]));
  }
}

/** A bool mask `[rows, cols]` with random blocked entries, never blocking column 0. */
export function boolMask(r: ReturnType<typeof rng>, shape: number[], p = 0.3): Tensor<"bool"> {
  const cols = shape[shape.length - 1];
  const n = shape.reduce((a, b) => a * b, 1);
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) m[i] = i % cols !== 0 && r.next() < p ? 1 : 0;
  return new Tensor(m, shape, "bool");
}

/** An f32 additive mask: finite biases in [−2, 2] and some −∞, never at column 0. */
export function floatMask(r: ReturnType<typeof rng>, shape: number[]): Tensor<"f32"> {
  const cols = shape[shape.length - 1];
  const n = shape.reduce((a, b) => a * b, 1);
  const m = new Float32Array(n);
  for (let i = 0; i < n; i++) m[i] = i % cols !== 0 && r.next() < 0.25 ? Number.NEGATIVE_INFINITY : r.uniform(-2, 2);
  return new Tensor(m, shape, "f32");
}
