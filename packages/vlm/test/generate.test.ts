/**
 * Asking questions about images: text prompts through the MiniGPT-4 template, streaming, the stop at
 * `###` (with the held-back separator prefix), and the per-image feature cache (the vision tower and
 * the adapter run once per image, however many questions are asked).
 */
import { InputError, init, ShapeError, Tensor } from "@wasmformer/core";
import type { Tokenizer } from "@wasmformer/llm";
import { beforeAll, describe, expect, test, vi } from "vitest";
import { contentHash, TensorContentCache } from "../src/image-cache.js";
import { VisionLanguageModel } from "../src/vlm-model.js";
import { weightSource } from "../src/weights.js";
import { makeVlm, randomPixels, type TinyVlm } from "./oracle.js";

beforeAll(async () => {
  await init();
});

// one token per character of CHARS; the last id is eos
const CHARS = " abcdefghijklmnopqrstuvwxyzHAIW#:<>/?.";
const V = CHARS.length + 1;

/** A character tokenizer whose decoding of some ids can be overridden (to place "#" in answers). */
function charTokenizer(overrides: Map<number, string> = new Map()): Tokenizer {
  const enc = new TextEncoder();
  const text = (id: number) => overrides.get(id) ?? (id < CHARS.length ? CHARS[id]! : "<eos>");
  return {
    encode: (s) =>
      [...s].map((ch) => {
        const i = CHARS.indexOf(ch);
        if (i < 0) throw new InputError(`char ${JSON.stringify(ch)} not in the test vocabulary`);
        return i;
      }),
    decode: (ids) => Array.from(ids, text).join(""),
    tokenBytes: (id) => enc.encode(text(id)),
    isSpecial: (id) => id === V - 1,
  };
}

let tiny: TinyVlm;
async function load(tokenizer: Tokenizer = charTokenizer(), maxBatch = 2): Promise<VisionLanguageModel> {
  return VisionLanguageModel.fromPretrained(
    { config: tiny.config, weights: weightSource(tiny.tensors) },
    { tokenizer, maxBatch },
  );
}

beforeAll(() => {
  tiny = makeVlm({ V, Pos: 128, seed: 31, freq: 1, Lq: 2 });
});

describe("questions in text", () => {
  test("the prompt is the MiniGPT-4 template split at the image slot", async () => {
    const m = await load();
    const tok = m.tokenizer!;
    const { prefixIds, suffixIds } = m.promptIds("what is it?");
    expect(tok.decode(prefixIds[0]!)).toBe("###Human: <Img>");
    expect(tok.decode(suffixIds[0]!)).toBe("</Img> what is it? ###Assistant: ");
    const px = randomPixels(1, 12, 1);
    const a = await m.forward(px, "what is it?");
    const b = await m.forward(px, { prefixIds, suffixIds });
    expect(Array.from(a.logits.data)).toEqual(Array.from(b.logits.data));
    expect(a.inputsEmbeds.shape).toEqual([1, prefixIds[0]!.length + 3 + suffixIds[0]!.length, 14]);
  });

  test("streamed chunks add up to the result; answers equal ask()", async () => {
    const m = await load();
    const px = randomPixels(1, 12, 2);
    const chunks: string[] = [];
    const seen: string[] = [];
    const it = m.generate(px, "what colour?", { maxNewTokens: 7, stopIds: [], onToken: (c) => seen.push(c.text) });
    let r = await it.next();
    while (!r.done) {
      chunks.push(r.value.text);
      r = await it.next();
    }
    expect(r.value.ids[0]).toHaveLength(7);
    expect(chunks.join("")).toBe(r.value.texts[0]);
    expect(seen).toEqual(chunks);
    expect(await m.ask(px, "what colour?", { maxNewTokens: 7, stopIds: [] })).toBe(r.value.answers[0]);
  });

  test("generation (sampled, seeded) stops at ### and the answer stream never shows it", async () => {
    const plain = await load();
    const px = randomPixels(1, 12, 3);
    const q = "is it big?";
    // seeded sampling at a high temperature (a tiny random model's greedy output repeats one token)
    const opts = { maxNewTokens: 12, stopIds: [], temperature: 4, seed: 7 };
    const base = await plain.generateAll(px, q, opts);
    const ids = base.ids[0]!;
    // the first step s ≥ 2 whose token and the next one's are new: make them decode to "x#" and "##y"
    let s = -1;
    for (let i = 2; i + 1 < ids.length; i++) {
      const before = new Set(ids.slice(0, i));
      if (!before.has(ids[i]!) && !before.has(ids[i + 1]!) && ids[i] !== ids[i + 1]) {
        s = i;
        break;
      }
    }
    expect(s).toBeGreaterThanOrEqual(2);
    const m = await load(
      charTokenizer(
        new Map([
          [ids[s]!, "x#"],
          [ids[s + 1]!, "##y"],
        ]),
      ),
    );
    const answers: string[] = [];
    const texts: string[] = [];
    const it = m.generate(px, q, opts);
    let r = await it.next();
    while (!r.done) {
      answers.push(r.value.answer);
      texts.push(r.value.text);
      r = await it.next();
    }
    const res = r.value;
    expect(res.finishReasons[0]).toBe("stop_string");
    expect(res.ids[0]).toEqual(ids.slice(0, s + 2)); // the same greedy tokens, up to the separator
    expect(texts.join("")).toBe(res.texts[0]);
    expect(res.texts[0]!.endsWith("x###y")).toBe(true);
    // "x" is shown at step s, the "#" held back, then the separator completes: nothing more
    expect(answers[s]).toBe("x");
    expect(answers[s + 1]).toBe("");
    expect(answers.join("")).toBe(res.texts[0]!.slice(0, res.texts[0]!.indexOf("###")));
    expect(res.answers[0]).toBe(answers.join("").trim());
  });

  test("another separator (MiniGPT-4 folders' image_prompt.separator): generation stops there, answers end before it", async () => {
    const plain = await load();
    const px = randomPixels(1, 12, 3);
    const q = "is it big?";
    const opts = { maxNewTokens: 12, stopIds: [], temperature: 4, seed: 7 };
    const ids = (await plain.generateAll(px, q, opts)).ids[0]!;
    const s = ids.findIndex((id, i) => i >= 2 && !ids.slice(0, i).includes(id));
    expect(s).toBeGreaterThanOrEqual(2);
    const base = await load(charTokenizer(new Map([[ids[s]!, "x."]])));
    const m = new VisionLanguageModel({
      vision: base.vision,
      adapter: base.adapter,
      languageModel: base.languageModel,
      separator: ".",
    });
    expect(m.separator).toBe(".");
    const chunks: string[] = [];
    const res = await m.generateAll(px, q, { ...opts, onToken: (c) => chunks.push(c.answer) });
    expect(res.finishReasons[0]).toBe("stop_string");
    expect(res.ids[0]).toEqual(ids.slice(0, s + 1));
    expect(res.texts[0]!.endsWith("x.")).toBe(true);
    expect(res.answers[0]).toBe(res.texts[0]!.slice(0, -1).trim());
    expect(chunks.join("")).toBe(res.texts[0]!.slice(0, -1));
    expect(
      () =>
        new VisionLanguageModel({
          vision: base.vision,
          adapter: base.adapter,
          languageModel: base.languageModel,
          separator: "",
        }),
    ).toThrow(/separator must be a non-empty string/);
  });

  test("a batch of images with one question, or one question per image", async () => {
    const m = await load();
    const px = randomPixels(2, 12, 4);
    const r = await m.generateAll(px, "why?", { maxNewTokens: 4, stopIds: [] });
    expect(r.ids).toHaveLength(2);
    // each row equals the same question asked about that image alone
    for (let b = 0; b < 2; b++) {
      const one = new Tensor(px.data.slice(b * 3 * 144, (b + 1) * 3 * 144), [1, 3, 12, 12]);
      expect((await m.generateAll(one, "why?", { maxNewTokens: 4, stopIds: [] })).ids[0]).toEqual(r.ids[b]);
    }
    await expect(m.generateAll(px, ["why?", "and how?"], { maxNewTokens: 2 })).rejects.toThrow(/same token lengths/);
    const two = await m.generateAll(px, ["why?", "how?"], { maxNewTokens: 2, stopIds: [] });
    expect(two.ids).toHaveLength(2);
  });

  test("typed errors: no tokenizer, bad prompt ids, adapter/LM width mismatch", async () => {
    const m = await load();
    m.tokenizer = undefined;
    const px = randomPixels(1, 12, 5);
    await expect(m.ask(px, "why?")).rejects.toThrow(/needs a tokenizer/);
    await expect(m.forward(px, { prefixIds: [[1, 2], [3]], suffixIds: [[1], [1]] })).rejects.toThrow(InputError);
    await expect(m.forward(px, { prefixIds: [[V]], suffixIds: [[1]] })).rejects.toThrow(/outside the vocabulary/);
    await expect(m.forward(px, { prefixIds: [[1]], suffixIds: [[1], [2]] })).rejects.toThrow(/suffix_ids has 2/);
    await expect(m.forward(randomPixels(1, 3, 1), { prefixIds: [[1]], suffixIds: [[1]] })).rejects.toThrow(InputError);
    const other = makeVlm({ V, Et: 16, seed: 3 });
    const lm2 = await VisionLanguageModel.fromPretrained({
      config: other.config,
      weights: weightSource(other.tensors),
    });
    expect(
      () => new VisionLanguageModel({ vision: m.vision, adapter: m.adapter, languageModel: lm2.languageModel }),
    ).toThrow(ShapeError);
  });
});

describe("feature cache", () => {
  test("vision features are computed once per image across questions", async () => {
    const m = await load();
    const fwd = vi.spyOn(m.vision, "forward");
    const px = randomPixels(1, 12, 6);
    const a1 = await m.ask(px, "what?", { maxNewTokens: 3, stopIds: [] });
    await m.ask(px, "where?", { maxNewTokens: 3, stopIds: [] });
    await m.forward(px, "who?");
    for await (const _ of m.generate(px, "how?", { maxNewTokens: 2 })) {
      // streaming reuses the cached features too
    }
    expect(fwd).toHaveBeenCalledTimes(1);
    expect(m.stats).toEqual({ visionRuns: 1, adapterRuns: 1 });

    // explicit features: never recomputed
    const f = await m.encodeImage(px);
    expect(f.visionLastHiddenState.shape).toEqual([1, 10, 12]);
    expect(await m.ask(f, "what?", { maxNewTokens: 3, stopIds: [] })).toBe(a1);
    expect(fwd).toHaveBeenCalledTimes(1);

    // the cache is keyed on content: another tensor with the same values is the same image, one
    // value changed is another image; cache: false bypasses the cache
    await m.ask(new Tensor(px.data.slice(), px.shape), "what?", { maxNewTokens: 1 });
    expect(fwd).toHaveBeenCalledTimes(1);
    const changed = new Tensor(px.data.slice(), px.shape);
    changed.data[changed.data.length - 1] += 0.5;
    await m.ask(changed, "what?", { maxNewTokens: 1 });
    expect(fwd).toHaveBeenCalledTimes(2);
    await m.ask(px, "what?", { maxNewTokens: 1, cache: false });
    expect(fwd).toHaveBeenCalledTimes(3);
    m.clearImageCache();
    await m.ask(px, "what?", { maxNewTokens: 1 });
    expect(fwd).toHaveBeenCalledTimes(4);
    expect(m.stats.adapterRuns).toBe(4);
  });

  test("a pixel tensor refilled in place with a new frame gets the new frame's answer", async () => {
    const m = await load();
    const frame1 = randomPixels(1, 12, 41);
    const frame2 = randomPixels(1, 12, 42);
    const o = { maxNewTokens: 6, stopIds: [] };
    const want1 = await (await load()).generateAll(frame1, "what?", o);
    const want2 = await (await load()).generateAll(frame2, "what?", o);
    expect(want2.ids).not.toEqual(want1.ids);
    const px = new Tensor(frame1.data.slice(), frame1.shape);
    expect(await m.generateAll(px, "what?", o)).toEqual(want1);
    px.data.set(frame2.data); // the same object, a new frame
    expect(await m.generateAll(px, "what?", o)).toEqual(want2);
    const f2 = m.encodePixels(px);
    px.data.set(frame1.data); // back to the first frame: served from the cache
    const f1 = m.encodePixels(px);
    expect(f1).not.toBe(f2);
    expect(m.stats.visionRuns).toBe(2);
    expect(await m.generateAll(px, "what?", o)).toEqual(want1);
  });

  test("content keys: dtype, shape and every byte count, wherever the bytes sit", () => {
    const c = new TensorContentCache<string>(4);
    const a = new Tensor(Float32Array.of(1, 2, 3, 4), [2, 2]);
    c.set(a, "a");
    expect(c.get(new Tensor(Float32Array.of(1, 2, 3, 4), [2, 2]))).toBe("a");
    expect(c.get(new Tensor(Float32Array.of(1, 2, 3, 4), [4, 1]))).toBeUndefined();
    expect(c.get(new Tensor(new Int32Array(a.data.buffer.slice(0)), [2, 2], "i32"))).toBeUndefined();
    expect(c.get(new Tensor(Float32Array.of(1, 2, 3, 4.000001), [2, 2]))).toBeUndefined();
    a.data[0] = 9; // the stored copy is not the caller's array
    expect(c.get(new Tensor(Float32Array.of(1, 2, 3, 4), [2, 2]))).toBe("a");
    // a view at an odd byte offset hashes its own bytes only
    const bytes = new Uint8Array(9);
    bytes.set([7, 1, 2, 3, 4, 5, 6, 7, 8]);
    const view = new Tensor(bytes.subarray(1), [8], "u8");
    c.set(view, "u8");
    expect(c.get(new Tensor(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), [8], "u8"))).toBe("u8");
    expect(contentHash(view)).toBe(contentHash(new Tensor(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), [8], "u8")));
    // two different tensors with one hash (FNV-1a collisions are easy to build): no false hit
    const P = 0x01000193;
    const h0 = Math.imul(0x811c9dc5 ^ 2, P); // after the shape [2]
    const x = Int32Array.of(5, 11);
    const y = Int32Array.of(6, Math.imul(h0 ^ 5, P) ^ 11 ^ Math.imul(h0 ^ 6, P));
    const tx = new Tensor(x, [2], "i32");
    const ty = new Tensor(y, [2], "i32");
    expect(contentHash(tx)).toBe(contentHash(ty));
    c.set(tx, "x");
    expect(c.get(ty)).toBeUndefined();
    expect(c.get(tx)).toBe("x");
  });

  test("the cache keeps the last 8 images", async () => {
    const m = await load();
    const frames = Array.from({ length: 9 }, (_, i) => randomPixels(1, 12, 50 + i));
    for (const f of frames) m.encodePixels(f);
    expect(m.stats.visionRuns).toBe(9);
    m.encodePixels(frames[8]!);
    m.encodePixels(frames[1]!);
    expect(m.stats.visionRuns).toBe(9);
    m.encodePixels(frames[0]!); // the oldest went first
    expect(m.stats.visionRuns).toBe(10);
  });

  test("raw images are preprocessed and cached per image object", async () => {
    const m = await load();
    const fwd = vi.spyOn(m.vision, "forward");
    const data = new Uint8Array(20 * 16 * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 37) % 251;
    const img = { data, width: 20, height: 16, channels: 3 as const };
    const f1 = await m.encodeImage(img);
    const f2 = await m.encodeImage(img);
    expect(f2).toBe(f1);
    expect(fwd).toHaveBeenCalledTimes(1);
    const px = await (m.vision as unknown as { pixelValues(i: unknown): Promise<Tensor> }).pixelValues(img);
    expect(px.shape).toEqual([1, 3, 12, 12]);
    expect(Array.from(m.encodePixels(px, { cache: false }).imageEmbeds.data)).toEqual(Array.from(f1.imageEmbeds.data));
  });
});
