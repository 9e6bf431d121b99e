/**
 * The VLM on a Llama: tiny random ViT + Q-Former + projection + Llama (grouped-query attention,
 * RMSNorm, rotary positions, SwiGLU) against the f64 oracle of test/oracle.ts (nothing from src/),
 * through `VisionLanguageModel` (`"vit-qformer-llama"` configs) and `MiniGPT4` (the projection
 * `llama_proj` beside the Q-Former and the Llama), on the reference and the wasm backends.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  createRefRuntime,
  createRuntime,
  InputError,
  init,
  type ParityCase,
  parseSafetensors,
  type Runtime,
  ShapeError,
  Tensor,
  WeightsError,
  writeSafetensors,
} from "@wasmformer/core";
import { argmax, type Tokenizer } from "@wasmformer/llm";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MiniGPT4, type MiniGPT4Sources } from "../src/minigpt4.js";
import { kinds } from "../src/parity.js";
import { VisionLanguageModel } from "../src/vlm-model.js";
import { prefixView, weightSource } from "../src/weights.js";
import { cat, embedName, excess, makeVlm, randomPixels, refVlm, type TinyVlm, type VlmSpec } from "./oracle.js";

const dirs: string[] = [];
beforeAll(async () => {
  await init();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// one token per character of CHARS; id 0 is BOS, the last id is EOS
const CHARS = "^ abcdefghijklmnopqrstuvwxyzHAIW#:<>/?.";
const V = CHARS.length + 1;
/** With `llama`, `addSpecialTokens` puts BOS (id 0) first, as a Llama tokenizer; else it adds nothing, as GPT-2's. */
function charTokenizer(llama = true): Tokenizer {
  return {
    encode: (s, opts) => [
      ...(llama && opts?.addSpecialTokens ? [0] : []),
      ...[...s].map((ch) => {
        const i = CHARS.indexOf(ch);
        if (i < 1) throw new InputError(`char ${JSON.stringify(ch)} not in the test vocabulary`);
        return i;
      }),
    ],
    decode: (ids) => Array.from(ids, (id) => (id < CHARS.length ? CHARS[id]! : "")).join(""),
  };
}

/** GQA: 4 query heads on 2 key/value heads, head width 4. */
const GQA: VlmSpec = { lm: "llama", Et: 16, Ht: 4, KVh: 2, Lt: 2, Q: 3, freq: 1, Lq: 2, V, Pos: 96, seed: 41, bos: 0 };

const backends: [string, () => Runtime][] = [
  ["ref", () => createRefRuntime()],
  ["wasm", () => createRuntime()],
];

/** The MiniGPT-4 sources of a tiny `vit-qformer-llama` checkpoint: the same tensors, split as MiniGPT-4 ships them. */
function minigpt4Sources(tiny: TinyVlm): MiniGPT4Sources {
  const c = tiny.config;
  const proj = new Map<string, Tensor>([
    ["llama_proj.weight", tiny.tensors.get("language_projection.weight")!],
    ["llama_proj.bias", tiny.tensors.get("language_projection.bias")!],
  ]);
  const all = weightSource(tiny.tensors);
  return {
    vision: { config: c.vision_config, weights: prefixView(all, "vision_model.") },
    // a whole BLIP-2-style checkpoint: only query_tokens and qformer.* are read
    qformer: { config: { qformer_config: c.qformer_config, num_query_tokens: c.num_query_tokens }, weights: all },
    projection: { weights: weightSource(proj) },
    llm: { config: c.text_config, weights: prefixView(all, "language_model.") },
  };
}

interface Case {
  name: string;
  spec: VlmSpec;
  prefix: number[][];
  suffix: number[][];
  n: number;
}

const cases: Case[] = [
  { name: "GQA 4/2, batch 1", spec: GQA, prefix: [[0, 5, 9]], suffix: [[3, 1, 4, 7]], n: 5 },
  {
    name: "MQA (1 KV head), tied embeddings, batch 2, P = 0",
    spec: { ...GQA, KVh: 1, tied: true, seed: 42, theta: 500 },
    prefix: [[], []],
    suffix: [
      [8, 1, 2],
      [9, 9, 10],
    ],
    n: 4,
  },
  {
    name: "GQA 6/3, batch 3, S = 0",
    spec: { ...GQA, Et: 24, Ht: 6, KVh: 3, Lt: 3, Q: 2, seed: 43, attnBias: true },
    prefix: [
      [0, 11, 12],
      [0, 13, 14],
      [0, 2, 2],
    ],
    suffix: [[], [], []],
    n: 3,
  },
];

describe.each(backends)("VLM on a Llama vs the f64 oracle (%s)", (_name, runtime) => {
  test.each(cases)("$name", async (c) => {
    const tiny = makeVlm(c.spec);
    const B = c.prefix.length;
    const model = await VisionLanguageModel.fromPretrained(
      { config: tiny.config, weights: weightSource(tiny.tensors) },
      { maxBatch: B, runtime },
    );
    const pixels = randomPixels(B, 12, 200 + (c.spec.seed ?? 0));
    const ref = refVlm(tiny, pixels, c.prefix, c.suffix, c.n);
    expect(ref.margin).toBeGreaterThan(1e-3); // no near-ties: the ids must match exactly

    const out = await model.forward(pixels, { prefixIds: c.prefix, suffixIds: c.suffix });
    const Q = tiny.config.num_query_tokens as number;
    const T = c.prefix[0]!.length + Q + c.suffix[0]!.length;
    const E = c.spec.Et!;
    expect(out.imageEmbeds.shape).toEqual([B, Q, E]);
    expect(out.logits.shape).toEqual([B, T, V]);
    expect(excess(out.visionLastHiddenState.data, cat(ref.vision))).toBeLessThanOrEqual(0);
    expect(excess(out.qformerLastHiddenState!.data, cat(ref.qformer))).toBeLessThanOrEqual(0);
    expect(excess(out.imageEmbeds.data, cat(ref.projected))).toBeLessThanOrEqual(0);
    expect(excess(out.inputsEmbeds.data, cat(ref.inputsEmbeds))).toBeLessThanOrEqual(0);
    expect(excess(out.logits.data, cat(ref.logits))).toBeLessThanOrEqual(0);

    // greedy through the KV cache: every step's logits equal a full forward over the whole sequence
    let last: Float32Array = new Float32Array(B * V);
    for (let b = 0; b < B; b++) last.set(out.logits.data.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
    const gen: number[][] = Array.from({ length: B }, () => []);
    for (let s = 0; s < c.n; s++) {
      const next: number[] = [];
      for (let b = 0; b < B; b++) {
        const row = last.subarray(b * V, (b + 1) * V);
        expect(excess(row, ref.stepLogits[b]![s]!)).toBeLessThanOrEqual(0);
        next.push(argmax(row));
        gen[b]!.push(next[b]!);
      }
      if (s + 1 < c.n) last = model.languageModel.decode(next).logits!.data as Float32Array;
    }
    expect(gen).toEqual(ref.generated);
    const r = await model.generateAll(
      pixels,
      { prefixIds: c.prefix, suffixIds: c.suffix },
      { maxNewTokens: c.n, stopIds: [] },
    );
    expect(r.ids).toEqual(ref.generated);

    // MiniGPT-4 from the same tensors split into its four sources: the same model
    const mg = await MiniGPT4.fromPretrained(minigpt4Sources(tiny), { maxBatch: B, runtime });
    const out2 = await mg.forward(pixels, { prefixIds: c.prefix, suffixIds: c.suffix });
    expect(Array.from(out2.logits.data)).toEqual(Array.from(out.logits.data));
    const r2 = await mg.generateAll(
      pixels,
      { prefixIds: c.prefix, suffixIds: c.suffix },
      { maxNewTokens: c.n, stopIds: [] },
    );
    expect(r2.ids).toEqual(ref.generated);
    model.dispose();
    mg.dispose();
  });
});

describe("MiniGPT-4 prompt template", () => {
  test("the image embeddings are spliced at <ImageHere>; BOS starts the first segment only", async () => {
    const tiny = makeVlm(GQA);
    const mg = await MiniGPT4.fromPretrained(minigpt4Sources(tiny), { tokenizer: charTokenizer(), maxBatch: 2 });
    expect(mg.template).toBe("###Human: <Img><ImageHere></Img> {question} ###Assistant: ");
    expect(mg.bosTokenId).toBeUndefined(); // the tokenizer's special tokens: BOS for the part before the image
    const tok = mg.tokenizer!;
    const question = "what is it?";
    const { prefixIds, suffixIds } = mg.promptIds(question);
    expect(Array.from(prefixIds[0]!)).toEqual([0, ...tok.encode("###Human: <Img>")]);
    expect(Array.from(suffixIds[0]!)).toEqual(tok.encode(`</Img> ${question} ###Assistant: `));

    const px = randomPixels(1, 12, 3);
    const out = await mg.forward(px, question);
    const P = prefixIds[0]!.length;
    const S = suffixIds[0]!.length;
    const Q = tiny.config.num_query_tokens as number;
    const E = GQA.Et!;
    expect(out.inputsEmbeds.shape).toEqual([1, P + Q + S, E]);
    const rows = (t: Tensor, from: number, to: number) => Array.from(t.data.subarray(from * E, to * E));
    const pre = mg.embedTokens([prefixIds[0]!]);
    const suf = mg.embedTokens([suffixIds[0]!]);
    expect(rows(out.inputsEmbeds, 0, P)).toEqual(Array.from(pre.data));
    expect(rows(out.inputsEmbeds, P, P + Q)).toEqual(Array.from(out.imageEmbeds.data));
    expect(rows(out.inputsEmbeds, P + Q, P + Q + S)).toEqual(Array.from(suf.data));
    // the embedding rows are the Llama's embed_tokens rows
    const table = tiny.tensors.get(embedName(tiny))!.data as Float32Array;
    expect(rows(out.inputsEmbeds, 0, 1)).toEqual(Array.from(table.subarray(0, E)));

    // a text question in a batch of two images gives the rows of one question each
    const px2 = randomPixels(2, 12, 4);
    const two = await mg.generateAll(
      px2,
      [question, "who?"].map((q) => q.padEnd(question.length, ".")),
      {
        maxNewTokens: 3,
        stopIds: [],
      },
    );
    expect(two.ids.length).toBe(2);
    const one = await mg.generateAll(randomPixels(1, 12, 4), question, { maxNewTokens: 3, stopIds: [] });
    expect(two.ids[0]).toEqual(one.ids[0]);
  });

  test("bosTokenId: by default the tokenizer decides; a number is put first; null adds none", async () => {
    const tiny = makeVlm(GQA);
    const before = charTokenizer().encode("###Human: <Img>");
    const prefix = async (opts: { tokenizer: Tokenizer; bosTokenId?: number | null }) =>
      Array.from((await MiniGPT4.fromPretrained(minigpt4Sources(tiny), opts)).promptIds("a").prefixIds[0]!);
    expect(await prefix({ tokenizer: charTokenizer() })).toEqual([0, ...before]);
    expect(await prefix({ tokenizer: charTokenizer(false) })).toEqual(before); // a GPT-2-like tokenizer adds nothing
    expect(await prefix({ tokenizer: charTokenizer(), bosTokenId: 5 })).toEqual([5, ...before]);
    expect(await prefix({ tokenizer: charTokenizer(), bosTokenId: null })).toEqual(before);
    // the suffix never gets special tokens
    const mg = await MiniGPT4.fromPretrained(minigpt4Sources(tiny), { tokenizer: charTokenizer() });
    expect(Array.from(mg.promptIds("a").suffixIds[0]!)).toEqual(charTokenizer().encode("</Img> a ###Assistant: "));
    await expect(MiniGPT4.fromPretrained(minigpt4Sources(tiny), { bosTokenId: V })).rejects.toThrow(InputError);
    await expect(MiniGPT4.fromPretrained(minigpt4Sources(tiny), { bosTokenId: V })).rejects.toThrow(/bosTokenId/);
  });
});

describe("errors", () => {
  const tiny = makeVlm(GQA);
  const Dq = (tiny.config.qformer_config as Record<string, number>).hidden_size!;

  test("MiniGPT-4: a missing projection, a wrong width, extra tensors in the projection file", async () => {
    const s = minigpt4Sources(tiny);
    const missing = { ...s, projection: { weights: weightSource(new Map<string, Tensor>()) } };
    await expect(MiniGPT4.fromPretrained(missing)).rejects.toThrow(WeightsError);
    await expect(MiniGPT4.fromPretrained(missing)).rejects.toThrow(/missing "llama_proj\.weight" \[16, 10\]/);

    const wide = new Map<string, Tensor>([
      ["llama_proj.weight", new Tensor(new Float32Array(20 * Dq), [20, Dq])],
      ["llama_proj.bias", new Tensor(new Float32Array(20), [20])],
    ]);
    const err = await MiniGPT4.fromPretrained({ ...s, projection: { weights: weightSource(wide) } }).catch((e) => e);
    expect(err).toBeInstanceOf(WeightsError);
    expect(err.message).toMatch(/llama_proj\.weight/);
    expect(err.message).toMatch(/hidden_size 16/);
    expect((err as WeightsError).names).toContain("llama_proj.weight");

    const extra = new Map(wide);
    extra.set("llama_proj.weight", tiny.tensors.get("language_projection.weight")!);
    extra.set("llama_proj.bias", tiny.tensors.get("language_projection.bias")!);
    extra.set("llama_model.base_model.lora_A", new Tensor(new Float32Array(4), [4]));
    await expect(MiniGPT4.fromPretrained({ ...s, projection: { weights: weightSource(extra) } })).rejects.toThrow(
      /unexpected "llama_model\.base_model\.lora_A"/,
    );
  });

  test("MiniGPT-4: an unknown LLM model_type, a Q-Former width that is not the vision width, no query_tokens", async () => {
    const s = minigpt4Sources(tiny);
    const opt = { ...s, llm: { ...s.llm, config: { ...(s.llm.config as object), model_type: "opt" } } };
    const e1 = await MiniGPT4.fromPretrained(opt).catch((e) => e);
    expect(e1).toBeInstanceOf(ConfigError);
    expect(e1.field).toBe("llm.model_type");
    const qc = { ...(tiny.config.qformer_config as object), encoder_hidden_size: 7 };
    const e2 = await MiniGPT4.fromPretrained({ ...s, qformer: { config: qc, weights: s.qformer.weights } }).catch(
      (e) => e,
    );
    expect(e2).toBeInstanceOf(ConfigError);
    expect(e2.field).toBe("qformer.encoder_hidden_size");
    const noQt = new Map([...tiny.tensors].filter(([n]) => n !== "query_tokens"));
    await expect(
      MiniGPT4.fromPretrained({
        ...s,
        qformer: { config: tiny.config.qformer_config, weights: weightSource(noQt) },
      }),
    ).rejects.toThrow(/query_tokens/);
    await expect(MiniGPT4.fromPretrained({ ...s, llm: undefined } as never)).rejects.toThrow(/"llm" is missing/);
  });

  test("vit-qformer-llama configs: unknown or contradicting text_config.model_type, projection width", async () => {
    const cfg = (text: Record<string, unknown>, top = "vit-qformer-llama") => ({
      ...tiny.config,
      model_type: top,
      text_config: { ...(tiny.config.text_config as object), ...text },
    });
    const load = (config: unknown) =>
      VisionLanguageModel.fromPretrained({ config, weights: weightSource(tiny.tensors) }).catch((e) => e);
    const e1 = await load(cfg({ model_type: "opt" }, "vit-qformer-gpt2"));
    expect(e1).toBeInstanceOf(ConfigError);
    expect(e1.field).toBe("text_config.model_type");
    expect(e1.message).toMatch(/"opt"/);
    const e2 = await load(cfg({}, "vit-qformer-gpt2"));
    expect(e2).toBeInstanceOf(ConfigError);
    expect(e2.field).toBe("text_config.model_type");
    const e3 = await load(cfg({ num_key_value_heads: 3 }));
    expect(e3).toBeInstanceOf(ConfigError);
    expect(e3.field).toMatch(/^text_config\.num_key_value_heads/);
    // the projection is [hidden_size, Dq]: a config with another hidden_size names it
    const e4 = await load(cfg({ hidden_size: 24 }));
    expect(e4).toBeInstanceOf(WeightsError);
    expect(e4.message).toMatch(/language_projection\.weight/);
    // composing parts of different widths
    const a = await VisionLanguageModel.fromPretrained({ config: tiny.config, weights: weightSource(tiny.tensors) });
    const other = makeVlm({ ...GQA, Et: 12, Ht: 3, KVh: 1, seed: 8 });
    const b = await VisionLanguageModel.fromPretrained({ config: other.config, weights: weightSource(other.tensors) });
    expect(
      () => new VisionLanguageModel({ vision: a.vision, adapter: a.adapter, languageModel: b.languageModel }),
    ).toThrow(ShapeError);
    expect(
      () => new VisionLanguageModel({ vision: a.vision, adapter: a.adapter, languageModel: b.languageModel }),
    ).toThrow(/hidden_size 12/);
  });
});

test("MiniGPT4.fromFolders: ViT, BLIP-2 and Llama folders and the projection file give the same model", async () => {
  const tiny = makeVlm({ ...GQA, seed: 44 });
  const dir = mkdtempSync(join(tmpdir(), "wasmformer-minigpt4-"));
  dirs.push(dir);
  const pick = (prefix: string, strip = true) =>
    new Map(
      [...tiny.tensors].filter(([n]) => n.startsWith(prefix)).map(([n, t]) => [strip ? n.slice(prefix.length) : n, t]),
    );
  const mk = (sub: string, files: Record<string, string | Uint8Array>) => {
    const d = join(dir, sub);
    mkdirSync(d);
    for (const [name, body] of Object.entries(files)) writeFileSync(join(d, name), body);
    return d;
  };
  const c = tiny.config;
  const qTensors = new Map([...pick("qformer.", false), ["query_tokens", tiny.tensors.get("query_tokens")!]]);
  const projFile = join(dir, "minigpt4_proj.safetensors");
  writeFileSync(
    projFile,
    writeSafetensors(
      new Map([
        ["llama_proj.weight", tiny.tensors.get("language_projection.weight")!],
        ["llama_proj.bias", tiny.tensors.get("language_projection.bias")!],
      ]),
    ),
  );
  const folders = {
    vision: mk("vit", {
      "config.json": JSON.stringify(c.vision_config),
      "model.safetensors": writeSafetensors(pick("vision_model.")),
    }),
    qformer: mk("blip2", {
      "config.json": JSON.stringify({ qformer_config: c.qformer_config, num_query_tokens: c.num_query_tokens }),
      "model.safetensors": writeSafetensors(qTensors),
    }),
    projection: projFile,
    llm: mk("llama", {
      "config.json": JSON.stringify(c.text_config),
      "model.safetensors": writeSafetensors(pick("language_model.")),
    }),
  };
  const mg = await MiniGPT4.fromFolders(folders);
  const eager = await MiniGPT4.fromPretrained(minigpt4Sources(tiny));
  const px = randomPixels(1, 12, 7);
  const q = { prefixIds: [[0, 3]], suffixIds: [[4, 5]] };
  expect(Array.from((await mg.forward(px, q)).logits.data)).toEqual(
    Array.from((await eager.forward(px, q)).logits.data),
  );
  await expect(MiniGPT4.fromFolders({ ...folders, projection: join(dir, "nope.safetensors") })).rejects.toThrow(
    /nope\.safetensors/,
  );
});

test("MiniGPT4.fromFolder: one folder with the trained Q-Former and projection, the ViT and LM folders by path", async () => {
  const tiny = makeVlm({ ...GQA, seed: 46 });
  const root = mkdtempSync(join(tmpdir(), "wasmformer-minigpt4-one-"));
  dirs.push(root);
  const c = tiny.config;
  const pick = (keep: (n: string) => boolean, rename = (n: string) => n) =>
    new Map([...tiny.tensors].filter(([n]) => keep(n)).map(([n, t]) => [rename(n), t]));
  const mk = (sub: string, files: Record<string, string | Uint8Array>) => {
    const d = join(root, sub);
    mkdirSync(d, { recursive: true });
    for (const [name, body] of Object.entries(files)) writeFileSync(join(d, name), body);
    return d;
  };
  mk("vit", {
    "config.json": JSON.stringify(c.vision_config),
    "model.safetensors": writeSafetensors(
      pick(
        (n) => n.startsWith("vision_model."),
        (n) => n.slice(13),
      ),
    ),
  });
  mk("llama", {
    "config.json": JSON.stringify(c.text_config),
    "model.safetensors": writeSafetensors(
      pick(
        (n) => n.startsWith("language_model."),
        (n) => n.slice(15),
      ),
    ),
  });
  const own = pick(
    (n) => n === "query_tokens" || n.startsWith("qformer.") || n.startsWith("language_projection."),
    (n) => n.replace(/^language_projection\./, "llama_proj."),
  );
  const template = "<ImageHere> {question} :";
  const config = {
    model_type: "minigpt4",
    vision_model_path: "../../vit",
    language_model_path: "../../llama",
    num_query_tokens: c.num_query_tokens,
    qformer_config: c.qformer_config,
    image_prompt: { template, separator: "." },
  };
  const dir = mk("models/mg", { "config.json": JSON.stringify(config), "model.safetensors": writeSafetensors(own) });

  const mg = await MiniGPT4.fromFolder(dir, { tokenizer: charTokenizer() });
  const eager = await MiniGPT4.fromPretrained(minigpt4Sources(tiny));
  expect(mg.template).toBe(template);
  expect(mg.separator).toBe(".");
  expect(eager.separator).toBe("###");
  const px = randomPixels(1, 12, 7);
  const q = { prefixIds: [[0, 3]], suffixIds: [[4, 5]] };
  expect(Array.from((await mg.forward(px, q)).logits.data)).toEqual(
    Array.from((await eager.forward(px, q)).logits.data),
  );
  mg.dispose();
  eager.dispose();

  // typed errors naming the field or tensor at fault
  const write = (cfg: unknown, tensors = own) =>
    mk("models/bad", { "config.json": JSON.stringify(cfg), "model.safetensors": writeSafetensors(tensors) });
  const err = (d: string) => MiniGPT4.fromFolder(d).catch((e) => e);
  const e1 = await err(write({ ...config, model_type: "blip-2" }));
  expect(e1).toBeInstanceOf(ConfigError);
  expect(e1.field).toBe("model_type");
  const e2 = await err(write({ ...config, language_model_path: 3 }));
  expect(e2).toBeInstanceOf(ConfigError);
  expect(e2.field).toBe("language_model_path");
  const e3 = await err(write({ ...config, vision_model_path: "../nowhere" }));
  expect(e3).toBeInstanceOf(ConfigError);
  expect(e3.field).toBe("vision_model_path");
  expect(e3.message).toMatch(/nowhere/);
  const e4 = await err(write({ ...config, image_prompt: { template: "no slot" } }));
  expect(e4).toBeInstanceOf(ConfigError);
  expect(e4.field).toBe("image_prompt.template");
  const e4b = await err(write({ ...config, image_prompt: { template, separator: "" } }));
  expect(e4b).toBeInstanceOf(ConfigError);
  expect(e4b.field).toBe("image_prompt.separator");
  const stray = new Map([...own, ["vision_model.extra", new Tensor(new Float32Array(2), [2])]]);
  const e5 = await err(write(config, stray));
  expect(e5).toBeInstanceOf(WeightsError);
  expect(e5.message).toMatch(/unexpected "vision_model\.extra"/);
  const noProj = new Map([...own].filter(([n]) => !n.startsWith("llama_proj.")));
  await expect(MiniGPT4.fromFolder(write(config, noProj))).rejects.toThrow(/missing "llama_proj\.weight"/);
  await expect(MiniGPT4.fromFolder(join(root, "none"))).rejects.toThrow(ConfigError);
  await expect(MiniGPT4.fromFolder(7 as never)).rejects.toThrow(InputError);
});

test("the vlm parity kind runs a vit-qformer-llama case (FORMAT.md §6.13 with a §6.15 text_config)", async () => {
  const tiny = makeVlm({ ...GQA, seed: 45 });
  const B = 2;
  const n = 4;
  const pixels = randomPixels(B, 12, 9);
  const prefix = [
    [0, 7],
    [0, 8],
  ];
  const suffix = [
    [3, 4, 5],
    [6, 6, 6],
  ];
  const ids = (rows: number[][]) => new Tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length], "i32");
  const inputs = new Map<string, Tensor>([
    ["pixel_values", pixels],
    ["prefix_ids", ids(prefix)],
    ["suffix_ids", ids(suffix)],
  ]);
  const model = parseSafetensors(writeSafetensors(tiny.tensors));
  const c = {
    dir: "",
    name: "vlm-llama_generated",
    kind: "vlm",
    json: {},
    config: tiny.config,
    params: { max_new_tokens: n },
    expectError: undefined,
    file: async () => new Uint8Array(),
    io: async () => model,
    inputs: async () => inputs,
    model: async () => model,
  } as unknown as ParityCase;
  const r = await kinds.vlm!(c);
  if (!("tensors" in r)) throw new Error("expected tensors");
  const ref = refVlm(tiny, pixels, prefix, suffix, n);
  expect(ref.margin).toBeGreaterThan(1e-3);
  expect(excess(r.tensors.logits!.data, cat(ref.logits))).toBeLessThanOrEqual(0);
  expect(excess(r.tensors.step_logits!.data, cat(ref.stepLogits.flat()))).toBeLessThanOrEqual(0);
  expect(Array.from(r.tensors.generated_ids!.data, Number)).toEqual(ref.generated.flat());
  // a prompt beyond max_position_embeddings is an InputError naming it
  await expect(kinds.vlm!({ ...c, params: { max_new_tokens: 200 } } as ParityCase)).rejects.toThrow(
    /max_position_embeddings 96/,
  );
});

test("fromFolder on a vit-qformer-llama folder with tokenizer.json + tokenizer_config.json: BOS as add_bos_token says", async () => {
  const tiny = makeVlm({ ...GQA, seed: 46 });
  // the test vocabulary as a tokenizer.json: <s> = 0, the characters, </s> = V − 1
  const vocab: Record<string, number> = { "<s>": 0, "</s>": V - 1 };
  for (let i = 1; i < CHARS.length; i++) vocab[CHARS[i]!] = i;
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tokenizerJson = JSON.stringify({
    version: "1.0",
    added_tokens: [special("<s>", 0), special("</s>", V - 1)],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: { type: "BPE", unk_token: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  });
  const folderWith = (addBos: boolean) => {
    const dir = mkdtempSync(join(tmpdir(), "wasmformer-vlm-llama-"));
    dirs.push(dir);
    writeFileSync(join(dir, "config.json"), JSON.stringify(tiny.config));
    writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tiny.tensors));
    writeFileSync(join(dir, "tokenizer.json"), tokenizerJson);
    writeFileSync(
      join(dir, "tokenizer_config.json"),
      JSON.stringify({ bos_token: "<s>", eos_token: "</s>", add_bos_token: addBos, add_eos_token: false }),
    );
    return dir;
  };
  const chars = charTokenizer(false);
  for (const addBos of [true, false]) {
    const vlm = await VisionLanguageModel.fromFolder(folderWith(addBos));
    const { prefixIds, suffixIds } = vlm.promptIds("what is it?");
    const before = chars.encode("###Human: <Img>");
    expect(Array.from(prefixIds[0]!)).toEqual(addBos ? [0, ...before] : before);
    expect(Array.from(suffixIds[0]!)).toEqual(chars.encode("</Img> what is it? ###Assistant: "));
    const r = await vlm.generateAll(randomPixels(1, 12, 11), "what is it?", { maxNewTokens: 4, stopIds: [] });
    expect(r.ids[0]!.length).toBe(4);
    expect(typeof r.answers[0]).toBe("string");
    vlm.dispose();
  }
});
