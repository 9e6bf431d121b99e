/**
 * A float64 BERT (FORMAT.md §6.16) in plain loops, random checkpoints under BERT's names, and the
 * backends the tests run on.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type BackendName,
  createRefRuntime,
  erf,
  type Runtime,
  relaxedSimdSupported,
  simdSupported,
  Tensor,
} from "@wasmformer/core";
import { missingKernels } from "@wasmformer/nn";
import { prng } from "@wasmformer/test-utils";
import { wasmImports, wrapInstance } from "../../core/src/backend/wasm.js";

/**
 * The reference backend and each wasm build (plain SIMD, relaxed SIMD where the engine has it),
 * each `make()` with its own memory.
 */
export function backends(): { name: string; make: () => Runtime }[] {
  const list: { name: string; make: () => Runtime }[] = [{ name: "ref", make: createRefRuntime }];
  const builds: [BackendName, string, boolean][] = [
    ["wasm-simd", "core.wasm", simdSupported()],
    ["wasm-relaxed", "core-relaxed.wasm", relaxedSimdSupported()],
  ];
  for (const [name, file, supported] of builds) {
    const path = join(__dirname, "../../core/build", file);
    if (!supported || !existsSync(path)) continue;
    const module = new WebAssembly.Module(readFileSync(path));
    const make = (): Runtime => {
      const { kernels, heap } = wrapInstance(new WebAssembly.Instance(module, wasmImports()));
      return { backend: name, heap, k: kernels };
    };
    if (missingKernels(make()).length === 0) list.push({ name, make });
  }
  return list;
}

export interface Cfg {
  V: number;
  D: number;
  L: number;
  H: number;
  I: number;
  P: number;
  types: number;
  eps: number;
  act: "gelu" | "relu" | "gelu_new" | "silu";
}

/** The `config.json` of a test config. */
export const configJson = (c: Cfg): Record<string, unknown> => ({
  architectures: ["BertModel"],
  model_type: "bert",
  vocab_size: c.V,
  hidden_size: c.D,
  num_hidden_layers: c.L,
  num_attention_heads: c.H,
  intermediate_size: c.I,
  max_position_embeddings: c.P,
  type_vocab_size: c.types,
  hidden_act: c.act,
  layer_norm_eps: c.eps,
  position_embedding_type: "absolute",
  pad_token_id: 0,
  hidden_dropout_prob: 0.0,
  attention_probs_dropout_prob: 0.0,
});

/** Random weights under BERT's names (without prefix), uniform in ±scale; LayerNorm gains near 1. */
export function randomWeights(c: Cfg, seed: number, opts: { pooler?: boolean } = {}): Map<string, Tensor> {
  const r = prng(seed);
  const m = new Map<string, Tensor>();
  const add = (name: string, shape: number[], scale = 0.5, base = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = base + (r.next() * 2 - 1) * scale;
    m.set(name, new Tensor(a, shape, "f32"));
  };
  const ln = (p: string) => {
    add(`${p}.weight`, [c.D], 0.2, 1);
    add(`${p}.bias`, [c.D], 0.2);
  };
  add("embeddings.word_embeddings.weight", [c.V, c.D]);
  add("embeddings.position_embeddings.weight", [c.P, c.D]);
  add("embeddings.token_type_embeddings.weight", [c.types, c.D]);
  ln("embeddings.LayerNorm");
  for (let l = 0; l < c.L; l++) {
    const p = `encoder.layer.${l}.`;
    for (const x of ["query", "key", "value"]) {
      add(`${p}attention.self.${x}.weight`, [c.D, c.D]);
      add(`${p}attention.self.${x}.bias`, [c.D], 0.2);
    }
    add(`${p}attention.output.dense.weight`, [c.D, c.D]);
    add(`${p}attention.output.dense.bias`, [c.D], 0.2);
    ln(`${p}attention.output.LayerNorm`);
    add(`${p}intermediate.dense.weight`, [c.I, c.D]);
    add(`${p}intermediate.dense.bias`, [c.I], 0.2);
    add(`${p}output.dense.weight`, [c.D, c.I]);
    add(`${p}output.dense.bias`, [c.D], 0.2);
    ln(`${p}output.LayerNorm`);
  }
  if (opts.pooler !== false) {
    add("pooler.dense.weight", [c.D, c.D]);
    add("pooler.dense.bias", [c.D], 0.2);
  }
  return m;
}

/** The same tensors with every name prefixed (`"bert."`). */
export const withPrefix = (w: Map<string, Tensor>, prefix: string) =>
  new Map([...w].map(([n, t]) => [prefix + n, t] as const));

const act = (name: Cfg["act"], x: number) =>
  name === "relu"
    ? Math.max(0, x)
    : name === "silu"
      ? x / (1 + Math.exp(-x))
      : name === "gelu_new"
        ? 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))
        : 0.5 * x * (1 + erf(x / Math.SQRT2));

export interface OracleOut {
  hidden: Float64Array;
  pooler: Float64Array;
  attentions: Float64Array[];
}

/**
 * `BertModel` in float64: ids, types, mask `[B, T]` flat. Padding blocks keys with HF's additive
 * −3.4028234663852886e38 (a masked key gets weight 0; a row with no token at all is uniform).
 */
export function oracle(
  c: Cfg,
  w: Map<string, Tensor>,
  ids: number[],
  B: number,
  T: number,
  types?: number[],
  mask?: number[],
): OracleOut {
  const g = (n: string) => w.get(n)!.data as Float32Array;
  const { D, H, I } = c;
  const d = D / H;
  const n = B * T;
  const lin = (x: Float64Array, rows: number, W: Float32Array, bias: Float32Array, out: number, inn: number) => {
    const y = new Float64Array(rows * out);
    for (let r = 0; r < rows; r++)
      for (let o = 0; o < out; o++) {
        let s = bias[o]!;
        for (let i = 0; i < inn; i++) s += x[r * inn + i]! * W[o * inn + i]!;
        y[r * out + o] = s;
      }
    return y;
  };
  const layerNorm = (x: Float64Array, p: string) => {
    const gw = g(`${p}.weight`);
    const gb = g(`${p}.bias`);
    const y = new Float64Array(x.length);
    for (let r = 0; r < x.length / D; r++) {
      let mean = 0;
      for (let i = 0; i < D; i++) mean += x[r * D + i]!;
      mean /= D;
      let v = 0;
      for (let i = 0; i < D; i++) v += (x[r * D + i]! - mean) ** 2;
      v /= D;
      for (let i = 0; i < D; i++) y[r * D + i] = ((x[r * D + i]! - mean) / Math.sqrt(v + c.eps)) * gw[i]! + gb[i]!;
    }
    return y;
  };
  let h = new Float64Array(n * D);
  const we = g("embeddings.word_embeddings.weight");
  const pe = g("embeddings.position_embeddings.weight");
  const te = g("embeddings.token_type_embeddings.weight");
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const r = b * T + t;
      const id = ids[r]!;
      const ty = types ? types[r]! : 0;
      for (let i = 0; i < D; i++) h[r * D + i] = we[id * D + i]! + te[ty * D + i]! + pe[t * D + i]!;
    }
  h = layerNorm(h, "embeddings.LayerNorm");
  const attentions: Float64Array[] = [];
  for (let l = 0; l < c.L; l++) {
    const p = `encoder.layer.${l}.`;
    const q = lin(h, n, g(`${p}attention.self.query.weight`), g(`${p}attention.self.query.bias`), D, D);
    const k = lin(h, n, g(`${p}attention.self.key.weight`), g(`${p}attention.self.key.bias`), D, D);
    const v = lin(h, n, g(`${p}attention.self.value.weight`), g(`${p}attention.self.value.bias`), D, D);
    const ctx = new Float64Array(n * D);
    const att = new Float64Array(B * H * T * T);
    for (let b = 0; b < B; b++)
      for (let hh = 0; hh < H; hh++)
        for (let i = 0; i < T; i++) {
          const s = new Float64Array(T);
          for (let j = 0; j < T; j++) {
            let dot = 0;
            for (let e = 0; e < d; e++) dot += q[(b * T + i) * D + hh * d + e]! * k[(b * T + j) * D + hh * d + e]!;
            s[j] = dot / Math.sqrt(d) + (mask ? (1 - mask[b * T + j]!) * -3.4028234663852886e38 : 0);
          }
          const mx = Math.max(...s);
          let sum = 0;
          for (let j = 0; j < T; j++) {
            s[j] = Math.exp(s[j]! - mx);
            sum += s[j]!;
          }
          for (let j = 0; j < T; j++) {
            const pr = s[j]! / sum;
            att[((b * H + hh) * T + i) * T + j] = pr;
            for (let e = 0; e < d; e++) ctx[(b * T + i) * D + hh * d + e] += pr * v[(b * T + j) * D + hh * d + e]!;
          }
        }
    attentions.push(att);
    const ao = lin(ctx, n, g(`${p}attention.output.dense.weight`), g(`${p}attention.output.dense.bias`), D, D);
    for (let i = 0; i < n * D; i++) ao[i] += h[i]!;
    const a = layerNorm(ao, `${p}attention.output.LayerNorm`);
    const mid = lin(a, n, g(`${p}intermediate.dense.weight`), g(`${p}intermediate.dense.bias`), I, D).map((x) =>
      act(c.act, x),
    );
    const o = lin(mid, n, g(`${p}output.dense.weight`), g(`${p}output.dense.bias`), D, I);
    for (let i = 0; i < n * D; i++) o[i] += a[i]!;
    h = layerNorm(o, `${p}output.LayerNorm`);
  }
  const pooler = new Float64Array(B * D);
  if (w.has("pooler.dense.weight")) {
    const cls = new Float64Array(B * D);
    for (let b = 0; b < B; b++) for (let i = 0; i < D; i++) cls[b * D + i] = h[b * T * D + i]!;
    const y = lin(cls, B, g("pooler.dense.weight"), g("pooler.dense.bias"), D, D);
    for (let i = 0; i < B * D; i++) pooler[i] = Math.tanh(y[i]!);
  }
  return { hidden: h, pooler, attentions };
}
