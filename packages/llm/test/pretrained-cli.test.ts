/**
 * Loading a Hugging Face folder (config.json, model.safetensors, vocab.json + merges.txt or
 * tokenizer.json) and the `wasmformer generate` CLI, on a tiny random GPT-2 with a tiny byte-level
 * BPE vocabulary (the 256 byte tokens, 6 merges, `<|endoftext|>`).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, init, ParseError, WeightsError, writeSafetensors } from "@wasmformer/core";
import { gpt2TokenizerJson } from "@wasmformer/test-utils/tokenizer";
import { BYTE_TO_CHAR } from "@wasmformer/text";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { makeTiny, refGreedy } from "./tiny-gpt2.js";

const PKG = fileURLToPath(new URL("..", import.meta.url));
const MERGES = [
  ["h", "e"],
  ["l", "l"],
  ["he", "ll"],
  ["hell", "o"],
  ["Ġ", "w"],
  ["o", "r"],
];

function writeFolder(dir: string, opts: { tokenizerJson?: boolean; prefix?: boolean } = {}) {
  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((c, b) => {
    vocab[c] = b;
  });
  MERGES.forEach(([a, b], i) => {
    vocab[a + b] = 256 + i;
  });
  const V = 256 + MERGES.length + 1;
  vocab["<|endoftext|>"] = V - 1;
  const tiny = makeTiny({ V, E: 16, H: 2, L: 2, P: 48, seed: 21, prefix: opts.prefix ?? false, legacy: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(tiny.config));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tiny.tensors));
  if (opts.tokenizerJson) {
    writeFileSync(
      join(dir, "tokenizer.json"),
      JSON.stringify(
        gpt2TokenizerJson(
          vocab,
          MERGES.map((m) => m.join(" ")),
          V - 1,
        ),
      ),
    );
  } else {
    writeFileSync(join(dir, "vocab.json"), JSON.stringify(vocab));
    writeFileSync(join(dir, "merges.txt"), `#version: 0.2\n${MERGES.map((m) => m.join(" ")).join("\n")}\n`);
  }
  return tiny;
}

/** The id of the single-byte token of byte b in the tiny vocabulary (ids 0..255 follow BYTE_TO_CHAR). */
const byteId = (b: number) => b;

let root: string;
beforeAll(async () => {
  await init();
  root = mkdtempSync(join(tmpdir(), "wasmformer-llm-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("fromPretrained", () => {
  for (const tokenizerJson of [false, true]) {
    test(`loads weights and ${tokenizerJson ? "tokenizer.json" : "vocab.json + merges.txt"}; greedy text = f64 reference`, async () => {
      const dir = join(root, `m-${tokenizerJson}`);
      const tiny = writeFolder(dir, { tokenizerJson, prefix: tokenizerJson });
      const model = await GPT2LMHeadModel.fromPretrained(dir);
      expect(model.tokenizer).toBeDefined();
      const ids = model.tokenizer!.encode("hello world");
      expect(ids.slice(0, 1)).toEqual([259]); // "hello" is one merged token
      expect(model.tokenizer!.decode(ids)).toBe("hello world");
      const want = refGreedy(tiny, ids, 10);
      expect(want.margin).toBeGreaterThan(1e-3);
      const r = await model.generateAll("hello world", { maxNewTokens: 10, stopIds: [] });
      expect(r.ids[0]).toEqual(want.ids);
      expect(r.texts[0]).toBe(model.tokenizer!.decode(want.ids));
    });
  }

  test("streamed text of random byte tokens = one-shot decode (UTF-8 held back across tokens)", async () => {
    const dir = join(root, "m-stream");
    writeFolder(dir);
    const model = await GPT2LMHeadModel.fromPretrained(dir);
    // random tokens of a 263-token byte-level vocabulary: mostly single bytes, many ≥ 0x80 (partial characters)
    const chunks: string[] = [];
    const r = await model.generateAll("hello", {
      maxNewTokens: 40,
      temperature: 1,
      seed: 9,
      stopIds: [],
      onToken: (c) => chunks.push(c.text),
    });
    expect(chunks.join("")).toBe(model.tokenizer!.decode(r.ids[0]));
    expect(r.texts[0]).toBe(model.tokenizer!.decode(r.ids[0]));
    // a hand-made sequence: "é" split over two byte tokens, then "🙂" over four
    const tok = model.tokenizer!;
    const ids = [...new TextEncoder().encode("é🙂")].map(byteId);
    const { TextStreamer } = await import("../src/tokenizer.js");
    const st = new TextStreamer(tok);
    expect(ids.map((id) => st.push(id))).toEqual(["", "é", "", "", "", "🙂"]);
  });

  test("missing files are typed errors", async () => {
    const dir = join(root, "broken");
    writeFolder(dir);
    rmSync(join(dir, "model.safetensors"));
    await expect(GPT2LMHeadModel.fromPretrained(dir)).rejects.toThrow(WeightsError);
    await expect(GPT2LMHeadModel.fromPretrained(join(root, "nope"))).rejects.toThrow(ConfigError);
    const dir2 = join(root, "half-tokenizer");
    writeFolder(dir2);
    rmSync(join(dir2, "merges.txt"));
    await expect(GPT2LMHeadModel.fromPretrained(dir2)).rejects.toThrow(ParseError);
  });
});

describe("wasmformer CLI", () => {
  let cli: string;
  beforeAll(() => {
    // the CLI runs from the compiled package (and its compiled dependencies)
    const tsc = spawnSync(process.execPath, [join(PKG, "../../node_modules/typescript/bin/tsc"), "-b", PKG], {
      encoding: "utf8",
    });
    expect(tsc.stdout + tsc.stderr).toBe("");
    cli = join(PKG, "dist/cli.js");
  }, 240_000);

  const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 60_000 });

  test("streams a greedy continuation to stdout and a progress bar to stderr", async () => {
    const dir = join(root, "cli");
    writeFolder(dir);
    const r = run(["generate", "--model", dir, "--prompt", "hello world", "-n", "12", "--ignore-eos"]);
    expect(r.stderr).toContain("100%");
    expect(r.stderr).toMatch(/loading \[#+\]/);
    expect(r.stderr).toMatch(/12 tokens in .* tokens\/s/);
    expect(r.status).toBe(0);
    const model = await GPT2LMHeadModel.fromPretrained(dir);
    const want = await model.generateAll("hello world", { maxNewTokens: 12, stopIds: [] });
    expect(r.stdout).toBe(`${want.texts[0]}\n`);
  });

  test("Ctrl-C while the model loads exits promptly with code 130 and a message", async () => {
    // a GPT-2 of 24 layers × n_embd 256 (75 MB of zeros: a sparse file, written in no time) whose
    // load takes long enough to be interrupted; SIGINT is sent as soon as the progress bar starts
    const dir = join(root, "cli-big");
    mkdirSync(dir, { recursive: true });
    const [V, E, L, P] = [64, 256, 24, 32];
    const config = { ...makeTiny({ V, E, H: 4, L: 1, P }).config, n_layer: L };
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    const shapes: [string, number[]][] = [
      ["wte.weight", [V, E]],
      ["wpe.weight", [P, E]],
      ["ln_f.weight", [E]],
      ["ln_f.bias", [E]],
    ];
    for (let i = 0; i < L; i++) {
      for (const [n, shape] of [
        ["ln_1.weight", [E]],
        ["ln_1.bias", [E]],
        ["attn.c_attn.weight", [E, 3 * E]],
        ["attn.c_attn.bias", [3 * E]],
        ["attn.c_proj.weight", [E, E]],
        ["attn.c_proj.bias", [E]],
        ["ln_2.weight", [E]],
        ["ln_2.bias", [E]],
        ["mlp.c_fc.weight", [E, 4 * E]],
        ["mlp.c_fc.bias", [4 * E]],
        ["mlp.c_proj.weight", [4 * E, E]],
        ["mlp.c_proj.bias", [E]],
      ] as const)
        shapes.push([`h.${i}.${n}`, [...shape]]);
    }
    const entries: string[] = [];
    let offset = 0;
    for (const [name, shape] of shapes) {
      const bytes = 4 * shape.reduce((a, b) => a * b, 1);
      entries.push(
        `"${name}":{"dtype":"F32","shape":[${shape.join(",")}],"data_offsets":[${offset},${offset + bytes}]}`,
      );
      offset += bytes;
    }
    const header = new TextEncoder().encode(`{${entries.join(",")}}`);
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setUint32(0, header.length, true);
    const file = join(dir, "model.safetensors");
    writeFileSync(file, Buffer.concat([prefix, header]));
    truncateSync(file, 8 + header.length + offset);

    const child = spawn(process.execPath, [
      cli,
      "generate",
      "-m",
      dir,
      "--prompt-ids",
      "1,2",
      "-n",
      "1",
      "--backend",
      "ref",
    ]);
    let stderr = "";
    let killedAt = 0;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!killedAt && stderr.includes("loading [")) {
        killedAt = performance.now();
        child.kill("SIGINT");
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(killedAt).toBeGreaterThan(0);
    expect(performance.now() - killedAt).toBeLessThan(10_000);
    expect(code).toBe(130);
    expect(stderr).toContain("AbortError: loading the model was aborted");
    expect(stderr).not.toContain("100%");
  }, 60_000);

  test("sampling flags: a seed is deterministic", () => {
    const dir = join(root, "cli");
    const args = [
      "generate",
      "-m",
      dir,
      "-p",
      "hello",
      "-n",
      "10",
      "-t",
      "1.2",
      "--top-k",
      "50",
      "--top-p",
      "0.95",
      "--seed",
      "7",
      "--no-progress",
      "--ignore-eos",
    ];
    const a = run(args);
    const b = run(args);
    expect(a.status).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stderr).toBe("");
  });

  test("--threads: the same text on 1 and 2 threads, the count reported; bad counts are usage errors", () => {
    const dir = join(root, "cli");
    const args = ["generate", "-m", dir, "-p", "hello world", "-n", "8", "--ignore-eos"];
    const one = run([...args, "--threads", "1"]);
    const two = run([...args, "--threads", "2"]);
    expect(one.status).toBe(0);
    expect(two.status).toBe(0);
    expect(two.stdout).toBe(one.stdout);
    expect(one.stderr).toMatch(/8 tokens in .*, 1 thread\)/);
    expect(two.stderr).toMatch(/8 tokens in .*, 2 threads\)/);
    for (const bad of ["0", "-1", "1.5", "x", "300"]) {
      const r = run([...args, "--threads", bad]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain("--threads");
    }
  });

  test("bad usage and bad input exit with a message", () => {
    const dir = join(root, "cli");
    expect(run(["chat", "--prompt", "x"]).stderr).toContain("--model <folder> is required for chat");
    expect(run(["generate", "-m", "", "--prompt", "x"]).stderr).toContain("--model: empty folder name");
    expect(run(["generate", "-m", dir, "-p", "x", "--top-k", "x"]).status).toBe(2);
    expect(run(["frobnicate"]).status).toBe(2);
    const long = run(["generate", "-m", dir, "-p", "hello", "-n", "100", "--no-progress"]);
    expect(long.status).toBe(1);
    expect(long.stderr).toMatch(/InputError: .*exceeds n_positions 48/);
    expect(run(["--help"]).stdout).toContain("usage: wasmformer generate");
  });

  test("numbers must be decimal; every argument is checked before the model loads", () => {
    const dir = join(root, "cli");
    const hex = run(["generate", "-m", dir, "-p", "x", "-n", "0x10"]);
    expect(hex.status).toBe(2);
    expect(hex.stderr).toContain('--max-new-tokens must be a decimal integer, got "0x10"');
    for (const [flag, v] of [
      ["--temperature", "0x1"],
      ["--seed", "1e3"],
      ["--top-p", "Infinity"],
      ["--stop-id", " 5"],
    ]) {
      expect(run(["generate", "-m", dir, "-p", "x", flag, v]).status).toBe(2);
    }
    // option values out of range are usage errors too, before loading
    const neg = run(["generate", "-m", join(root, "no-such-folder"), "-p", "x", "--max-new-tokens=-5"]);
    expect(neg.status).toBe(2);
    expect(neg.stderr).toContain("maxNewTokens must be an integer ≥ 0, got -5");
    expect(run(["generate", "-m", join(root, "no-such-folder"), "-p", "x", "--top-p", "2"]).stderr).toContain(
      "topP must be in (0, 1]",
    );
    // a folder that does not exist: the bad ids are reported, not the missing files
    const ids = run(["generate", "-m", join(root, "no-such-folder"), "--prompt-ids", "1,2,x"]);
    expect(ids.status).toBe(2);
    expect(ids.stderr).toContain('--prompt-ids must be a decimal integer, got "x"');
    expect(run(["generate", "-m", join(root, "no-such-folder"), "--prompt-ids", "1,-2"]).stderr).toContain(
      "--prompt-ids must be token ids ≥ 0",
    );
    // ids outside the vocabulary are only known once the config is read: a typed error then
    const big = run(["generate", "-m", dir, "--prompt-ids", "1,4294967301", "-n", "3", "--no-progress"]);
    expect(big.status).toBe(1);
    expect(big.stderr).toMatch(/InputError: token id 4294967301 at input_ids\[0, 1\] is outside the vocabulary/);
  });
});
