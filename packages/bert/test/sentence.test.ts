// SentenceEmbedder on generated sentence-transformers folders (random BERT weights, a tiny
// WordPiece tokenizer.json): pooling modes and normalisation against a float64 reference,
// truncation, batching invariance, lower-casing, and errors naming the file and field.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  backendName,
  ConfigError,
  DisposedError,
  DownloadError,
  type DownloadProgress,
  InputError,
  init,
  type Tensor,
  WeightsError,
  writeSafetensors,
} from "@wasmformer/core";
import { startHubServer } from "@wasmformer/test-utils/hub-server";
import { SubwordTokenizer } from "@wasmformer/text";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BertModel } from "../src/bert-model.js";
import { type PoolingMode, SentenceEmbedder } from "../src/sentence.js";
import { type Cfg, configJson, oracle, randomWeights } from "./oracle.js";

const WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "hello", "world", "##s", "##ing", "run", "big", "red"];
const VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ...WORDS, "blue", "fish", "and", "is", ".", ",", "!"];
const C: Cfg = { V: VOCAB.length, D: 12, L: 2, H: 3, I: 10, P: 16, types: 2, eps: 1e-12, act: "gelu" };

/** A BERT-uncased style tokenizer.json; truncation/padding sections as all-MiniLM-L6-v2 ships them. */
function tokenizerJson(lowercase = true): Record<string, unknown> {
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tok = (id: string, ids: number[]) => ({ id, ids, tokens: [id] });
  return {
    version: "1.0",
    truncation: { direction: "Right", max_length: 128, strategy: "LongestFirst", stride: 0 },
    padding: {
      strategy: { Fixed: 128 },
      direction: "Right",
      pad_to_multiple_of: null,
      pad_id: 0,
      pad_type_id: 0,
      pad_token: "[PAD]",
    },
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map((t, i) => special(i, t)),
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "[SEP]", type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "[SEP]", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
        { SpecialToken: { id: "[SEP]", type_id: 1 } },
      ],
      special_tokens: { "[CLS]": tok("[CLS]", [2]), "[SEP]": tok("[SEP]", [3]) },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(VOCAB.map((t, i) => [t, i])),
    },
  };
}

const MODULES = {
  transformer: { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
  pooling: { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
  normalize: { idx: 2, name: "2", path: "2_Normalize", type: "sentence_transformers.models.Normalize" },
};

const root = mkdtempSync(join(tmpdir(), "wasmformer-bert-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;

interface FolderSpec {
  weights?: Map<string, Tensor>;
  modules?: unknown[] | null;
  pooling?: Partial<Record<PoolingMode, boolean>> | Record<string, unknown>;
  sbert?: Record<string, unknown> | null;
  tokenizer?: Record<string, unknown> | null;
  config?: Record<string, unknown>;
}

/** Write a sentence-transformers folder; returns its path. */
function folder(spec: FolderSpec = {}): string {
  const dir = join(root, `m${folders++}`);
  mkdirSync(join(dir, "1_Pooling"), { recursive: true });
  const json = (name: string, v: unknown) => writeFileSync(join(dir, name), JSON.stringify(v, null, 2));
  json("config.json", spec.config ?? configJson(C));
  if (spec.weights !== null) writeFileSync(join(dir, "model.safetensors"), writeSafetensors(spec.weights ?? W));
  if (spec.tokenizer !== null) json("tokenizer.json", spec.tokenizer ?? tokenizerJson());
  if (spec.modules !== null)
    json("modules.json", spec.modules ?? [MODULES.transformer, MODULES.pooling, MODULES.normalize]);
  if (spec.sbert !== null)
    json("sentence_bert_config.json", spec.sbert ?? { max_seq_length: 128, do_lower_case: false });
  const p = spec.pooling ?? { mean: true };
  const pooling =
    "cls" in p || "mean" in p || "max" in p || "mean_sqrt_len" in p
      ? {
          word_embedding_dimension: C.D,
          pooling_mode_cls_token: p.cls === true,
          pooling_mode_mean_tokens: p.mean === true,
          pooling_mode_max_tokens: p.max === true,
          pooling_mode_mean_sqrt_len_tokens: p.mean_sqrt_len === true,
          pooling_mode_weightedmean_tokens: false,
          pooling_mode_lasttoken: false,
          include_prompt: true,
        }
      : p;
  json("1_Pooling/config.json", pooling);
  return dir;
}

const W = randomWeights(C, 5);
const TOK = SubwordTokenizer.fromTokenizerJson(tokenizerJson());
const TEXTS = [
  "The cat sat on the mat.",
  "  hello world  ",
  "A big red dog runs!",
  "fish",
  "",
  "the blue fish and the red fish, the big cat and a dog",
  "zebra unknown words",
];

/** sentence-transformers in float64: ids of one text, the oracle encoder, pooling, normalisation. */
function reference(text: string, modes: readonly PoolingMode[], normalize: boolean, maxLen = C.P): number[] {
  const pieces = TOK.encode(text.trim(), null, { addSpecialTokens: false }).ids.slice(0, maxLen - 2);
  const ids = [2, ...pieces, 3];
  const T = ids.length;
  const { hidden } = oracle(C, W, ids, 1, T);
  const out: number[] = [];
  for (const m of modes) {
    for (let j = 0; j < C.D; j++) {
      const col = Array.from({ length: T }, (_, t) => hidden[t * C.D + j]!);
      const sum = col.reduce((a, b) => a + b, 0);
      out.push(m === "cls" ? col[0]! : m === "max" ? Math.max(...col) : m === "mean" ? sum / T : sum / Math.sqrt(T));
    }
  }
  const norm = Math.sqrt(out.reduce((a, b) => a + b * b, 0));
  return normalize ? out.map((v) => v / Math.max(norm, 1e-12)) : out;
}

function expectRows(got: Tensor, want: number[][], atol = 2e-5) {
  expect(got.shape).toEqual([want.length, want[0]!.length]);
  for (const [i, row] of want.entries()) {
    for (const [j, v] of row.entries()) {
      const a = got.data[i * row.length + j]!;
      if (!(Math.abs(a - v) <= atol + 1e-4 * Math.abs(v))) throw new Error(`row ${i} [${j}]: ${a} vs ${v}`);
    }
  }
}

describe.each(["ref", "auto"] as const)(
  "SentenceEmbedder (all-MiniLM-L6-v2-style folders) on the %s backend",
  (backend) => {
    beforeAll(async () => {
      await init({ backend });
    });
    it("mean pooling + Normalize: float64 reference, unit rows", async () => {
      const e = await SentenceEmbedder.fromPretrained(folder());
      expect(e.model.runtime.backend).toBe(backend === "ref" ? "ref" : backendName());
      expect(e.model.runtime.backend).toMatch(backend === "ref" ? /^ref$/ : /^wasm-/);
      expect(e.pooling).toEqual(["mean"]);
      expect(e.normalize).toBe(true);
      expect(e.maxSeqLength).toBe(C.P); // 128 in sentence_bert_config.json, bounded by max_position_embeddings
      expect(e.dimension).toBe(C.D);
      const got = e.embed(TEXTS, { batchSize: 3 });
      expectRows(
        got,
        TEXTS.map((t) => reference(t, ["mean"], true)),
      );
      for (let i = 0; i < TEXTS.length; i++) {
        const row = got.data.subarray(i * C.D, (i + 1) * C.D);
        expect(Math.hypot(...row)).toBeCloseTo(1, 5);
      }
      e.dispose();
      expect(() => e.embed(["a"])).toThrow(DisposedError);
    });

    const modes: [string, Partial<Record<PoolingMode, boolean>>, PoolingMode[]][] = [
      ["CLS", { cls: true }, ["cls"]],
      ["max", { max: true }, ["max"]],
      ["mean_sqrt_len", { mean_sqrt_len: true }, ["mean_sqrt_len"]],
      [
        "all four, concatenated in sentence-transformers' order",
        { mean: true, cls: true, mean_sqrt_len: true, max: true },
        ["cls", "max", "mean", "mean_sqrt_len"],
      ],
    ];
    it.each(modes)("%s pooling, no Normalize", async (_, pooling, order) => {
      const e = await SentenceEmbedder.fromPretrained(
        folder({ pooling, modules: [MODULES.transformer, MODULES.pooling] }),
      );
      expect(e.pooling).toEqual(order);
      expect(e.normalize).toBe(false);
      expect(e.dimension).toBe(C.D * order.length);
      expectRows(
        e.embed(TEXTS, { batchSize: 4 }),
        TEXTS.map((t) => reference(t, order, false)),
      );
    });

    it("no modules.json: mean pooling without normalisation (sentence-transformers' fallback)", async () => {
      const e = await SentenceEmbedder.fromPretrained(folder({ modules: null, sbert: null }));
      expect(e.pooling).toEqual(["mean"]);
      expect(e.normalize).toBe(false);
      expectRows(
        e.embed(TEXTS.slice(0, 3)),
        TEXTS.slice(0, 3).map((t) => reference(t, ["mean"], false)),
      );
    });

    it("truncation to max_seq_length (sentence_bert_config.json), and to max_position_embeddings", async () => {
      const long = "the cat sat on the mat and the dog sat on the red mat and the fish is blue";
      const e = await SentenceEmbedder.fromPretrained(folder({ sbert: { max_seq_length: 6 } }));
      expect(e.maxSeqLength).toBe(6);
      expectRows(e.embed([long, "a dog"]), [reference(long, ["mean"], true, 6), reference("a dog", ["mean"], true, 6)]);
      const full = await SentenceEmbedder.fromPretrained(folder());
      expect(TOK.encode(long).ids.length).toBeGreaterThan(C.P);
      expectRows(full.embed([long]), [reference(long, ["mean"], true, C.P)]);
    });

    it("batching invariance: a batch of N equals N single embeddings (any batch size, any order)", async () => {
      const e = await SentenceEmbedder.fromPretrained(folder({ pooling: { cls: true, max: true, mean: true } }));
      const all = e.embed(TEXTS, { batchSize: 32 });
      const W2 = e.dimension;
      for (const bs of [1, 2, 5]) {
        const got = e.embed(TEXTS, { batchSize: bs });
        for (let i = 0; i < all.size; i++) expect(Math.abs(got.data[i]! - all.data[i]!)).toBeLessThan(1e-5);
      }
      TEXTS.forEach((t, i) => {
        const one = e.embed([t]);
        for (let j = 0; j < W2; j++) expect(Math.abs(one.data[j]! - all.data[i * W2 + j]!)).toBeLessThan(1e-5);
      });
      expect(e.embed([]).shape).toEqual([0, W2]);
    });

    it("the older layout: the model in 0_Transformer/, a vocab.txt instead of tokenizer.json", async () => {
      const dir = folder({
        tokenizer: null,
        modules: [{ ...MODULES.transformer, path: "0_Transformer" }, MODULES.pooling],
      });
      const sub = join(dir, "0_Transformer");
      mkdirSync(sub);
      for (const f of ["config.json", "model.safetensors"]) renameSync(join(dir, f), join(sub, f));
      writeFileSync(join(sub, "vocab.txt"), `${VOCAB.join("\n")}\n`);
      const e = await SentenceEmbedder.fromPretrained(dir);
      expect(e.normalize).toBe(false);
      expectRows(
        e.embed(TEXTS),
        TEXTS.map((t) => reference(t, ["mean"], false)),
      );
    });

    it("do_lower_case lower-cases before a case-sensitive tokenizer", async () => {
      const cased = folder({ tokenizer: tokenizerJson(false), sbert: { max_seq_length: 16, do_lower_case: true } });
      const e = await SentenceEmbedder.fromPretrained(cased);
      expect(e.doLowerCase).toBe(true);
      const [a, b] = [e.embed(["HELLO World"]), e.embed(["hello world"])];
      expect(a.data).toEqual(b.data);
      const raw = await SentenceEmbedder.fromPretrained(folder({ tokenizer: tokenizerJson(false) }));
      expect(raw.embed(["HELLO World"]).data).not.toEqual(b.data); // unknown cased words: [UNK]
    });
  },
);

describe("SentenceEmbedder errors", () => {
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error("expected an error");
      },
      (e: Error) => e,
    );
  it("a Dense module: ConfigError naming modules.json[2].type", async () => {
    const dense = { idx: 2, name: "2", path: "2_Dense", type: "sentence_transformers.models.Dense" };
    const e = await failure(
      SentenceEmbedder.fromPretrained(folder({ modules: [MODULES.transformer, MODULES.pooling, dense] })),
    );
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(
      /modules\.json\[2\]\.type: module "sentence_transformers\.models\.Dense" is not supported/,
    );
  });
  it("pooling config: unsupported mode, wrong width, nothing enabled", async () => {
    const base = { word_embedding_dimension: C.D, pooling_mode_mean_tokens: true };
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { ...base, pooling_mode_weightedmean_tokens: true },
        /pooling_mode_weightedmean_tokens: weighted-mean pooling is not supported/,
      ],
      [{ ...base, pooling_mode_lasttoken: true }, /pooling_mode_lasttoken/],
      [
        { ...base, word_embedding_dimension: 384 },
        /word_embedding_dimension: 384 differs from the model's hidden_size 12/,
      ],
      [{ word_embedding_dimension: C.D }, /no pooling mode is enabled/],
      [{ ...base, pooling_mode_cls_token: "yes" }, /pooling_mode_cls_token: expected a boolean/],
    ];
    for (const [pooling, re] of cases) {
      const e = await failure(SentenceEmbedder.fromPretrained(folder({ pooling })));
      expect(e).toBeInstanceOf(ConfigError);
      expect(e.message).toMatch(re);
    }
  });
  it("missing files: tokenizer (ConfigError), weights (WeightsError)", async () => {
    expect(await failure(SentenceEmbedder.fromPretrained(folder({ tokenizer: null })))).toBeInstanceOf(ConfigError);
    const w = new Map(W);
    w.delete("encoder.layer.1.output.dense.bias");
    const e = await failure(SentenceEmbedder.fromPretrained(folder({ weights: w })));
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain('missing "encoder.layer.1.output.dense.bias"');
  });
  it("bad texts and batch sizes: InputError naming the argument", async () => {
    const e = await SentenceEmbedder.fromPretrained(folder());
    expect(() => e.embed(["a", 3 as unknown as string])).toThrow(/texts\[1\] is number, not a string/);
    expect(() => e.embed(["a"], { batchSize: 0 })).toThrow(InputError);
    expect(() => e.embed("abc" as unknown as string[])).toThrow(InputError);
    expect(() => new SentenceEmbedder(e.model, e.tokenizer, { pooling: ["median" as PoolingMode] })).toThrow(
      /pooling: unknown pooling mode "median"/,
    );
    expect(() => new SentenceEmbedder(e.model, e.tokenizer, { maxSeqLength: 1 })).toThrow(/max_seq_length/);
  });
});

describe("Hugging Face model ids (a local server with the hub's URL layout)", () => {
  it("SentenceEmbedder and BertModel from owner/name: same results as the folder, subfolders, offline second load", async () => {
    await init();
    const plain = folder();
    // the older layout: the model and a vocab.txt in 0_Transformer/ (files in subfolders)
    const older = folder({
      tokenizer: null,
      modules: [{ ...MODULES.transformer, path: "0_Transformer" }, MODULES.pooling],
    });
    mkdirSync(join(older, "0_Transformer"));
    for (const f of ["config.json", "model.safetensors"]) renameSync(join(older, f), join(older, "0_Transformer", f));
    writeFileSync(join(older, "0_Transformer", "vocab.txt"), `${VOCAB.join("\n")}\n`);
    const server = await startHubServer({ "acme/mini-st": { main: plain }, "acme/old-st": { main: older } });
    const cacheDir = mkdtempSync(join(root, "cache-"));
    try {
      const events: DownloadProgress[] = [];
      const o = { endpoint: server.url, cacheDir, onDownload: (p: DownloadProgress) => events.push({ ...p }) };
      const want = (await SentenceEmbedder.fromPretrained(plain)).embed(TEXTS).toArray();
      expect((await SentenceEmbedder.fromPretrained("acme/mini-st", o)).embed(TEXTS).toArray()).toEqual(want);
      expect(new Set(events.map((e) => e.file))).toEqual(
        new Set([
          "modules.json",
          "sentence_bert_config.json",
          "tokenizer.json",
          "config.json",
          "model.safetensors",
          "1_Pooling/config.json",
        ]),
      );
      const wantOld = (await SentenceEmbedder.fromPretrained(older)).embed(TEXTS).toArray();
      expect((await SentenceEmbedder.fromPretrained("acme/old-st", o)).embed(TEXTS).toArray()).toEqual(wantOld);
      const bert = await BertModel.fromPretrained("acme/mini-st", o);
      expect(bert.hiddenSize).toBe(C.D);
      bert.dispose();

      server.fail.set("config.json", 500);
      const e = await SentenceEmbedder.fromPretrained("acme/mini-st", {
        endpoint: server.url,
        cacheDir: `${cacheDir}-2`,
      }).catch((x) => x);
      expect(e).toBeInstanceOf(DownloadError);
      expect(e.message).toContain("HTTP 500");
      server.fail.clear();
      await expect(BertModel.fromPretrained("acme/none", { endpoint: server.url, cacheDir })).rejects.toThrow(
        new ConfigError("no config.json in acme/none@main"),
      );
    } finally {
      await server.close();
    }
    // every file is cached (present or absent): no server needed
    const again = await SentenceEmbedder.fromPretrained("acme/old-st", { endpoint: server.url, cacheDir });
    expect(again.embed(TEXTS).toArray()).toEqual((await SentenceEmbedder.fromPretrained(older)).embed(TEXTS).toArray());
  });
});
