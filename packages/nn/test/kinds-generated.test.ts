// The parity kinds on generated cases (so the package stands alone without ../shared/fixtures):
// configs and inputs as FORMAT.md describes them, written to safetensors and parsed back, run
// through `kinds`, compared with the float64 oracle. Odd sizes, length 1, long sequences, bias off,
// and the mask combinations the format allows.
import { parseSafetensors, Tensor, WasmformerError, writeSafetensors } from "@wasmformer/core";
import type { KindResult, ParityCase } from "@wasmformer/core/parity";
import { describe, expect, it } from "vitest";
import { kinds, setParityRuntime } from "../src/parity.js";
import { backends, closeTo, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { boolMask, DictBuilder, floatMask } from "./weights.js";

const bks = await backends();

function makeCase(
  kind: string,
  config: Record<string, unknown>,
  model: Map<string, Tensor> | undefined,
  inputs: Record<string, Tensor | undefined>,
  params: Record<string, unknown> = {},
): ParityCase {
  const ioBytes = writeSafetensors(
    Object.fromEntries(
      Object.entries(inputs)
        .filter(([, v]) => v)
        .map(([k, v]) => [`input.${k}`, v!]),
    ),
  );
  const modelBytes = model ? writeSafetensors(model) : undefined;
  return {
    dir: "(generated)",
    name: `${kind}-generated`,
    kind,
    json: { kind, config, params },
    config,
    params,
    expectError: undefined,
    file: async () => {
      throw new Error("not used");
    },
    io: async () => parseSafetensors(ioBytes),
    inputs: async () => {
      const f = parseSafetensors(ioBytes);
      return new Map(f.names().map((n) => [n.slice(6), f.get(n)]));
    },
    model: async () => {
      if (!modelBytes) throw new Error("no model");
      return parseSafetensors(modelBytes);
    },
  };
}

const tensors = (r: KindResult) => {
  if (!("tensors" in r)) throw new Error("JSON result");
  return r.tensors;
};

describe.each(bks)("generated cases on $name", ({ make }) => {
  it("rnn / lstm / gru: bias off, bidirectional, h0/c0, T=1 and T=60", async () => {
    setParityRuntime(make);
    let seed = 1;
    for (const kind of ["rnn", "lstm", "gru"] as const)
      for (const [I, H, L, bidir, bias, B, T, h0given] of [
        [3, 5, 2, true, false, 3, 1, true],
        [7, 4, 3, false, true, 2, 60, false],
        [1, 1, 1, true, true, 1, 2, true],
      ] as [number, number, number, boolean, boolean, number, number, boolean][]) {
        const D = bidir ? 2 : 1;
        const G = kind === "lstm" ? 4 : kind === "gru" ? 3 : 1;
        const nonlinearity = seed % 2 ? "relu" : "tanh";
        const wb = new DictBuilder(seed++).rnn(G, I, H, L, D, bias);
        const r = rng(seed++);
        const x = r.tensor([B, T, I]);
        const h0 = h0given ? r.tensor([L * D, B, H]) : undefined;
        const c0 = h0given && kind === "lstm" ? r.tensor([L * D, B, H]) : undefined;
        const cfg = {
          input_size: I,
          hidden_size: H,
          num_layers: L,
          bias,
          batch_first: true,
          dropout: 0,
          bidirectional: bidir,
          ...(kind === "rnn" ? { nonlinearity } : {}),
          ...(kind === "lstm" ? { proj_size: 0 } : {}),
        };
        const got = tensors(await kinds[kind](makeCase(kind, cfg, wb.map, { x, h0, c0 })));
        const mode = kind === "rnn" ? (nonlinearity === "relu" ? "rnn_relu" : "rnn_tanh") : kind;
        const want = O.rnn(mode, wb.record(), x.data, B, T, I, H, L, bidir, bias, h0?.data, c0?.data);
        expect(closeTo(got.output, want.output, [B, T, D * H]), `${kind} ${I}/${H}/${L}`).toBeUndefined();
        expect(closeTo(got.h_n, want.h, [L * D, B, H])).toBeUndefined();
        if (kind === "lstm") expect(closeTo(got.c_n, want.c, [L * D, B, H])).toBeUndefined();
      }
  });

  it("mha and sdpa: odd sizes, length 1, bool/f32 attn_mask with key padding", async () => {
    setParityRuntime(make);
    const r = rng(3);
    for (const [E, H, B, L, S, m] of [
      [15, 5, 2, 3, 6, "bool"],
      [6, 2, 1, 1, 1, "f32"],
      [8, 1, 3, 5, 5, "none"],
    ] as [number, number, number, number, number, string][]) {
      const wb = new DictBuilder(E).mha("", E);
      const q = r.tensor([B, L, E]);
      const k = r.tensor([B, S, E]);
      const v = r.tensor([B, S, E]);
      const am = m === "bool" ? boolMask(r, [L, S]) : m === "f32" ? floatMask(r, [L, S]) : undefined;
      const kp = m !== "none" ? boolMask(r, [B, S], 0.3) : undefined;
      const cfg = {
        embed_dim: E,
        num_heads: H,
        dropout: 0,
        bias: true,
        add_bias_kv: false,
        add_zero_attn: false,
        kdim: E,
        vdim: E,
        batch_first: true,
        need_weights: true,
        average_attn_weights: false,
      };
      const got = tensors(
        await kinds.mha(
          makeCase("mha", cfg, wb.map, { query: q, key: k, value: v, attn_mask: am, key_padding_mask: kp }),
        ),
      );
      const want = O.mha(wb.record(), "", q.data, k.data, v.data, B, L, S, E, H, {
        attn: am ? { data: am.data, kind: am.dtype === "f32" ? "f32" : "bool", perSlice: false } : undefined,
        kpm: kp?.data,
      });
      expect(closeTo(got.attn_output, want.out, [B, L, E])).toBeUndefined();
      expect(closeTo(got.attn_weights, want.weights, [B, H, L, S])).toBeUndefined();
    }
    // sdpa with a keep-mask equals mha-free oracle: weights sum to 1 and blocked keys get exactly 0
    const q = r.tensor([3, 4, 5], 3);
    const keep = boolMask(r, [3, 4, 6]);
    for (let i = 0; i < keep.data.length; i++) keep.data[i] = i % 6 === 0 ? 1 : 1 - keep.data[i];
    const got = tensors(
      await kinds.sdpa(
        makeCase("sdpa", { scale: "1/sqrt(d_k)", mask_true_means: "attend" }, undefined, {
          q,
          k: r.tensor([3, 6, 5]),
          v: r.tensor([3, 6, 2]),
          mask: keep,
        }),
      ),
    );
    expect(got.weights.shape).toEqual([3, 4, 6]);
    expect(got.output.shape).toEqual([3, 4, 2]);
    for (let row = 0; row < 12; row++) {
      let s = 0;
      for (let j = 0; j < 6; j++) {
        const w = got.weights.data[row * 6 + j];
        if (!keep.data[row * 6 + j]) expect(w).toBe(0);
        s += w;
      }
      expect(s).toBeCloseTo(1, 6);
    }
  });

  it("positional_encoding: odd d_model, long table, empty table", async () => {
    for (const [L, d, atol] of [
      [600, 33, 1e-3],
      [5, 1, 1e-4],
      [0, 4, 1e-4],
    ]) {
      const got = tensors(
        await kinds.positional_encoding(
          makeCase("positional_encoding", { max_len: L, d_model: d, base: 10000 }, undefined, {}),
        ),
      );
      expect(closeTo(got.pe, O.pe(L, d), [L, d], atol, 1e-3)).toBeUndefined();
    }
  });

  it("transformer layers and nn.Transformer with every mask kind", async () => {
    setParityRuntime(make);
    const r = rng(9);
    const c: O.LayerCfg = { d: 10, H: 5, F: 13, act: "gelu", normFirst: true, eps: 1e-5 };
    const cfg = {
      d_model: c.d,
      nhead: c.H,
      dim_feedforward: c.F,
      dropout: 0,
      activation: c.act,
      layer_norm_eps: c.eps,
      batch_first: true,
      norm_first: c.normFirst,
    };
    const spec = (t: Tensor | undefined): O.MaskSpec["attn"] =>
      t ? { data: t.data, kind: t.dtype === "f32" ? "f32" : "bool", perSlice: false } : undefined;
    // encoder layer
    const [B, S, T] = [2, 6, 4];
    const we = new DictBuilder(1).layer("", c.d, c.F, false);
    const src = r.tensor([B, S, c.d]);
    const srcMask = floatMask(r, [S, S]);
    const skp = boolMask(r, [B, S], 0.3);
    const enc = tensors(
      await kinds.transformer_encoder_layer(
        makeCase("transformer_encoder_layer", cfg, we.map, { src, src_mask: srcMask, src_key_padding_mask: skp }),
      ),
    );
    expect(
      closeTo(
        enc.output,
        O.encoderLayer(we.record(), "", Array.from(src.data), B, S, c, { attn: spec(srcMask), kpm: skp.data }),
        [B, S, c.d],
      ),
    ).toBeUndefined();
    // decoder layer
    const wd = new DictBuilder(2).layer("", c.d, c.F, true);
    const tgt = r.tensor([B, T, c.d]);
    const mem = r.tensor([B, S, c.d]);
    const tgtMask = boolMask(r, [T, T]);
    const memMask = floatMask(r, [T, S]);
    const tkp = boolMask(r, [B, T], 0.3);
    const dec = tensors(
      await kinds.transformer_decoder_layer(
        makeCase("transformer_decoder_layer", { ...cfg, norm_first: false, activation: "relu" }, wd.map, {
          tgt,
          memory: mem,
          tgt_mask: tgtMask,
          memory_mask: memMask,
          tgt_key_padding_mask: tkp,
          memory_key_padding_mask: skp,
        }),
      ),
    );
    const cPost = { ...c, normFirst: false, act: "relu" as const };
    expect(
      closeTo(
        dec.output,
        O.decoderLayer(
          wd.record(),
          "",
          Array.from(tgt.data),
          Array.from(mem.data),
          B,
          T,
          S,
          cPost,
          { attn: spec(tgtMask), kpm: tkp.data },
          { attn: spec(memMask), kpm: skp.data },
        ),
        [B, T, c.d],
      ),
    ).toBeUndefined();
    // nn.Transformer, 1 + 2 layers
    const wt = new DictBuilder(3);
    wt.layer("encoder.layers.0.", c.d, c.F, false)
      .layer("decoder.layers.0.", c.d, c.F, true)
      .layer("decoder.layers.1.", c.d, c.F, true);
    wt.norm("encoder.norm", c.d).norm("decoder.norm", c.d);
    const srcMaskB = boolMask(r, [S, S]);
    const tr = tensors(
      await kinds.transformer(
        makeCase("transformer", { ...cfg, num_encoder_layers: 1, num_decoder_layers: 2 }, wt.map, {
          src,
          tgt,
          src_mask: srcMaskB,
          tgt_mask: tgtMask,
          memory_mask: memMask,
          src_key_padding_mask: skp,
          tgt_key_padding_mask: tkp,
        }),
      ),
    );
    const want = O.transformer(
      wt.record(),
      "",
      Array.from(src.data),
      Array.from(tgt.data),
      B,
      S,
      T,
      1,
      2,
      c,
      { attn: spec(srcMaskB), kpm: skp.data },
      { attn: spec(tgtMask), kpm: tkp.data },
      { attn: spec(memMask), kpm: skp.data },
    );
    expect(closeTo(tr.memory, want.memory, [B, S, c.d])).toBeUndefined();
    expect(closeTo(tr.output, want.output, [B, T, c.d])).toBeUndefined();
  });

  it("transformer_seq2seq: target padding in the teacher-forced pass; greedy ids exact; 0 steps", async () => {
    setParityRuntime(make);
    const c: O.LayerCfg = { d: 8, H: 2, F: 12, act: "relu", normFirst: false, eps: 1e-5 };
    const [Vs, Vt] = [7, 6];
    const wb = new DictBuilder(5)
      .add("src_tok_emb.embedding.weight", [Vs, c.d])
      .add("tgt_tok_emb.embedding.weight", [Vt, c.d]);
    wb.layer("transformer.encoder.layers.0.", c.d, c.F, false).layer("transformer.decoder.layers.0.", c.d, c.F, true);
    wb.norm("transformer.encoder.norm", c.d).norm("transformer.decoder.norm", c.d);
    wb.add("generator.weight", [Vt, c.d], 2).add("generator.bias", [Vt]);
    const cfg = {
      src_vocab_size: Vs,
      tgt_vocab_size: Vt,
      d_model: c.d,
      nhead: c.H,
      num_encoder_layers: 1,
      num_decoder_layers: 1,
      dim_feedforward: c.F,
      dropout: 0,
      activation: "relu",
      layer_norm_eps: c.eps,
      batch_first: true,
      norm_first: false,
      embedding_scale: "sqrt(d_model)",
      positional_encoding: "sinusoidal",
      bos_id: 1,
      pad_id: 0,
    };
    const src = [
      [3, 4, 5, 0],
      [6, 2, 2, 3],
      [5, 0, 0, 0],
    ];
    const tgt = [
      [1, 2, 3],
      [1, 4, 0],
      [1, 0, 0],
    ];
    const ids = (a: number[][]) => new Tensor(Int32Array.from(a.flat()), [a.length, a[0].length], "i32");
    const pad = (a: number[][]) =>
      new Tensor(Uint8Array.from(a.flat().map((x) => (x === 0 ? 1 : 0))), [a.length, a[0].length], "bool");
    for (const N of [5, 0]) {
      const got = tensors(
        await kinds.transformer_seq2seq(
          makeCase(
            "transformer_seq2seq",
            cfg,
            wb.map,
            { src_ids: ids(src), tgt_ids: ids(tgt), src_key_padding_mask: pad(src), tgt_key_padding_mask: pad(tgt) },
            { max_new_tokens: N },
          ),
        ),
      );
      expect(got.logits.shape).toEqual([3, 3, Vt]);
      expect(got.greedy_ids.shape).toEqual([3, N]);
      expect(got.greedy_step_logits.shape).toEqual([3, N, Vt]);
      // oracle logits for the teacher-forced pass
      const w = wb.record();
      const pe = O.pe(4, c.d);
      const emb = (table: Float32Array, rows: number[][]) =>
        rows.flatMap((row) =>
          row.flatMap((id, p) =>
            Array.from({ length: c.d }, (_, j) => table[id * c.d + j] * Math.sqrt(c.d) + pe[p * c.d + j]),
          ),
        );
      const skp = src.flat().map((x) => (x === 0 ? 1 : 0));
      const tkp = tgt.flat().map((x) => (x === 0 ? 1 : 0));
      const causal = Array.from({ length: 9 }, (_, k) => (k % 3 > Math.floor(k / 3) ? 1 : 0));
      const { output } = O.transformer(
        w,
        "transformer.",
        emb(w["src_tok_emb.embedding.weight"], src),
        emb(w["tgt_tok_emb.embedding.weight"], tgt),
        3,
        4,
        3,
        1,
        1,
        c,
        { kpm: skp },
        { attn: { data: causal, kind: "bool", perSlice: false }, kpm: tkp },
        { kpm: skp },
      );
      expect(
        closeTo(got.logits, O.linear(output, 9, w["generator.weight"], w["generator.bias"], c.d, Vt), [3, 3, Vt]),
      ).toBeUndefined();
    }
  });

  it("kinds reject bad configs and inputs with typed errors", async () => {
    setParityRuntime(make);
    const wb = new DictBuilder(1).mha("", 8);
    const cfg = { embed_dim: 8, num_heads: 3, batch_first: true };
    const r = rng(1);
    const q = r.tensor([1, 2, 8]);
    await expect(kinds.mha(makeCase("mha", cfg, wb.map, { query: q, key: q, value: q }))).rejects.toThrow(
      /num_heads 3 must be a positive divisor of embed_dim 8/,
    );
    await expect(kinds.mha(makeCase("mha", { ...cfg, num_heads: 2 }, wb.map, { query: q, key: q }))).rejects.toThrow(
      /missing input tensor "input.value"/,
    );
    await expect(
      kinds.lstm(
        makeCase("lstm", { input_size: 2, hidden_size: 3, num_layers: 1, proj_size: 2 }, new Map(), {
          x: r.tensor([1, 1, 2]),
        }),
      ),
    ).rejects.toThrow(/proj_size/);
    await expect(
      kinds.gru(makeCase("gru", { input_size: 2, num_layers: 1 }, new Map(), { x: r.tensor([1, 1, 2]) })),
    ).rejects.toThrow(WasmformerError);
  });
});
