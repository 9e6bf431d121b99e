/**
 * `wasmformer chat`: a tiny Llama folder with a character-level `tokenizer.json` and a
 * `tokenizer_config.json` chat template, driven through the CLI's `main(argv, io)` with a fake
 * stdin. Replies are checked against the f64 greedy reference (test/tiny-llama.ts) on prompts
 * rendered here by hand (not by the template engine), so the conversation history is checked too.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { init, writeSafetensors } from "@wasmformer/core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { main } from "../src/cli.js";
import { makeTinyLlama, refLlamaGreedy, type TinyLlama } from "./tiny-llama.js";

const PKG = fileURLToPath(new URL("..", import.meta.url));

const SPECIALS = ["<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"];
const CHARS = " abcdefghijklmnopqrstuvwxyz\n.?!";
const V = SPECIALS.length + CHARS.length;
const EOS = 1;

const TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

/** Text → ids by hand: special tokens where they occur, else one id per character. */
function encode(text: string): number[] {
  const ids: number[] = [];
  for (let i = 0; i < text.length; ) {
    const s = SPECIALS.findIndex((t) => text.startsWith(t, i));
    if (s >= 0) {
      ids.push(s);
      i += SPECIALS[s]!.length;
    } else {
      const c = CHARS.indexOf(text[i]!);
      if (c < 0) throw new Error(`test: char ${JSON.stringify(text[i])} not in the vocabulary`);
      ids.push(SPECIALS.length + c);
      i++;
    }
  }
  return ids;
}
const decode = (ids: number[]) =>
  ids.map((id) => (id < SPECIALS.length ? SPECIALS[id] : CHARS[id - SPECIALS.length])).join("");

function tokenizerJson(): string {
  const vocab: Record<string, number> = {};
  SPECIALS.forEach((t, i) => {
    vocab[t] = i;
  });
  [...CHARS].forEach((c, i) => {
    vocab[c] = SPECIALS.length + i;
  });
  return JSON.stringify({
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: { type: "BPE", dropout: null, unk_token: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  });
}

let root: string;
let tiny: TinyLlama;
beforeAll(async () => {
  await init();
  root = mkdtempSync(join(tmpdir(), "wasmformer-chat-"));
  tiny = makeTinyLlama({ V, P: 256, seed: 61, eos: EOS });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function folder(name: string, tokenizerConfig: Record<string, unknown> | null): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "config.json"), JSON.stringify(tiny.config));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tiny.tensors));
  writeFileSync(join(dir, "tokenizer.json"), tokenizerJson());
  if (tokenizerConfig) writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig));
  return dir;
}

const CONFIG = { bos_token: "<s>", eos_token: "</s>", add_bos_token: false, chat_template: TEMPLATE };

async function run(argv: string[], lines?: string[]) {
  let out = "";
  let err = "";
  const code = await main(argv, {
    stdin: Readable.from(lines ? [lines.map((l) => `${l}\n`).join("")] : []),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  });
  return { code, out, err };
}

/** The greedy reply (f64 reference) to a rendered prompt: ids up to the first stop id, as text. */
function reply(prompt: string, n: number, stops = [EOS]): string {
  const r = refLlamaGreedy(tiny, encode(prompt), n);
  expect(r.margin).toBeGreaterThan(1e-3); // no near-ties: the CLI must pick the same ids
  const end = r.ids.findIndex((id) => stops.includes(id));
  const ids = end >= 0 ? r.ids.slice(0, end) : r.ids;
  return decode(ids);
}

describe("wasmformer chat", () => {
  test("turns from stdin with --system: each reply is the greedy reply to the whole conversation so far", async () => {
    const dir = folder("chat", CONFIG);
    const n = 6;
    const r = await run(
      ["chat", "-m", dir, "--system", "be brief.", "-n", String(n), "--no-progress"],
      ["hello there", "", "what is it?"],
    );
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const p1 = "<s><|system|>be brief.\n<|user|>hello there\n<|assistant|>";
    const a1 = reply(p1, n);
    const p2 = `<s><|system|>be brief.\n<|user|>hello there\n<|assistant|>${a1}\n<|user|>what is it?\n<|assistant|>`;
    const a2 = reply(p2, n);
    expect(r.out).toBe(`${a1}\n${a2}\n`); // the empty line is not a turn
    // the replies are not empty, and the second one depends on the history
    expect(a1.length).toBeGreaterThan(0);
    expect(a2.length).toBeGreaterThan(0);
    expect(reply("<s><|system|>be brief.\n<|user|>what is it?\n<|assistant|>", n)).not.toBe(a2);
  });

  test("the tokenizer's eos_token ends a reply too: not printed, not kept in the history", async () => {
    // tokenizer_config.json's eos_token: a character this model emits in its first reply
    const n = 6;
    const p1 = "<s><|user|>hello there\n<|assistant|>";
    const full = decode(refLlamaGreedy(tiny, encode(p1), n).ids);
    const stopChar = full[2]!;
    const dir = folder("eos", { ...CONFIG, eos_token: stopChar });
    const stop = encode(stopChar)[0]!;
    const r = await run(["chat", "-m", dir, "-n", String(n), "--no-progress"], ["hello there", "and then?"]);
    expect(r.code).toBe(0);
    const a1 = reply(p1, n, [EOS, stop]);
    expect(a1.length).toBeLessThanOrEqual(2); // the stop did cut this reply short
    const a2 = reply(`${p1}${a1}\n<|user|>and then?\n<|assistant|>`, n, [EOS, stop]);
    expect(r.out).toBe(`${a1}\n${a2}\n`);
  });

  test("--prompt is one turn (stdin is not read); --ignore-eos generates all tokens", async () => {
    const dir = folder("one", CONFIG);
    const r = await run(["chat", "-m", dir, "-p", "hi!", "-n", "5", "--no-progress"], ["never read"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${reply("<s><|user|>hi!\n<|assistant|>", 5)}\n`);
    const all = await run(["chat", "-m", dir, "-p", "hi!", "-n", "5", "--ignore-eos", "--no-progress"]);
    const ref = refLlamaGreedy(tiny, encode("<s><|user|>hi!\n<|assistant|>"), 5);
    expect(all.out).toBe(`${decode(ref.ids)}\n`);
  });

  test("an abort while waiting for the next line ends the chat with exit code 130", async () => {
    const dir = folder("abort", CONFIG);
    const stdin = new PassThrough();
    const ac = new AbortController();
    let out = "";
    const done = main(["chat", "-m", dir, "-n", "3", "--no-progress"], {
      stdin,
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: () => true },
      signal: ac.signal,
    });
    stdin.write("hello there\n"); // then no more input, and no end of input
    const t0 = Date.now();
    while (!out.endsWith("\n") && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 10));
    expect(out).toBe(`${reply("<s><|user|>hello there\n<|assistant|>", 3)}\n`);
    ac.abort();
    expect(await done).toBe(130);
  });

  test("a folder without a chat template, or without tokenizer_config.json, is a usage error", async () => {
    for (const [name, cfg] of [
      ["no-template", { bos_token: "<s>", eos_token: "</s>" }],
      ["no-config", null],
    ] as const) {
      const r = await run(["chat", "-m", folder(name, cfg), "-p", "hi", "--no-progress"]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/has no chat template \(tokenizer_config\.json with "chat_template"\)/);
      expect(r.out).toBe("");
    }
  });

  test("a template that fails to render is a ConfigError naming chat_template; option misuse is a usage error", async () => {
    const dir = folder("raise", { ...CONFIG, chat_template: "{{ raise_exception('only user turns') }}" });
    const r = await run(["chat", "-m", dir, "-p", "hi", "--no-progress"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/ConfigError: .*chat_template.*only user turns/);
    const ok = folder("misuse", CONFIG);
    const ids = await run(["chat", "-m", ok, "--prompt-ids", "1,2", "--no-progress"]);
    expect(ids.code).toBe(2);
    expect(ids.err).toMatch(/--prompt-ids is for generate/);
    const sys = await run(["generate", "-m", ok, "-p", "hi", "--system", "x", "--no-progress"]);
    expect(sys.code).toBe(2);
    expect(sys.err).toMatch(/--system is for chat/);
  });
});

describe("wasmformer chat as a process", () => {
  let cli: string;
  beforeAll(() => {
    const tsc = spawnSync(process.execPath, [join(PKG, "../../node_modules/typescript/bin/tsc"), "-b", PKG], {
      encoding: "utf8",
    });
    expect(tsc.stdout + tsc.stderr).toBe("");
    cli = join(PKG, "dist/cli.js");
  }, 240_000);

  test("turns piped into stdin", () => {
    const dir = folder("process", CONFIG);
    const r = spawnSync(process.execPath, [cli, "chat", "-m", dir, "-n", "4", "--no-progress"], {
      input: "hello there\nwhat is it?\n",
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const p1 = "<s><|user|>hello there\n<|assistant|>";
    const a1 = reply(p1, 4);
    const a2 = reply(`${p1}${a1}\n<|user|>what is it?\n<|assistant|>`, 4);
    expect(r.stdout).toBe(`${a1}\n${a2}\n`);
  });
});
