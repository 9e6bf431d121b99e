// AttentionSeq2Seq (LSTM encoder–decoder, Luong attention): the training forward against a float64
// oracle written out here, its backward against finite differences on every backend, the batch loss
// over mixed source lengths, greedy decoding as the same definition as the teacher-forced forward,
// save/load round trips, translate() with a character vocabulary, and typed errors.
import { ConfigError, DisposedError, InputError, parseSafetensors, ShapeError, Tensor } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { AttentionSeq2Seq, type AttentionSeq2SeqOptions, type Seq2SeqExample } from "../src/attention-seq2seq.js";
import { AdamW } from "../src/optim.js";
import { loadModule, tensorSource } from "../src/state-dict.js";
import { type F64, gradCheck } from "./gradcheck.js";
import { backends, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { DictBuilder } from "./weights.js";

const bks = await backends();
const [Vs, Vt, E, H] = [7, 6, 3, 5];
const OPTS: AttentionSeq2SeqOptions = { srcVocabSize: Vs, tgtVocabSize: Vt, embedDim: E, hiddenSize: H };

function weights(seed: number): DictBuilder {
  const wb = new DictBuilder(seed);
  const s = 1 / Math.sqrt(H);
  for (const [p, V] of [
    ["encoder", Vs],
    ["decoder", Vt],
  ] as const) {
    wb.add(`${p}.embedding.weight`, [V, E], 1);
    wb.add(`${p}.lstm.weight_ih_l0`, [4 * H, E], s * 2).add(`${p}.lstm.weight_hh_l0`, [4 * H, H], s * 2);
    wb.add(`${p}.lstm.bias_ih_l0`, [4 * H], s).add(`${p}.lstm.bias_hh_l0`, [4 * H], s);
  }
  wb.add("decoder.attention.weight", [H, H], 2);
  wb.add("decoder.concat.weight", [H, 2 * H], 1).add("decoder.concat.bias", [H], 0.3);
  wb.add("decoder.out.weight", [Vt, H], 1).add("decoder.out.bias", [Vt], 0.3);
  return wb;
}

/** The float64 model: logits [B, T, Vt] of the teacher-forced forward, per the module comment. */
function oracle(w: Record<string, ArrayLike<number>>, src: number[], yIn: number[], B: number, S: number, T: number) {
  const sub = (p: string) =>
    Object.fromEntries(Object.entries(w).flatMap(([k, v]) => (k.startsWith(p) ? [[k.slice(p.length), v]] : [])));
  const emb = (table: ArrayLike<number>, ids: number[]) =>
    ids.flatMap((i) => Array.from({ length: E }, (_, j) => table[i * E + j]!));
  const W = sub("") as unknown as Parameters<typeof O.rnn>[1];
  const enc = O.rnn(
    "lstm",
    sub("encoder.lstm.") as typeof W,
    emb(w["encoder.embedding.weight"]!, src),
    B,
    S,
    E,
    H,
    1,
    false,
    true,
  );
  const dec = O.rnn(
    "lstm",
    sub("decoder.lstm.") as typeof W,
    emb(w["decoder.embedding.weight"]!, yIn),
    B,
    T,
    E,
    H,
    1,
    false,
    true,
    enc.h,
    enc.c,
  );
  const k = O.linear(enc.output, B * S, w["decoder.attention.weight"]!, undefined, H, H);
  const cat: number[] = [];
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const q = dec.output.slice((b * T + t) * H, (b * T + t + 1) * H);
      const sc = Array.from({ length: S }, (_, s) => q.reduce((acc, v, j) => acc + v * k[(b * S + s) * H + j]!, 0));
      const m = Math.max(...sc);
      const ex = sc.map((v) => Math.exp(v - m));
      const z = ex.reduce((a, v) => a + v, 0);
      const ctx = new Array<number>(H).fill(0);
      for (let s = 0; s < S; s++) for (let j = 0; j < H; j++) ctx[j] += (ex[s]! / z) * enc.output[(b * S + s) * H + j]!;
      cat.push(...ctx, ...q);
    }
  const ht = O.linear(cat, B * T, w["decoder.concat.weight"]!, w["decoder.concat.bias"], 2 * H, H).map(Math.tanh);
  return O.linear(ht, B * T, w["decoder.out.weight"]!, w["decoder.out.bias"], H, Vt);
}

const ids = (r: ReturnType<typeof rng>, n: number, V: number) => Array.from({ length: n }, () => r.int(0, V));

describe("AttentionSeq2Seq", () => {
  for (const bk of bks) {
    it(`backward matches finite differences of the float64 oracle (${bk.name})`, () => {
      const [B, S, T] = [2, 4, 3];
      const wb = weights(3);
      const m = loadModule(tensorSource(wb.map), (s) => new AttentionSeq2Seq(s, OPTS), { runtime: bk.make() }).train();
      const r = rng(11);
      const src = ids(r, B * S, Vs);
      const yIn = ids(r, B * T, Vt);
      const res = gradCheck(
        {
          rt: m.rt,
          params: m.parameters(),
          weights: wb.record(),
          inputs: {},
          ref: (w: F64) => oracle(w, src, yIn, B, S, T),
          run: (dy) => {
            const logits = m.forward(
              new Tensor(Int32Array.from(src), [B, S], "i32"),
              new Tensor(Int32Array.from(yIn), [B, T], "i32"),
            );
            m.backward(new Tensor(dy, [B, T, Vt], "f32"));
            return { out: logits.data, dInputs: {} };
          },
        },
        5,
      );
      expect(res.failures).toEqual([]);
      m.dispose();
    });
  }

  it("lossAndGrad over a batch of mixed source lengths is the mean token loss, and its gradient is right", () => {
    const m = loadModule(tensorSource(weights(4).map), (s) => new AttentionSeq2Seq(s, OPTS));
    const r = rng(12);
    const batch: Seq2SeqExample[] = [3, 5, 3, 2].map((S, i) => ({ src: ids(r, S, Vs), tgt: ids(r, 2 + (i % 2), Vt) }));
    // the mean over the 10 target tokens, from the oracle
    const lossOf = (w: Record<string, ArrayLike<number>>) => {
      let sum = 0;
      for (const ex of batch) {
        const tgt = Array.from(ex.tgt);
        const logits = oracle(w, Array.from(ex.src), [1, ...tgt.slice(0, -1)], 1, ex.src.length, tgt.length);
        tgt.forEach((y, t) => {
          const row = logits.slice(t * Vt, (t + 1) * Vt);
          const mx = Math.max(...row);
          sum += Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0)) + mx - row[y]!;
        });
      }
      return sum / 10;
    };
    const w64 = Object.fromEntries([...weights(4).map].map(([k, v]) => [k, Float64Array.from(v.data as Float32Array)]));
    m.zeroGrad();
    const res = m.lossAndGrad(batch, 1);
    expect(res.count).toBe(10);
    expect(res.loss).toBeCloseTo(lossOf(w64), 4);
    expect(m.training).toBe(false); // back to the mode it was in
    const grads = new Map(m.parameters().map((p) => [p.name, m.rt.heap.f32(p.grad, p.size).slice()]));
    for (const [name, i] of [
      ["encoder.lstm.weight_hh_l0", 7],
      ["encoder.embedding.weight", 4],
      ["decoder.attention.weight", 12],
      ["decoder.lstm.bias_ih_l0", 3],
      ["decoder.out.bias", 2],
    ] as const) {
      const v = w64[name]!;
      const h = 1e-5;
      const x = v[i]!;
      v[i] = x + h;
      const up = lossOf(w64);
      v[i] = x - h;
      const down = lossOf(w64);
      v[i] = x;
      const fd = (up - down) / (2 * h);
      expect(Math.abs(grads.get(name)![i]! - fd), name).toBeLessThan(1e-4 + 1e-3 * Math.abs(fd));
    }
    // evaluate gives the same loss without touching the gradients
    const before = m.parameters().map((p) => m.rt.heap.f32(p.grad, p.size).slice());
    expect(m.evaluate(batch).loss).toBeCloseTo(res.loss, 5);
    expect(m.parameters().map((p) => m.rt.heap.f32(p.grad, p.size).slice())).toEqual(before);
    m.dispose();
  });

  it("greedy decoding is the teacher-forced forward fed its own argmax; attention rows sum to 1", () => {
    const m = loadModule(tensorSource(weights(5).map), (s) => new AttentionSeq2Seq(s, { ...OPTS, eosId: 99 % Vt }));
    const r = rng(13);
    const [B, S] = [3, 4];
    const src = new Tensor(Int32Array.from(ids(r, B * S, Vs)), [B, S], "i32");
    const g = m.greedy(src, { maxNewTokens: 5, eosId: -1 });
    for (let b = 0; b < B; b++) {
      expect(g.ids[b]).toHaveLength(5);
      expect(g.attention[b]!.shape).toEqual([5, S]);
      for (let t = 0; t < 5; t++) {
        const row = g.attention[b]!.data.subarray(t * S, (t + 1) * S);
        expect(row.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
      }
    }
    const yIn = new Int32Array(B * 5);
    for (let b = 0; b < B; b++) yIn.set([m.bosId, ...g.ids[b]!.slice(0, 4)], b * 5);
    const logits = m.forward(src, new Tensor(yIn, [B, 5], "i32")).data;
    for (let b = 0; b < B; b++)
      for (let t = 0; t < 5; t++) {
        const row = Array.from(logits.subarray((b * 5 + t) * Vt, (b * 5 + t + 1) * Vt));
        expect(row.indexOf(Math.max(...row))).toBe(g.ids[b]![t]);
      }
    m.dispose();
  });

  it("a few AdamW steps on a toy copy task lower the loss; save/load (F32 and F16) round-trips", async () => {
    const m = AttentionSeq2Seq.create({ srcVocabSize: 8, tgtVocabSize: 8, embedDim: 8, hiddenSize: 16 }, { seed: 1 });
    const r = rng(14);
    const batch: Seq2SeqExample[] = Array.from({ length: 16 }, () => {
      const s = Array.from({ length: 4 }, () => r.int(3, 8));
      return { src: s, tgt: [...s, 2] };
    });
    const opt = new AdamW(m.rt, m.parameters(), { lr: 0.02 });
    const first = m.evaluate(batch).loss;
    for (let i = 0; i < 30; i++) {
      m.zeroGrad();
      m.lossAndGrad(batch, 1);
      opt.step();
    }
    const last = m.evaluate(batch).loss;
    expect(last).toBeLessThan(first * 0.7);
    const src = new Tensor(Int32Array.from(batch.slice(0, 4).flatMap((e) => Array.from(e.src))), [4, 4], "i32");
    const want = m.greedy(src, { maxNewTokens: 6 });
    const saved = m.save();
    expect(saved.config.model_type).toBe("lstm_attention_seq2seq");
    const back = await AttentionSeq2Seq.fromPretrained(saved);
    const got = back.greedy(src, { maxNewTokens: 6 });
    expect(got.ids).toEqual(want.ids);
    for (let b = 0; b < 4; b++) expect(Array.from(got.attention[b]!.data)).toEqual(Array.from(want.attention[b]!.data));
    // F16 storage: half the bytes, the same tensors within f16 rounding
    const half = m.save({ dtype: "F16" });
    expect(half.weights.length).toBeLessThan(saved.weights.length * 0.6);
    const f = parseSafetensors(half.weights);
    const w = f.get("decoder.out.weight").data as Float32Array;
    const ref = m.stateDict().get("decoder.out.weight")!.data;
    for (let i = 0; i < w.length; i++)
      expect(Math.abs(w[i]! - ref[i]!)).toBeLessThan(1e-3 * Math.max(1, Math.abs(ref[i]!)));
    back.dispose();
    m.dispose();
  });

  it("translate() maps characters through the vocabulary and returns the attention heatmap", async () => {
    const src = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b", "c"];
    const tgt = ["<pad>", "<bos>", "<eos>", "x", "y", "z"];
    const m = loadModule(tensorSource(weights(6).map), (s) => new AttentionSeq2Seq(s, OPTS)).setVocab({
      src,
      tgt,
      lowercase: true,
    });
    const t = m.translate("Ab?c", { maxNewTokens: 4 });
    expect(t.sourceTokens).toEqual(["a", "b", "?", "c"]);
    expect(t.attention.shape).toEqual([t.ids.length, 4]);
    expect(t.targetTokens).toEqual(t.ids.map((i) => tgt[i]));
    expect(t.text).toBe(t.targetTokens.filter((_, i) => !(i === t.ids.length - 1 && t.ids[i] === 2)).join(""));
    const direct = m.greedy(new Tensor(Int32Array.of(4, 5, 3, 6), [1, 4], "i32"), { maxNewTokens: 4 });
    expect(t.ids).toEqual(direct.ids[0]);
    // the vocabulary travels in config.json
    const again = await AttentionSeq2Seq.fromPretrained(m.save());
    expect(again.translate("Ab?c", { maxNewTokens: 4 }).ids).toEqual(t.ids);
    expect(() => m.translate("")).toThrow(InputError);
    const strict = loadModule(tensorSource(weights(6).map), (s) => new AttentionSeq2Seq(s, OPTS)).setVocab({
      src: ["<pad>", "<bos>", "<eos>", "q", "a", "b", "c"],
      tgt,
    });
    expect(() => strict.translate("a?")).toThrow(/character "\?" at index 1/);
    again.dispose();
    strict.dispose();
    m.dispose();
  });

  it("bad input: typed errors naming the fault", async () => {
    const m = loadModule(tensorSource(weights(7).map), (s) => new AttentionSeq2Seq(s, OPTS));
    expect(() => m.lossAndGrad([{ src: [1, 2], tgt: [1, 9] }], 1)).toThrow(
      /example 0: tgt\[1\]: id 9 is outside \[0, 6\)/,
    );
    expect(() => m.lossAndGrad([{ src: [], tgt: [1] }], 1)).toThrow(InputError);
    expect(() => m.lossAndGrad([], 1)).toThrow(InputError);
    expect(() => m.greedy(new Tensor(Float32Array.of(1, 2), [1, 2], "f32"), { maxNewTokens: 2 })).toThrow(ShapeError);
    expect(() => m.greedy(new Tensor(Int32Array.of(1, 2), [1, 2], "i32"), { maxNewTokens: -1 })).toThrow(InputError);
    expect(() => m.translate("ab")).toThrow(/no vocabulary/);
    expect(() => m.setVocab({ src: ["a"], tgt: [] })).toThrow(ConfigError);
    m.train();
    m.forward(new Tensor(Int32Array.of(1, 2), [1, 2], "i32"), new Tensor(Int32Array.of(1), [1, 1], "i32"));
    expect(() => m.backward(new Tensor(new Float32Array(Vt), [1, 2, Vt], "f32"))).toThrow(ShapeError);
    m.backward(new Tensor(new Float32Array(Vt), [1, 1, Vt], "f32")); // the record was kept
    expect(() => m.backward(new Tensor(new Float32Array(Vt), [1, 1, Vt], "f32"))).toThrow(/no forward record/);
    await expect(
      AttentionSeq2Seq.fromPretrained({ config: { model_type: "bert" }, weights: new Uint8Array() }),
    ).rejects.toThrow(ConfigError);
    await expect(AttentionSeq2Seq.fromPretrained("/nonexistent/dates")).rejects.toThrow(ConfigError);
    m.dispose();
    expect(() => m.translate("ab")).toThrow(DisposedError);
    expect(() => AttentionSeq2Seq.create({ ...OPTS, hiddenSize: 0 })).toThrow(ConfigError);
  });
});
