// Seq2SeqTransformer: teacher-forced logits and greedy decoding against the float64 oracle, and beam
// search against exhaustive search (a beam as wide as all prefixes must find the exact optimum).
import { InputError, ShapeError, Tensor } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { fit } from "../src/fit.js";
import { AdamW } from "../src/optim.js";
import { paddingMask, Seq2SeqTransformer } from "../src/seq2seq.js";
import { loadModule, tensorSource } from "../src/state-dict.js";
import { type F64, gradCheck } from "./gradcheck.js";
import { backends, closeTo, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { DictBuilder } from "./weights.js";

const bks = await backends();

const C: O.LayerCfg = { d: 12, H: 3, F: 18, act: "gelu", normFirst: false, eps: 1e-5 };
const [Vs, Vt, nEnc, nDec] = [9, 5, 2, 1];

function weights(seed: number) {
  const wb = new DictBuilder(seed);
  wb.add("src_tok_emb.embedding.weight", [Vs, C.d], 0.4).add("tgt_tok_emb.embedding.weight", [Vt, C.d], 0.4);
  for (let i = 0; i < nEnc; i++) wb.layer(`transformer.encoder.layers.${i}.`, C.d, C.F, false);
  for (let i = 0; i < nDec; i++) wb.layer(`transformer.decoder.layers.${i}.`, C.d, C.F, true);
  wb.norm("transformer.encoder.norm", C.d).norm("transformer.decoder.norm", C.d);
  wb.add("generator.weight", [Vt, C.d], 1.5).add("generator.bias", [Vt], 0.5);
  return wb;
}

/** Oracle logits [B, T, Vt] for src/tgt ids (FORMAT §6.10). */
function oracleLogits(
  w: Record<string, Float32Array>,
  src: number[][],
  tgt: number[][],
  srcPad?: number[][],
): number[] {
  const B = src.length;
  const S = src[0].length;
  const T = tgt[0].length;
  const pe = O.pe(Math.max(S, T), C.d);
  const emb = (table: Float32Array, ids: number[][]) =>
    ids.flatMap((row) =>
      row.flatMap((id, p) =>
        Array.from({ length: C.d }, (_, j) => table[id * C.d + j] * Math.sqrt(C.d) + pe[p * C.d + j]),
      ),
    );
  const kpm = srcPad?.flat();
  const causal = new Array(T * T).fill(0).map((_, k) => (k % T > Math.floor(k / T) ? 1 : 0));
  const { output } = O.transformer(
    w,
    "transformer.",
    emb(w["src_tok_emb.embedding.weight"], src),
    emb(w["tgt_tok_emb.embedding.weight"], tgt),
    B,
    S,
    T,
    nEnc,
    nDec,
    C,
    { kpm },
    { attn: { data: causal, kind: "bool", perSlice: false } },
    { kpm },
  );
  return O.linear(output, B * T, w["generator.weight"], w["generator.bias"], C.d, Vt);
}

const ids = (rows: number[][]) => new Tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], "i32");

describe.each(bks)("Seq2SeqTransformer on $name", ({ make }) => {
  const wb = weights(11);
  const model = loadModule(
    tensorSource(wb.map),
    (s) =>
      new Seq2SeqTransformer(s, {
        dModel: C.d,
        nhead: C.H,
        dimFeedforward: C.F,
        activation: C.act,
        numEncoderLayers: nEnc,
        numDecoderLayers: nDec,
        srcVocabSize: Vs,
        tgtVocabSize: Vt,
      }),
    { runtime: make() },
  );
  const src = [
    [3, 5, 7, 2, 8, 0, 0],
    [4, 4, 1, 6, 2, 3, 5],
  ];
  const srcPad = src.map((r) => r.map((x) => (x === 0 ? 1 : 0)));
  const kpm = paddingMask(ids(src), 0);

  it("teacher-forced logits with a padded source", () => {
    const tgt = [
      [1, 2, 4, 3],
      [1, 0, 2, 2],
    ];
    const got = model.forward(ids(src), ids(tgt), { srcKeyPaddingMask: kpm });
    expect(closeTo(got, oracleLogits(wb.record(), src, tgt, srcPad), [2, 4, Vt])).toBeUndefined();
  });

  it("greedy: exactly N steps, argmax of the oracle's last-position logits, step logits returned", () => {
    const N = 6;
    const g = model.greedy(ids(src), { maxNewTokens: N, srcKeyPaddingMask: kpm });
    expect(g.ids.shape).toEqual([2, N]);
    expect(g.stepLogits.shape).toEqual([2, N, Vt]);
    for (let b = 0; b < 2; b++) {
      const ys = [1];
      for (let t = 0; t < N; t++) {
        const l = oracleLogits(wb.record(), [src[b]], [ys], [srcPad[b]]).slice(t * Vt, (t + 1) * Vt);
        let best = 0;
        for (let v = 1; v < Vt; v++) if (l[v] > l[best]) best = v;
        expect(g.ids.data[b * N + t]).toBe(best);
        for (let v = 0; v < Vt; v++)
          expect(Math.abs(g.stepLogits.data[(b * N + t) * Vt + v] - l[v])).toBeLessThan(1e-4 + 1e-3 * Math.abs(l[v]));
        ys.push(best);
      }
    }
    expect(model.greedy(ids(src), { maxNewTokens: 0 }).ids.shape).toEqual([2, 0]);
  });

  /** All continuations of up to n tokens, with their log-probabilities under the model. */
  function exhaustive(row: number, n: number, eos: number | undefined, alpha: number) {
    const out: { ids: number[]; logProb: number; score: number }[] = [];
    const srcT = ids([src[row]]);
    const pad = paddingMask(srcT, 0);
    const rec = (prefix: number[], lp: number) => {
      if (prefix.length > 0 && (prefix.length === n || (eos !== undefined && prefix[prefix.length - 1] === eos))) {
        out.push({ ids: prefix, logProb: lp, score: lp / prefix.length ** alpha });
        return;
      }
      const logits = model.forward(srcT, ids([[1, ...prefix]]), { srcKeyPaddingMask: pad });
      const l = Array.from(logits.data.slice(prefix.length * Vt, (prefix.length + 1) * Vt));
      const mx = Math.max(...l);
      const lse = mx + Math.log(l.reduce((a, x) => a + Math.exp(x - mx), 0));
      for (let v = 0; v < Vt; v++) rec([...prefix, v], lp + l[v] - lse);
    };
    rec([], 0);
    return out.sort((p, q) => q.score - p.score);
  }

  it("beam search = exhaustive search when the beam holds every prefix (with EOS, length-normalised)", () => {
    const n = 3;
    for (const [eos, alpha] of [
      [2, 1],
      [2, 0],
      [undefined, 1],
      [4, 0.6],
    ] as [number | undefined, number][]) {
      for (let row = 0; row < 2; row++) {
        const best = exhaustive(row, n, eos, alpha);
        const beams = model.beamSearch(ids([src[row]]), {
          beamSize: Vt ** (n - 1),
          maxNewTokens: n,
          eosId: eos,
          lengthPenalty: alpha,
          srcKeyPaddingMask: paddingMask(ids([src[row]]), 0),
        });
        expect(beams.length).toBe(1);
        const top = beams[0];
        expect(top[0].ids, `eos ${eos} alpha ${alpha} row ${row}`).toEqual(best[0].ids);
        expect(top[0].score).toBeCloseTo(best[0].score, 4);
        expect(top[0].logProb).toBeCloseTo(best[0].logProb, 4);
        // scores are sorted and consistent with logProb / len^alpha
        for (let i = 1; i < top.length; i++) expect(top[i].score).toBeLessThanOrEqual(top[i - 1].score);
        for (const h of top) expect(h.score).toBeCloseTo(h.logProb / h.ids.length ** alpha, 6);
        // the top-k agree with the exhaustive ranking
        for (let i = 0; i < Math.min(5, top.length); i++) expect(top[i].score).toBeCloseTo(best[i].score, 4);
      }
    }
  });

  it("beam size 1 without EOS is greedy decoding; batch rows are searched independently", () => {
    const g = model.greedy(ids(src), { maxNewTokens: 5, srcKeyPaddingMask: kpm });
    const b = model.beamSearch(ids(src), { beamSize: 1, maxNewTokens: 5, srcKeyPaddingMask: kpm });
    expect(b.length).toBe(2);
    for (let r = 0; r < 2; r++) expect(b[r][0].ids).toEqual(Array.from(g.ids.data.slice(r * 5, r * 5 + 5)));
    const wide = model.beamSearch(ids(src), { beamSize: 3, maxNewTokens: 5, srcKeyPaddingMask: kpm });
    for (let r = 0; r < 2; r++) {
      const single = model.beamSearch(ids([src[r]]), {
        beamSize: 3,
        maxNewTokens: 5,
        srcKeyPaddingMask: paddingMask(ids([src[r]]), 0),
      });
      expect(wide[r].map((h) => h.ids)).toEqual(single[0].map((h) => h.ids));
      expect(wide[r][0].logProb).toBeGreaterThanOrEqual(b[r][0].logProb - 1e-5);
    }
  });

  it("greedy with the KV cache = greedy by re-decoding the prefix (post- and pre-norm, 12 steps)", () => {
    for (const normFirst of [false, true]) {
      const m2 = loadModule(
        tensorSource(weights(normFirst ? 12 : 13).map),
        (s) =>
          new Seq2SeqTransformer(s, {
            dModel: C.d,
            nhead: C.H,
            dimFeedforward: C.F,
            activation: "relu",
            normFirst,
            numEncoderLayers: nEnc,
            numDecoderLayers: nDec,
            srcVocabSize: Vs,
            tgtVocabSize: Vt,
          }),
        { runtime: make() },
      );
      const a = m2.greedy(ids(src), { maxNewTokens: 12, srcKeyPaddingMask: kpm });
      const b = m2.greedy(ids(src), { maxNewTokens: 12, srcKeyPaddingMask: kpm, useCache: false });
      expect(Array.from(a.ids.data)).toEqual(Array.from(b.ids.data));
      expect(closeTo(a.stepLogits, b.stepLogits.data, b.stepLogits.shape, 1e-5, 1e-4)).toBeUndefined();
    }
  });

  it("attention weights on request: logits unchanged, cross-attention rows sum to 1 and skip padded source", () => {
    const tgt = [
      [1, 2, 4],
      [1, 0, 2],
    ];
    const plain = model.forward(ids(src), ids(tgt), { srcKeyPaddingMask: kpm });
    const r = model.forward(ids(src), ids(tgt), { srcKeyPaddingMask: kpm, needWeights: true });
    expect(Array.from(r.logits.data)).toEqual(Array.from(plain.data));
    expect(r.weights.encoder.length).toBe(nEnc);
    expect(r.weights.encoder[0].shape).toEqual([2, C.H, 7, 7]);
    const ca = r.weights.decoder[nDec - 1].crossAttn;
    expect(ca.shape).toEqual([2, C.H, 3, 7]);
    for (let row = 0; row < 2 * C.H * 3; row++) {
      let sum = 0;
      for (let j = 0; j < 7; j++) sum += ca.data[row * 7 + j];
      expect(sum).toBeCloseTo(1, 5);
    }
    // batch row 0 pads source positions 5 and 6
    for (let row = 0; row < C.H * 3; row++) expect([ca.data[row * 7 + 5], ca.data[row * 7 + 6]]).toEqual([0, 0]);
    // decoder self-attention is causal
    const sa = r.weights.decoder[0].selfAttn;
    for (let q = 0; q < 3; q++) for (let k = q + 1; k < 3; k++) expect(sa.data[q * 3 + k]).toBe(0);
  });

  it("bad ids and options are typed errors", () => {
    expect(() => model.forward(ids([[3, 99]]), ids([[1]]))).toThrow(/src_ids: id 99 at flat position 1/);
    expect(() => model.forward(ids([[3, 4]]), ids([[1, -1]]))).toThrow(InputError);
    expect(() => model.beamSearch(ids([[3]]), { maxNewTokens: 2, beamSize: 0 })).toThrow(InputError);
    expect(() => model.beamSearch(ids([[3]]), { maxNewTokens: 2, eosId: Vt })).toThrow(InputError);
    expect(() => model.greedy(new Tensor(new Float32Array(2), [1, 2], "f32"), { maxNewTokens: 1 })).toThrow(
      /src_ids must be i32/,
    );
  });
});

describe("Seq2SeqTransformer training", () => {
  const opts = {
    dModel: C.d,
    nhead: C.H,
    dimFeedforward: C.F,
    activation: C.act,
    numEncoderLayers: nEnc,
    numDecoderLayers: nDec,
    srcVocabSize: Vs,
    tgtVocabSize: Vt,
  };
  const src = [
    [3, 5, 7, 2, 0],
    [4, 4, 1, 6, 2],
  ];
  const tgt = [
    [1, 2, 4],
    [1, 0, 3],
  ];
  const srcPad = src.map((r) => r.map((x) => (x === 0 ? 1 : 0)));

  for (const bk of bks) {
    it(`backward (padded source, causal target) matches finite differences of the oracle (${bk.name})`, () => {
      const wb = weights(21);
      const m = loadModule(tensorSource(wb.map), (s) => new Seq2SeqTransformer(s, opts), { runtime: bk.make() });
      m.train();
      const res = gradCheck(
        {
          rt: m.rt,
          params: m.parameters(),
          weights: wb.record(),
          inputs: {},
          ref: (w: F64) => oracleLogits(w as unknown as Record<string, Float32Array>, src, tgt, srcPad),
          run: (dy) => {
            const logits = m.forward(ids(src), ids(tgt), { srcKeyPaddingMask: paddingMask(ids(src), 0) });
            m.backward(new Tensor(dy, [2, 3, Vt], "f32"));
            return { out: logits.data, dInputs: {} };
          },
        },
        7,
        { perTensor: 12 },
      );
      expect(res.failures).toEqual([]);
      m.dispose();
    });
  }

  it("training and inference forwards agree; eval() decodes with the trained weights; bad input is typed", () => {
    const m = loadModule(tensorSource(weights(22).map), (s) => new Seq2SeqTransformer(s, opts));
    const kpm = paddingMask(ids(src), 0);
    const inf = m.forward(ids(src), ids(tgt), { srcKeyPaddingMask: kpm }).data;
    m.train();
    const tr = m.forward(ids(src), ids(tgt), { srcKeyPaddingMask: kpm });
    for (let i = 0; i < inf.length; i++) expect(Math.abs(tr.data[i]! - inf[i]!)).toBeLessThan(1e-4);
    expect(() => m.backward(new Tensor(new Float32Array(6), [2, 3, 1], "f32"))).toThrow(ShapeError);
    m.backward(new Tensor(new Float32Array(2 * 3 * Vt).fill(0.1), [2, 3, Vt], "f32")); // the record was kept
    expect(() => m.backward(new Tensor(new Float32Array(2 * 3 * Vt), [2, 3, Vt], "f32"))).toThrow(/no forward record/);
    expect(() => m.forward(ids(src), ids([[1, 9, 2]]).reshape([1, 3]), {})).toThrow(ShapeError);
    expect(() => m.forward(ids([[1, 2, 3]]), ids([[1, 9, 2]]))).toThrow(/tgt_ids: id 9 at flat position 1/);
    // a step of SGD on the generator bias changes the eval-mode logits by exactly that step
    const bias = m.parameters().find((p) => p.name === "generator.bias")!;
    const g = m.rt.heap.f32(bias.grad, bias.size).slice();
    const before = m.eval().forward(ids(src), ids(tgt), { srcKeyPaddingMask: kpm }).data;
    const w = m.rt.heap.f32(bias.ptr, bias.size);
    for (let v = 0; v < Vt; v++) w[v] -= g[v]!;
    const after = m.forward(ids(src), ids(tgt), { srcKeyPaddingMask: kpm }).data;
    for (let i = 0; i < after.length; i++) expect(after[i]! - before[i]!).toBeCloseTo(-g[i % Vt]!, 5);
    m.dispose();
  });

  it("a Trainable for fit: sources of mixed lengths padded and masked, the loss falls", async () => {
    const m = loadModule(tensorSource(weights(23).map), (s) => new Seq2SeqTransformer(s, opts));
    const r = rng(24);
    // copy the source (ids 2…8, length 2–5) into target ids 2…4 by id mod 3, then EOS = 1
    const data = Array.from({ length: 48 }, () => {
      const src = Array.from({ length: r.int(2, 6) }, () => r.int(2, Vs));
      return { src, tgt: [...src.map((x) => 2 + (x % 3)), 1] };
    });
    const first = m.evaluate(data);
    expect(first.count).toBe(data.reduce((a, e) => a + e.tgt.length, 0));
    const opt = new AdamW(m.rt, m.parameters(), { lr: 0.01 });
    await fit(m, data, { optimizer: opt, epochs: 6, batchSize: 16, seed: 1 });
    const last = m.evaluate(data);
    expect(last.loss).toBeLessThan(first.loss * 0.6);
    expect(() => m.lossAndGrad([{ src: [2], tgt: [9] }], 1)).toThrow(/example 0: tgt\[0\]: id 9 is outside/);
    expect(m.training).toBe(false);
    m.dispose();
  });
});
