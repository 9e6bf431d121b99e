// The dates-seq2seq checkpoint: written dates → ISO dates. It loads with nn's AttentionSeq2Seq,
// converts the brief's examples, reaches ≥ 99 % exact match on held-out dates (never seen in
// training, in any format), returns a usable attention heatmap; and a 5-step run of its training
// script lowers the loss and writes a folder the loader reads.
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { init } from "@wasmformer/core";
import { AttentionSeq2Seq } from "@wasmformer/nn";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
// @ts-expect-error: plain JavaScript modules of the training script
import { datePairs, isHeldOut, SRC_VOCAB, TGT_VOCAB } from "../scripts/dates-data.mjs";
// @ts-expect-error: plain JavaScript modules of the training script
import { exactMatch, train } from "../scripts/train-dates-seq2seq.mjs";
import { modelPath } from "../src/index.js";

let dir: string;
let model: AttentionSeq2Seq;

beforeAll(async () => {
  await init(); // the wasm backend
  dir = await modelPath("dates-seq2seq");
  model = await AttentionSeq2Seq.fromPretrained(dir);
});
afterAll(() => model?.dispose());

describe("dates-seq2seq", () => {
  test("the folder: config with the vocabularies, F16 weights under 1 MB, a model card", () => {
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(config.model_type).toBe("lstm_attention_seq2seq");
    expect(config.src_vocab).toEqual(SRC_VOCAB);
    expect(config.tgt_vocab).toEqual(TGT_VOCAB);
    expect(statSync(join(dir, "model.safetensors")).size).toBeLessThan(1024 * 1024);
    const header = readFileSync(join(dir, "model.safetensors"));
    const n = Number(header.readBigUInt64LE(0));
    const meta = JSON.parse(header.subarray(8, 8 + n).toString("utf8"));
    for (const [k, v] of Object.entries(meta))
      if (k !== "__metadata__") expect((v as { dtype: string }).dtype).toBe("F16");
    const card = readFileSync(join(dir, "README.md"), "utf8");
    expect(card).toMatch(/train-dates-seq2seq\.mjs/);
    expect(card).toMatch(/exact match/i);
  });

  test("converts the known examples", () => {
    for (const [text, iso] of [
      ["march 3rd, 1998", "1998-03-03"],
      ["3 March 1998", "1998-03-03"],
      ["Tuesday, 3/3/98", "1998-03-03"],
      ["1998-03-03", "1998-03-03"],
      ["the 25th of december, 2012", "2012-12-25"],
      ["Jul 4, 1976", "1976-07-04"],
      ["29.02.2000", "2000-02-29"],
      ["1/1/01", "2001-01-01"],
    ]) {
      expect(model.translate(text!).text, text).toBe(iso);
    }
  });

  test("≥ 99 % exact match on 1000 held-out dates", () => {
    const pairs = datePairs(1000, 424242, true);
    const em = exactMatch(model, pairs);
    expect(em.accuracy, em.wrong.slice(0, 5).join("; ")).toBeGreaterThanOrEqual(0.99);
  });

  test("the held-out split: no held-out date among the training pairs", () => {
    const day = (iso: string) => Math.round((Date.parse(`${iso}T00:00:00Z`) - Date.UTC(1900, 0, 1)) / 86_400_000);
    const trainPairs = datePairs(2000, 5) as { iso: string }[];
    expect(trainPairs.some((p) => isHeldOut(day(p.iso)))).toBe(false);
    const held = datePairs(500, 6, true) as { iso: string }[];
    expect(held.every((p) => isHeldOut(day(p.iso)))).toBe(true);
  });

  test("the attention heatmap: one row per output token, over the input characters", () => {
    const r = model.translate("march 3rd, 1998");
    expect(r.sourceTokens).toEqual([..."march 3rd, 1998"]);
    expect(r.targetTokens).toEqual([..."1998-03-03", "<eos>"]);
    expect(r.attention.shape).toEqual([11, 15]);
    for (let t = 0; t < 11; t++) {
      const row = r.attention.data.subarray(t * 15, (t + 1) * 15);
      expect(row.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 4);
    }
  });

  test("the training script: 5 steps lower the loss and save a loadable folder", async () => {
    const out = mkdtempSync(join(tmpdir(), "dates-seq2seq-"));
    try {
      const r = await train({ maxSteps: 5, out, evalEvery: 0, heldOutSize: 20, log: () => {} });
      expect(r.steps).toBe(5);
      expect(r.endLoss).toBeLessThan(r.startLoss);
      r.model.dispose();
      const back = await AttentionSeq2Seq.fromPretrained(out);
      expect(back.translate("march 3rd, 1998").targetTokens.length).toBeGreaterThan(0);
      back.dispose();
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
