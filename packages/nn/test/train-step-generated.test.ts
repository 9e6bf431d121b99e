// train_step cases generated here (FORMAT.md §6.17) and checked against a float64 JavaScript
// reference of the whole procedure: the model forward (test/oracle.ts), PyTorch's cross-entropy
// (ignore_index, label_smoothing), gradients by central differences of that float64 loss, clipping,
// and SGD (momentum, dampening, nesterov, weight decay) / AdamW written from the §6.17 pseudocode.
// Compared with the §6.17 tolerances, on every backend.
import { ConfigError, InputError, ShapeError, Tensor, tensorSource } from "@wasmformer/core";
import type { ParityCase, TensorFile } from "@wasmformer/core/parity";
import { describe, expect, it } from "vitest";
import { runTrainStep, setParityRuntime } from "../src/parity.js";
import { backends, closeTo, rng } from "./helpers.js";
import * as O from "./oracle.js";

const bks = await backends();

type P = Record<string, Float64Array<ArrayBufferLike>>;

interface Gen {
  name: string;
  config: Record<string, unknown>;
  /** initial parameters (f32 values) with shapes */
  params: Record<string, { data: Float32Array; shape: number[] }>;
  inputs: Record<string, Tensor>;
  /** float64 loss of the batch */
  loss: (p: P) => number;
}

/** `F.cross_entropy` in float64 over rows of `logits [N, C]`, mean over labels ≠ ignore. */
function crossEntropy64(logits: number[], labels: ArrayLike<number>, C: number, ignore: number, eps: number): number {
  let sum = 0;
  let n = 0;
  for (let r = 0; r < labels.length; r++) {
    const y = labels[r]!;
    if (y === ignore) continue;
    const row = logits.slice(r * C, r * C + C);
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
    const mean = row.reduce((a, v) => a + v, 0) / C;
    sum += lse - (1 - eps) * row[y]! - eps * mean;
    n++;
  }
  return sum / n;
}

const W = (p: P) => p as unknown as Record<string, Float32Array>;

function lossCfg(o: { ignore?: number; smoothing?: number } = {}) {
  return {
    name: "cross_entropy",
    reduction: "mean",
    ignore_index: o.ignore ?? -100,
    label_smoothing: o.smoothing ?? 0,
    shift_labels: false,
  };
}

function mlpCase(
  name: string,
  seed: number,
  act: "relu" | "tanh" | "gelu",
  optimizer: Record<string, unknown>,
  o: { clip?: number; smoothing?: number; ignoreRow?: boolean; steps?: number } = {},
): Gen {
  const [B, I, Hd, C] = [7, 5, 9, 4];
  const r = rng(seed);
  const params = {
    "fc1.weight": { data: r.tensor([Hd, I], 0.6).data as Float32Array, shape: [Hd, I] },
    "fc1.bias": { data: r.tensor([Hd], 0.3).data as Float32Array, shape: [Hd] },
    "fc2.weight": { data: r.tensor([C, Hd], 0.5).data as Float32Array, shape: [C, Hd] },
    "fc2.bias": { data: r.tensor([C], 0.3).data as Float32Array, shape: [C] },
  };
  const x = r.tensor([B, I], 1.5);
  const labels = Int32Array.from({ length: B }, () => r.int(0, C));
  if (o.ignoreRow) labels[2] = -100;
  const eps = o.smoothing ?? 0;
  return {
    name,
    config: {
      model: "mlp",
      model_config: { input_size: I, hidden_size: Hd, num_classes: C, activation: act },
      loss: lossCfg({ smoothing: eps }),
      optimizer,
      steps: o.steps ?? 3,
      clip_grad_norm: o.clip ? { max_norm: o.clip, norm_type: 2.0 } : null,
      param_order: Object.keys(params),
    },
    params,
    inputs: { x, labels: new Tensor(labels, [B], "i32") },
    loss: (p) => {
      const h = O.linear(x.data, B, p["fc1.weight"]!, p["fc1.bias"], I, Hd).map((v) => O.act(act, v));
      return crossEntropy64(O.linear(h, B, p["fc2.weight"]!, p["fc2.bias"], Hd, C), labels, C, -100, eps);
    },
  };
}

function lstmCase(
  name: string,
  seed: number,
  o: { L: number; bidir: boolean; clip?: number; optimizer: Record<string, unknown> },
): Gen {
  const [B, T, V, E, H, C] = [3, 5, 13, 4, 5, 3];
  const D = o.bidir ? 2 : 1;
  const r = rng(seed);
  const params: Gen["params"] = {};
  const add = (n: string, shape: number[], s: number) => {
    params[n] = { data: r.tensor(shape, s).data as Float32Array, shape };
  };
  add("embedding.weight", [V, E], 1);
  for (let l = 0; l < o.L; l++)
    for (let d = 0; d < D; d++) {
      const sfx = `l${l}${d ? "_reverse" : ""}`;
      add(`lstm.weight_ih_${sfx}`, [4 * H, l === 0 ? E : D * H], 0.45);
      add(`lstm.weight_hh_${sfx}`, [4 * H, H], 0.45);
      add(`lstm.bias_ih_${sfx}`, [4 * H], 0.45);
      add(`lstm.bias_hh_${sfx}`, [4 * H], 0.45);
    }
  add("classifier.weight", [C, D * H], 0.5);
  add("classifier.bias", [C], 0.2);
  const ids = Int32Array.from({ length: B * T }, () => r.int(0, V - 2)); // the last two rows never occur
  const labels = Int32Array.from({ length: B }, () => r.int(0, C));
  return {
    name,
    config: {
      model: "lstm_classifier",
      model_config: {
        vocab_size: V,
        embedding_dim: E,
        hidden_size: H,
        num_layers: o.L,
        bias: true,
        batch_first: true,
        bidirectional: o.bidir,
        dropout: 0.0,
        num_classes: C,
      },
      loss: lossCfg(),
      optimizer: o.optimizer,
      steps: 3,
      clip_grad_norm: o.clip ? { max_norm: o.clip, norm_type: 2.0 } : null,
      param_order: Object.keys(params),
    },
    params,
    inputs: { input_ids: new Tensor(ids, [B, T], "i32"), labels: new Tensor(labels, [B], "i32") },
    loss: (p) => {
      const emb = p["embedding.weight"]!;
      const x: number[] = [];
      for (const id of ids) for (let j = 0; j < E; j++) x.push(emb[id * E + j]!);
      const lstm: P = {};
      for (const [k, v] of Object.entries(p)) if (k.startsWith("lstm.")) lstm[k.slice(5)] = v;
      const { h } = O.rnn("lstm", W(lstm), x, B, T, E, H, o.L, o.bidir, true);
      const f: number[] = [];
      for (let b = 0; b < B; b++)
        for (let d = 0; d < D; d++) for (let j = 0; j < H; j++) f.push(h[(((o.L - 1) * D + d) * B + b) * H + j]!);
      return crossEntropy64(
        O.linear(f, B, p["classifier.weight"]!, p["classifier.bias"], D * H, C),
        labels,
        C,
        -100,
        0,
      );
    },
  };
}

/** The §6.17 procedure in float64: losses, first gradients, grad norms, final parameters. */
function reference(g: Gen) {
  const cfg = g.config as {
    steps: number;
    optimizer: Record<string, number & boolean & string>;
    clip_grad_norm: { max_norm: number } | null;
  };
  const p: P = Object.fromEntries(Object.entries(g.params).map(([k, v]) => [k, Float64Array.from(v.data)]));
  const o = cfg.optimizer;
  const state: Record<string, { b?: Float64Array; m: Float64Array; v: Float64Array }> = {};
  const losses: number[] = [];
  const norms: number[] = [];
  let first: P = {};
  for (let k = 1; k <= cfg.steps; k++) {
    losses.push(g.loss(p));
    const grad: P = {};
    for (const [n, vals] of Object.entries(p)) {
      const gv = new Float64Array(vals.length);
      for (let i = 0; i < vals.length; i++) {
        const v = vals[i]!;
        const h = 1e-6;
        vals[i] = v + h;
        const up = g.loss(p);
        vals[i] = v - h;
        const down = g.loss(p);
        vals[i] = v;
        gv[i] = (up - down) / (2 * h);
      }
      grad[n] = gv;
    }
    if (k === 1) first = Object.fromEntries(Object.entries(grad).map(([n, v]) => [n, v.slice()]));
    if (cfg.clip_grad_norm) {
      let ss = 0;
      for (const v of Object.values(grad)) for (const x of v) ss += x * x;
      const n = Math.sqrt(ss);
      norms.push(n);
      const c = cfg.clip_grad_norm.max_norm / (n + 1e-6);
      if (c < 1) for (const v of Object.values(grad)) for (let i = 0; i < v.length; i++) v[i]! *= c;
    }
    for (const [n, th] of Object.entries(p)) {
      const gr = grad[n]!;
      const s = (state[n] ??= { m: new Float64Array(th.length), v: new Float64Array(th.length) });
      if (o.name === "SGD") {
        const d = gr.map((x, i) => x + o.weight_decay * th[i]!);
        let upd: Float64Array<ArrayBufferLike> = d;
        if (o.momentum !== 0) {
          if (k === 1) s.b = d.slice();
          else s.b = s.b!.map((b, i) => o.momentum * b + (1 - o.dampening) * d[i]!);
          upd = o.nesterov ? d.map((x, i) => x + o.momentum * s.b![i]!) : s.b!;
        }
        for (let i = 0; i < th.length; i++) th[i]! -= o.lr * upd[i]!;
      } else {
        const [b1, b2] = o.betas as unknown as [number, number];
        for (let i = 0; i < th.length; i++) {
          th[i]! *= 1 - o.lr * o.weight_decay;
          s.m[i] = b1 * s.m[i]! + (1 - b1) * gr[i]!;
          s.v[i] = b2 * s.v[i]! + (1 - b2) * gr[i]! * gr[i]!;
          const mh = s.m[i]! / (1 - b1 ** k);
          const vh = s.v[i]! / (1 - b2 ** k);
          th[i]! -= (o.lr * mh) / (Math.sqrt(vh) + o.eps);
        }
      }
    }
  }
  return { losses, norms, first, final: p };
}

/** An in-memory `ParityCase` of the generated case. */
function parityCase(g: Gen): ParityCase {
  const model = new Map(Object.entries(g.params).map(([k, v]) => [k, new Tensor(v.data.slice(), v.shape, "f32")]));
  const file = tensorSource(model) as TensorFile;
  return {
    dir: "",
    name: g.name,
    kind: "train_step",
    json: { config: g.config },
    config: g.config,
    params: {},
    expectError: undefined,
    file: async () => new Uint8Array(),
    io: async () => file,
    inputs: async () => new Map(Object.entries(g.inputs)),
    model: async () => file,
  };
}

const SGD = (o: Partial<Record<string, number | boolean>>) => ({
  name: "SGD",
  lr: 0.1,
  momentum: 0,
  dampening: 0,
  weight_decay: 0,
  nesterov: false,
  maximize: false,
  ...o,
});
const ADAMW = (o: Partial<Record<string, unknown>>) => ({
  name: "AdamW",
  lr: 0.01,
  betas: [0.9, 0.999],
  eps: 1e-5,
  weight_decay: 0.05,
  amsgrad: false,
  maximize: false,
  ...o,
});

const CASES: Gen[] = [
  mlpCase(
    "mlp gelu, SGD nesterov, clipping, label smoothing, an ignored label",
    1,
    "gelu",
    SGD({ momentum: 0.9, nesterov: true, weight_decay: 0.01 }),
    {
      clip: 0.5,
      smoothing: 0.1,
      ignoreRow: true,
    },
  ),
  mlpCase(
    "mlp tanh, SGD momentum with dampening, 4 steps",
    2,
    "tanh",
    SGD({ lr: 0.2, momentum: 0.5, dampening: 0.3 }),
    { steps: 4 },
  ),
  mlpCase("mlp relu, AdamW", 3, "relu", ADAMW({ lr: 0.02 })),
  lstmCase("lstm_classifier 2 layers bidirectional, AdamW, clipping", 4, {
    L: 2,
    bidir: true,
    clip: 0.3,
    optimizer: ADAMW({}),
  }),
  lstmCase("lstm_classifier 1 layer, SGD momentum", 5, {
    L: 1,
    bidir: false,
    optimizer: SGD({ lr: 0.5, momentum: 0.9 }),
  }),
];

/** The float64 reference of each case, computed once for every backend. */
const memo = new Map<Gen, ReturnType<typeof reference>>();

describe.each(bks)("generated train_step cases on $name", ({ make }) => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (_n, g) => {
    setParityRuntime(make);
    const want = memo.get(g) ?? memo.set(g, reference(g)).get(g)!;
    const clip = g.config.clip_grad_norm as { max_norm: number } | null;
    if (clip) expect(want.norms[0], "the case clips").toBeGreaterThan(clip.max_norm);
    const res = await runTrainStep(parityCase(g));
    if (!("tensors" in res)) throw new Error("expected tensors");
    const t = res.tensors;
    expect(closeTo(t.losses!, want.losses, [want.losses.length], 1e-5, 1e-4), "losses").toBeUndefined();
    if (want.norms.length)
      expect(closeTo(t.grad_norms!, want.norms, [want.norms.length], 1e-5, 1e-4), "grad_norms").toBeUndefined();
    else expect(t.grad_norms).toBeUndefined();
    let ss = 0;
    let n = 0;
    for (const v of Object.values(want.first)) {
      for (const x of v) ss += x * x;
      n += v.length;
    }
    const gradAtol = 1e-4 * Math.sqrt(ss / n);
    const lr = (g.config.optimizer as { lr: number }).lr;
    for (const [name, p] of Object.entries(g.params)) {
      expect(closeTo(t[`grad.${name}`]!, want.first[name]!, p.shape, gradAtol, 1e-4), `grad.${name}`).toBeUndefined();
      expect(closeTo(t[`param.${name}`]!, want.final[name]!, p.shape, lr / 200, 1e-5), `param.${name}`).toBeUndefined();
    }
  });
});

describe("train_step bad input", () => {
  const base = () => mlpCase("bad", 9, "relu", SGD({}));
  it("a label outside [0, classes) is an InputError naming it", async () => {
    const g = base();
    (g.inputs.labels!.data as Int32Array)[4] = 7;
    await expect(runTrainStep(parityCase(g))).rejects.toThrow(InputError);
    await expect(runTrainStep(parityCase(g))).rejects.toThrow(/label 7 at position 4 is outside \[0, 4\)/);
  });
  it("inputs of the wrong shape are a ShapeError naming the tensor", async () => {
    const g = base();
    g.inputs.labels = new Tensor(new Int32Array(3), [3], "i32");
    await expect(runTrainStep(parityCase(g))).rejects.toThrow(ShapeError);
    await expect(runTrainStep(parityCase(g))).rejects.toThrow(/input\.labels/);
    const h = lstmCase("bad", 9, { L: 1, bidir: false, optimizer: SGD({}) });
    h.inputs.input_ids = new Tensor(new Float32Array(15), [3, 5], "f32");
    await expect(runTrainStep(parityCase(h))).rejects.toThrow(/input\.input_ids/);
  });
  it("an unknown activation or a classifier with shifted labels is a ConfigError naming the field", async () => {
    const g = base();
    (g.config.model_config as Record<string, unknown>).activation = "swish";
    await expect(runTrainStep(parityCase(g))).rejects.toThrow(ConfigError);
    const h = base();
    (h.config.loss as Record<string, unknown>).shift_labels = true;
    await expect(runTrainStep(parityCase(h))).rejects.toThrow(/shift_labels/);
  });
});
