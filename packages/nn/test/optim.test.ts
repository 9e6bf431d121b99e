// Optimizers, clipping and schedules against the formulas of torch.optim, evaluated here in
// float64 step by step; and SGD/AdamW end to end on an MLP trained with a float64 backward pass
// (the shared train_step MLP case too, when ../shared/fixtures is present).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  createRefRuntime,
  createRuntime,
  DisposedError,
  InputError,
  init,
  parseSafetensors,
  type Runtime,
  releaseRuntime,
} from "@wasmformer/core";
import { describe, expect, test } from "vitest";
import {
  Adam,
  AdamW,
  clipGradNorm,
  constantSchedule,
  cosineWithWarmup,
  linearWithWarmup,
  SGD,
  selectParams,
  type TrainParam,
} from "../src/index.js";
import { FIXTURES, rng } from "./helpers.js";

function param(rt: Runtime, name: string, values: ArrayLike<number>): TrainParam {
  const ptr = rt.heap.put(Float32Array.from(values));
  const grad = rt.heap.allocF32(values.length);
  return { name, ptr, grad, size: values.length };
}
const get = (rt: Runtime, p: TrainParam) => Array.from(rt.heap.f32(p.ptr, p.size));
const setGrad = (rt: Runtime, p: TrainParam, g: ArrayLike<number>) => rt.heap.f32(p.grad, p.size).set(g);

function expectClose(actual: number[], expected: number[], rtol = 2e-6, atol = 1e-7) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    expect(Math.abs(actual[i] - expected[i]), `index ${i}: ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(
      atol + rtol * Math.abs(expected[i]),
    );
  }
}

/** A few steps of an optimizer on one tensor with the given gradient per step; float64 oracle. */
function run(make: (rt: Runtime, p: TrainParam[]) => { step(): void }, theta0: number[], grads: number[][]) {
  const rt = createRefRuntime();
  const p = param(rt, "w", theta0);
  const opt = make(rt, [p]);
  for (const g of grads) {
    setGrad(rt, p, g);
    opt.step();
  }
  return get(rt, p);
}

const theta0 = [0.5, -1.25, 2, 0, 3e-3];
const grads = [
  [0.1, -0.2, 0.3, 0, 1e-4],
  [-0.05, 0.4, 0.1, 0, -2e-4],
  [0.2, 0.2, -0.3, 0, 5e-5],
];

function sgdOracle(o: { lr: number; mu: number; damp: number; wd: number; nesterov: boolean; maximize?: boolean }) {
  const th = theta0.slice();
  const b = th.map(() => 0);
  grads.forEach((g, k) => {
    for (let i = 0; i < th.length; i++) {
      let d = (o.maximize ? -g[i] : g[i]) + o.wd * th[i];
      if (o.mu !== 0) {
        b[i] = k === 0 ? d : o.mu * b[i] + (1 - o.damp) * d;
        d = o.nesterov ? d + o.mu * b[i] : b[i];
      }
      th[i] -= o.lr * d;
    }
  });
  return th;
}

function adamOracle(o: {
  lr: number;
  b1: number;
  b2: number;
  eps: number;
  wd: number;
  decoupled: boolean;
  ams: boolean;
}) {
  const th = theta0.slice();
  const m = th.map(() => 0);
  const v = th.map(() => 0);
  const vmax = th.map(() => 0);
  grads.forEach((g0, k) => {
    const t = k + 1;
    for (let i = 0; i < th.length; i++) {
      let g = g0[i];
      if (o.decoupled) th[i] *= 1 - o.lr * o.wd;
      else g += o.wd * th[i];
      m[i] = o.b1 * m[i] + (1 - o.b1) * g;
      v[i] = o.b2 * v[i] + (1 - o.b2) * g * g;
      vmax[i] = Math.max(vmax[i], v[i]);
      const mh = m[i] / (1 - o.b1 ** t);
      const vh = (o.ams ? vmax[i] : v[i]) / (1 - o.b2 ** t);
      th[i] -= (o.lr * mh) / (Math.sqrt(vh) + o.eps);
    }
  });
  return th;
}

describe("SGD", () => {
  for (const o of [
    { lr: 0.1, mu: 0, damp: 0, wd: 0, nesterov: false },
    { lr: 0.1, mu: 0.9, damp: 0, wd: 0.01, nesterov: false },
    { lr: 0.05, mu: 0.8, damp: 0.3, wd: 0, nesterov: false },
    { lr: 0.05, mu: 0.9, damp: 0, wd: 0.1, nesterov: true },
    { lr: 0.05, mu: 0.5, damp: 0, wd: 0, nesterov: false, maximize: true },
  ]) {
    test(`matches torch.optim.SGD: ${JSON.stringify(o)}`, () => {
      const got = run(
        (rt, p) =>
          new SGD(rt, p, {
            lr: o.lr,
            momentum: o.mu,
            dampening: o.damp,
            weightDecay: o.wd,
            nesterov: o.nesterov,
            maximize: o.maximize,
          }),
        theta0,
        grads,
      );
      expectClose(got, sgdOracle(o));
    });
  }

  test("bad settings are typed errors naming the setting", () => {
    const rt = createRefRuntime();
    const p = [param(rt, "w", [1])];
    expect(() => new SGD(rt, p, { lr: -1 })).toThrow(/lr must be/);
    expect(() => new SGD(rt, p, { lr: Number.NaN })).toThrow(InputError);
    expect(() => new SGD(rt, p, { lr: 0.1, nesterov: true })).toThrow(/nesterov/);
    expect(() => new SGD(rt, p, { lr: 0.1, dampening: 2 })).toThrow(/dampening/);
    expect(() => new SGD(rt, [], { lr: 0.1 })).toThrow(/no parameters/);
    expect(() => new SGD(rt, [p[0], p[0]], { lr: 0.1 })).toThrow(/"w" appears twice/);
  });
});

describe("Adam and AdamW", () => {
  for (const o of [
    { lr: 1e-2, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0, decoupled: false, ams: false },
    { lr: 1e-2, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.1, decoupled: false, ams: false },
    { lr: 1e-2, b1: 0.8, b2: 0.99, eps: 1e-5, wd: 0.1, decoupled: true, ams: false },
    { lr: 3e-3, b1: 0.9, b2: 0.95, eps: 1e-3, wd: 0.01, decoupled: true, ams: true },
  ]) {
    test(`matches torch.optim.${o.decoupled ? "AdamW" : "Adam"}: ${JSON.stringify(o)}`, () => {
      const opts = { lr: o.lr, betas: [o.b1, o.b2] as [number, number], eps: o.eps, weightDecay: o.wd, amsgrad: o.ams };
      const got = run((rt, p) => (o.decoupled ? new AdamW(rt, p, opts) : new Adam(rt, p, opts)), theta0, grads);
      expectClose(got, adamOracle(o), 1e-5, 1e-7);
    });
  }

  test("a tensor entry whose gradient stays 0 moves by decoupled weight decay alone", () => {
    const got = run((rt, p) => new AdamW(rt, p, { lr: 0.1, weightDecay: 0.5 }), [2], [[0], [0], [0]]);
    expectClose(got, [2 * 0.95 ** 3]);
  });

  test("state saves and resumes: 2 + 1 steps equal 3 steps", () => {
    const rt = createRefRuntime();
    const a = param(rt, "w", theta0);
    const opt = new AdamW(rt, [a], { lr: 1e-2 });
    for (const g of grads.slice(0, 2)) {
      setGrad(rt, a, g);
      opt.step();
    }
    const saved = opt.stateDict();
    const rt2 = createRefRuntime();
    const b = param(rt2, "w", get(rt, a));
    const opt2 = new AdamW(rt2, [b], { lr: 1e-2 });
    opt2.loadStateDict(saved);
    setGrad(rt2, b, grads[2]);
    opt2.step();
    expect(get(rt2, b)).toEqual(run((r, p) => new AdamW(r, p, { lr: 1e-2 }), theta0, grads));
    expect(() => new SGD(rt2, [b], { lr: 1 }).loadStateDict(saved)).toThrow(/state of AdamW, not SGD/);
    const wrong = { ...saved, buffers: { w: { m: new Float32Array(2), v: new Float32Array(2) } } };
    expect(() => opt2.loadStateDict(wrong)).toThrow(/buffer m of "w"/);
  });
});

describe("optimizer state in the heap, updated by the wasm kernels", () => {
  /** Five steps of each optimizer on a 37-float tensor, in a fresh runtime of `backend`. */
  async function trajectory(backend: "ref" | "wasm-simd" | "wasm-relaxed") {
    await init({ backend });
    const rt = createRuntime();
    const r = rng(5);
    const makes = [
      (p: TrainParam[]) => new AdamW(rt, p, { lr: 1e-2, weightDecay: 0.1 }),
      (p: TrainParam[]) => new Adam(rt, p, { lr: 1e-2, weightDecay: 0.1, amsgrad: true }),
      (p: TrainParam[]) => new SGD(rt, p, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }),
      (p: TrainParam[]) => new SGD(rt, p, { lr: 0.1, momentum: 0.5, dampening: 0.2 }),
    ];
    const theta = Array.from(r.f32(37, -2, 2));
    const gs = Array.from({ length: 5 }, () => Array.from(r.f32(37, -1, 1)));
    return makes.map((make) => {
      const p = param(rt, "w", theta);
      const opt = make([p]);
      for (const g of gs) {
        setGrad(rt, p, g);
        opt.step();
      }
      return { theta: get(rt, p), state: opt.stateDict() };
    });
  }

  test("the wasm builds give bit for bit the reference backend's parameters and state", async () => {
    try {
      const ref = await trajectory("ref");
      for (const backend of ["wasm-simd", "wasm-relaxed"] as const) {
        const got = await trajectory(backend);
        expect(got).toEqual(ref);
      }
    } finally {
      await init({ backend: "auto" });
    }
  });

  test("a state whose buffer names differ from the optimizer's is an InputError", () => {
    const rt = createRefRuntime();
    const p = param(rt, "w", [1, 2]);
    const opt = new Adam(rt, [p], { amsgrad: true });
    const st = { kind: "Adam", step: 1, buffers: { w: { m: new Float32Array(2), v: new Float32Array(2) } } };
    expect(() => opt.loadStateDict(st)).toThrow(/"w" has buffers \[m, v\], this Adam keeps \[m, v, vmax\]/);
    // a tensor absent from the state starts afresh: SGD's momentum buffer is set from its first gradient
    const sgd = new SGD(rt, [p], { lr: 1, momentum: 0.5 });
    setGrad(rt, p, [1, 1]);
    sgd.step();
    sgd.loadStateDict({ kind: "SGD", step: 0, buffers: {} });
    setGrad(rt, p, [2, 2]);
    sgd.step();
    expect(sgd.stateDict().buffers.w?.momentum).toEqual(Float32Array.of(2, 2));
  });
});

describe("param groups, freezing, no decay", () => {
  test("frozen tensors keep their values; noDecay tensors get no weight decay", () => {
    const rt = createRefRuntime();
    const ps = [param(rt, "vit.w", [1, 2]), param(rt, "proj.weight", [1, 2]), param(rt, "proj.bias", [1, 2])];
    for (const p of ps) setGrad(rt, p, [0, 0]);
    const groups = selectParams(ps, { freeze: ["vit."], noDecay: [/bias$/] });
    const opt = new SGD(rt, groups, { lr: 0.5, weightDecay: 0.1 });
    expect(opt.params().map((p) => p.name)).toEqual(["proj.weight", "proj.bias"]);
    opt.step();
    expect(get(rt, ps[0])).toEqual([1, 2]);
    expectClose(get(rt, ps[1]), [1 - 0.05, 2 - 0.1]);
    expect(get(rt, ps[2])).toEqual([1, 2]);
    expect(selectParams(ps, { train: ["proj.weight"] })[0].params.map((p) => p.name)).toEqual(["proj.weight"]);
  });

  test("a pattern that matches nothing, or freezing everything, is a typed error", () => {
    const rt = createRefRuntime();
    const ps = [param(rt, "a.w", [1])];
    expect(() => selectParams(ps, { freeze: ["b."] })).toThrow(/freeze pattern b\. matches no parameter/);
    expect(() => selectParams(ps, { noDecay: [/norm/] })).toThrow(/noDecay pattern/);
    expect(() => selectParams(ps, { freeze: ["a."] })).toThrow(/nothing would train/);
  });
});

describe("clipGradNorm", () => {
  test("scales every gradient by max_norm / (norm + 1e-6) when the norm is larger, returns the norm", () => {
    const rt = createRefRuntime();
    const a = param(rt, "a", [0, 0]);
    const b = param(rt, "b", [0]);
    setGrad(rt, a, [3, 0]);
    setGrad(rt, b, [4]);
    expect(clipGradNorm(rt, [a, b], 10)).toBeCloseTo(5, 6);
    expect(Array.from(rt.heap.f32(a.grad, 2))).toEqual([3, 0]); // below max_norm: unchanged
    expect(clipGradNorm(rt, [a, b], 1)).toBeCloseTo(5, 6);
    const c = 1 / (5 + 1e-6);
    expectClose(Array.from(rt.heap.f32(a.grad, 2)), [3 * c, 0]);
    expectClose(Array.from(rt.heap.f32(b.grad, 1)), [4 * c]);
    setGrad(rt, a, [3, -7]);
    expect(clipGradNorm(rt, [a, b], 100, { normType: Number.POSITIVE_INFINITY })).toBe(7);
    setGrad(rt, a, [Number.NaN, 0]);
    expect(() => clipGradNorm(rt, [a, b], 1, { errorIfNonfinite: true })).toThrow(/norm is NaN/);
    expect(Array.from(rt.heap.f32(b.grad, 1))).toEqual([4 * Math.fround(c)].map(Math.fround));
  });
});

describe("schedules (transformers' get_*_schedule_with_warmup)", () => {
  test("warm-up from 0, then constant, linear or cosine decay to 0", () => {
    const lin = linearWithWarmup(2, 6);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map(lin)).toEqual([0, 0.5, 1, 0.75, 0.5, 0.25, 0, 0]);
    const cos = cosineWithWarmup(2, 6);
    expectClose([0, 1, 2, 4, 6].map(cos), [0, 0.5, 1, 0.5, 0], 0, 1e-12);
    expect([0, 1, 2, 99].map(constantSchedule(2))).toEqual([0, 0.5, 1, 1]);
    expect(constantSchedule()(0)).toBe(1);
    expect(() => linearWithWarmup(-1, 5)).toThrow(/warmupSteps/);
    expect(() => cosineWithWarmup(1, 1.5)).toThrow(/totalSteps/);
  });
});

// ---- an MLP trained end to end: float64 forward and backward here, the optimizer under test
interface Mlp {
  w1: number[];
  b1: number[];
  w2: number[];
  b2: number[];
}
function mlpGrads(m: Mlp, x: number[], labels: number[], I: number, H: number, C: number, act: string) {
  const B = labels.length;
  const f = (z: number) => (act === "relu" ? Math.max(0, z) : Math.tanh(z));
  const df = (z: number) => (act === "relu" ? (z > 0 ? 1 : 0) : 1 - Math.tanh(z) ** 2);
  const g: Mlp = { w1: m.w1.map(() => 0), b1: m.b1.map(() => 0), w2: m.w2.map(() => 0), b2: m.b2.map(() => 0) };
  let loss = 0;
  for (let b = 0; b < B; b++) {
    const z = Array.from(
      { length: H },
      (_, h) => m.b1[h] + x.slice(b * I, b * I + I).reduce((s, xi, i) => s + xi * m.w1[h * I + i], 0),
    );
    const a = z.map(f);
    const logits = Array.from({ length: C }, (_, c) => m.b2[c] + a.reduce((s, ai, h) => s + ai * m.w2[c * H + h], 0));
    const mx = Math.max(...logits);
    const lse = mx + Math.log(logits.reduce((s, l) => s + Math.exp(l - mx), 0));
    loss += (lse - logits[labels[b]]) / B;
    const dl = logits.map((l, c) => (Math.exp(l - lse) - (c === labels[b] ? 1 : 0)) / B);
    const da = a.map(() => 0);
    for (let c = 0; c < C; c++) {
      g.b2[c] += dl[c];
      for (let h = 0; h < H; h++) {
        g.w2[c * H + h] += dl[c] * a[h];
        da[h] += dl[c] * m.w2[c * H + h];
      }
    }
    for (let h = 0; h < H; h++) {
      const dz = da[h] * df(z[h]);
      g.b1[h] += dz;
      for (let i = 0; i < I; i++) g.w1[h * I + i] += dz * x[b * I + i];
    }
  }
  return { loss, g };
}

function trainMlp(
  init: Mlp,
  x: number[],
  labels: number[],
  dims: [number, number, number],
  act: string,
  make: (rt: Runtime, p: TrainParam[]) => { step(): void },
  steps: number,
) {
  const rt = createRefRuntime();
  const names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"] as const;
  const keys = ["w1", "b1", "w2", "b2"] as const;
  const ps = keys.map((k, i) => param(rt, names[i], init[k]));
  const opt = make(rt, ps);
  const losses: number[] = [];
  let first: Mlp | undefined;
  for (let k = 0; k < steps; k++) {
    const cur = Object.fromEntries(keys.map((key, i) => [key, get(rt, ps[i])])) as unknown as Mlp;
    const { loss, g } = mlpGrads(cur, x, labels, ...dims, act);
    first ??= g;
    losses.push(loss);
    for (const [i, key] of keys.entries()) setGrad(rt, ps[i], g[key]);
    opt.step();
  }
  return { losses, first: first as Mlp, params: Object.fromEntries(names.map((n, i) => [n, get(rt, ps[i])])) };
}

describe("an MLP trained with these optimizers", () => {
  test("the loss falls with SGD + momentum and with AdamW (own random case)", () => {
    const g = rng(7);
    const r = () => g.next();
    const [I, H, C, B] = [5, 7, 3, 9];
    const init: Mlp = {
      w1: Array.from({ length: H * I }, () => r() - 0.5),
      b1: Array.from({ length: H }, () => r() - 0.5),
      w2: Array.from({ length: C * H }, () => r() - 0.5),
      b2: Array.from({ length: C }, () => r() - 0.5),
    };
    const x = Array.from({ length: B * I }, () => 2 * r() - 1);
    const labels = Array.from({ length: B }, (_, b) => b % C);
    const sgd = trainMlp(init, x, labels, [I, H, C], "tanh", (rt, p) => new SGD(rt, p, { lr: 0.5, momentum: 0.9 }), 30);
    const adam = trainMlp(init, x, labels, [I, H, C], "tanh", (rt, p) => new AdamW(rt, p, { lr: 0.05 }), 30);
    for (const t of [sgd, adam]) expect(t.losses.at(-1) as number).toBeLessThan(t.losses[0] * 0.5);
  });

  const dir = join(FIXTURES, "train_step-mlp_sgd_momentum");
  test.runIf(existsSync(dir))("shared case train_step-mlp_sgd_momentum: losses, first gradients, parameters", () => {
    const c = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
    const { input_size: I, hidden_size: H, num_classes: C, activation } = c.config.model_config;
    const o = c.config.optimizer;
    const model = parseSafetensors(readFileSync(join(dir, "model.safetensors")));
    const io = parseSafetensors(readFileSync(join(dir, "io.safetensors")));
    const t = (f: typeof io, n: string) => Array.from(f.get(n).data as ArrayLike<number>, Number);
    const init: Mlp = {
      w1: t(model, "fc1.weight"),
      b1: t(model, "fc1.bias"),
      w2: t(model, "fc2.weight"),
      b2: t(model, "fc2.bias"),
    };
    const got = trainMlp(
      init,
      t(io, "input.x"),
      t(io, "input.labels"),
      [I, H, C],
      activation,
      (rt, p) =>
        new SGD(rt, p, {
          lr: o.lr,
          momentum: o.momentum,
          dampening: o.dampening,
          weightDecay: o.weight_decay,
          nesterov: o.nesterov,
        }),
      c.config.steps,
    );
    expectClose(got.losses, t(io, "expected.losses"), c.tolerance.rtol, c.tolerance.atol);
    for (const [name, key] of [
      ["fc1.weight", "w1"],
      ["fc1.bias", "b1"],
      ["fc2.weight", "w2"],
      ["fc2.bias", "b2"],
    ] as const) {
      const tg = c.tolerance.per_tensor[`expected.grad.${name}`];
      expectClose(got.first[key], t(io, `expected.grad.${name}`), tg.rtol, tg.atol);
      const tp = c.tolerance.per_tensor[`expected.param.${name}`];
      expectClose(got.params[name], t(io, `expected.param.${name}`), tp.rtol, tp.atol);
    }
  });
});

describe("an optimizer whose parameters' runtime was released", () => {
  test("step, zeroGrad and stateDict are a DisposedError and leave the memory's next owner untouched", () => {
    const rt = createRuntime({ backend: "ref" });
    const n = 6;
    const p: TrainParam = { name: "w", ptr: rt.heap.put(new Float32Array(n).fill(1)), grad: 0, size: n };
    p.grad = rt.heap.put(new Float32Array(n).fill(0.5));
    const opts = [
      new SGD(rt, [p], { lr: 1, weightDecay: 0.1 }),
      new Adam(rt, [p], { lr: 1 }),
      new AdamW(rt, [p], { lr: 1 }),
    ];
    opts[0]!.step(); // live: works
    releaseRuntime(rt); // the model is disposed
    const next = createRuntime({ backend: "ref" }); // and its memory reused at once
    expect(next).toBe(rt);
    const mine = next.heap.put(Float32Array.from({ length: 2 * n }, (_, i) => i));
    const before = Array.from(next.heap.f32(mine, 2 * n));
    for (const o of opts) {
      expect(() => o.step()).toThrow(DisposedError);
      expect(() => o.zeroGrad()).toThrow(DisposedError);
      expect(() => o.stateDict()).toThrow(DisposedError);
    }
    expect(Array.from(next.heap.f32(mine, 2 * n))).toEqual(before);
    // an optimizer made on the reused runtime works
    const q: TrainParam = { name: "w", ptr: mine, grad: mine + 4 * n, size: n };
    new SGD(next, [q], { lr: 1 }).step();
    releaseRuntime(next);
  });
});
