#!/usr/bin/env node
/**
 * `wasmformer generate --model <folder> --prompt "…"`: load a Hugging Face GPT-2 or Llama-family folder (progress
 * bar on stderr), then stream the generated text to stdout. Ctrl-C cancels (exit code 130). Without
 * `--model`, generate runs the embedded Brown-corpus LM of the optional `@wasmformer/models` package.
 *
 * `wasmformer chat --model <folder>`: a conversation. Each line of stdin is a user turn (or one turn
 * from `--prompt`); the whole conversation (an optional `--system` message, every earlier turn and
 * reply) is rendered with the folder's chat template (`tokenizer_config.json` `chat_template`, with
 * the generation prompt) and the reply is streamed to stdout, one line per reply.
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { AbortError, type BackendName, InputError, init, WasmformerError } from "@wasmformer/core";
import type { ChatMessage } from "@wasmformer/text";
import { type AnyCausalLM, AutoModelForCausalLM } from "./auto.js";
import { DEFAULT_MODEL, EMBEDDED_MODELS_PACKAGE, embeddedModelFolder } from "./embedded.js";
import { checkGenerateOptions, type GenerateOptions } from "./generate.js";

const USAGE = `usage: wasmformer generate [--model <folder>] --prompt "<text>" [options]
       wasmformer chat --model <folder> [--system "<text>"] [--prompt "<text>"] [options]

generate: loads a Hugging Face decoder folder (config.json with model_type gpt2, llama, qwen2 or
mistral, model.safetensors, tokenizer.json or vocab.json + merges.txt) and streams the continuation
of the prompt to stdout. Without --model it runs ${DEFAULT_MODEL}, a small GPT-2 trained by
wasmformer on the Brown corpus, from the optional package ${EMBEDDED_MODELS_PACKAGE}.

chat: reads user turns from stdin, one per line (or one turn from --prompt), renders the whole
conversation with the chat template of the folder's tokenizer_config.json and streams each reply
to stdout (one line per reply). It stops at end of input. Stops at eos_token_id and at the
tokenizer's eos_token.

options:
  --model, -m <folder>          model folder (chat: required; generate: default ${DEFAULT_MODEL})
  --prompt, -p <text>           prompt text (generate: required unless --prompt-ids; chat: one user turn)
  --prompt-ids <ids>            prompt as comma-separated token ids (generate only)
  --system, -s <text>           chat: a system message first
  --max-new-tokens, -n <n>      new tokens (default 50)
  --temperature, -t <t>         0 = greedy (default 0)
  --top-k <k>                   keep the k most likely tokens (0 = off)
  --top-p <p>                   nucleus sampling mass (1 = off)
  --repetition-penalty <r>      HF repetition penalty (1 = off)
  --seed <s>                    PRNG seed for sampling (default: random)
  --stop <text>                 stop when the text contains this (repeatable)
  --stop-id <id>                stop after this token id (repeatable; default: eos_token_id, one or a list)
  --ignore-eos                  do not stop at eos_token_id
  --logprobs                    print each token's log-probability to stderr
  --backend <b>                 auto | wasm-simd | wasm-relaxed | ref (default auto)
  --threads <n>                 kernel threads, 1..256 (default: the usable cores, at most 8)
  --no-progress                 no progress bar
  --help, -h                    this help`;

/** Decimal notation only (`Number()` would also take "0x10", "0b1", " 5 " and "Infinity"). */
const DECIMAL_INT = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function num(v: string | undefined, name: string, int = false): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!(int ? DECIMAL_INT : DECIMAL).test(v) || !Number.isFinite(x) || (int && !Number.isSafeInteger(x))) {
    throw new UsageError(
      `--${name} must be ${int ? "a decimal integer" : "a decimal number"}, got ${JSON.stringify(v)}`,
    );
  }
  return x;
}

class UsageError extends Error {}

/** Where the CLI reads and writes (default: the process's streams; tests pass their own). */
export interface CliIO {
  /** User turns of `chat`, one per line. */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout?: { write(s: string): unknown };
  stderr?: { write(s: string): unknown; isTTY?: boolean };
  /** Aborts as Ctrl-C does (exit code 130). */
  signal?: AbortSignal;
}

/** A progress bar on stderr: `\r`-redrawn on a terminal, a line per 10% otherwise. */
function progressBar(label: string, stderr: NonNullable<CliIO["stderr"]>) {
  const tty = stderr.isTTY === true;
  let lastDrawn = -1;
  return (loaded: number, total: number) => {
    const f = total > 0 ? loaded / total : 1;
    const pct = Math.floor(f * 100);
    if (tty ? pct === lastDrawn : Math.floor(pct / 10) === Math.floor(lastDrawn / 10)) return;
    lastDrawn = pct;
    const width = 30;
    const fill = Math.round(f * width);
    const mb = (b: number) => (b / 1e6).toFixed(1);
    const line = `${label} [${"#".repeat(fill)}${".".repeat(width - fill)}] ${String(pct).padStart(3)}% ${mb(loaded)}/${mb(total)} MB`;
    stderr.write(tty ? `\r${line}${pct === 100 ? "\n" : ""}` : `${line}\n`);
  };
}

export async function main(argv: string[], io: CliIO = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        model: { type: "string", short: "m" },
        prompt: { type: "string", short: "p" },
        "prompt-ids": { type: "string" },
        system: { type: "string", short: "s" },
        "max-new-tokens": { type: "string", short: "n" },
        temperature: { type: "string", short: "t" },
        "top-k": { type: "string" },
        "top-p": { type: "string" },
        "repetition-penalty": { type: "string" },
        seed: { type: "string" },
        stop: { type: "string", multiple: true },
        "stop-id": { type: "string", multiple: true },
        "ignore-eos": { type: "boolean" },
        logprobs: { type: "boolean" },
        backend: { type: "string" },
        threads: { type: "string" },
        "no-progress": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    stderr.write(`${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    stdout.write(`${USAGE}\n`);
    return 0;
  }
  const ac = new AbortController();
  const onSigint = () => ac.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  if (io.signal?.aborted) onSigint();
  io.signal?.addEventListener("abort", onSigint, { once: true });
  try {
    const command = positionals[0];
    if ((command !== "generate" && command !== "chat") || positionals.length > 1) {
      throw new UsageError(
        positionals.length === 0
          ? "missing command (generate or chat)"
          : `unknown command ${JSON.stringify(positionals.join(" "))}`,
      );
    }
    const chat = command === "chat";
    let folder = values.model as string | undefined;
    if (folder === "") throw new UsageError("--model: empty folder name");
    if (!folder && chat) throw new UsageError("--model <folder> is required for chat");
    const promptText = values.prompt as string | undefined;
    const promptIds = values["prompt-ids"] as string | undefined;
    if (chat) {
      if (promptIds !== undefined) throw new UsageError("chat takes text turns: --prompt-ids is for generate");
    } else {
      if ((promptText === undefined) === (promptIds === undefined))
        throw new UsageError("give exactly one of --prompt or --prompt-ids");
      if (values.system !== undefined) throw new UsageError("--system is for chat");
    }
    const backend = (values.backend as string | undefined) ?? "auto";
    if (!["auto", "wasm-simd", "wasm-relaxed", "ref"].includes(backend))
      throw new UsageError(`--backend must be auto, wasm-simd, wasm-relaxed or ref, got ${backend}`);
    const threads = num(values.threads as string | undefined, "threads", true);
    if (threads !== undefined && (threads < 1 || threads > 256))
      throw new UsageError(`--threads must be between 1 and 256, got ${threads}`);
    const stopIds = ((values["stop-id"] as string[] | undefined) ?? []).map((s) => num(s, "stop-id", true)!);
    const opts: GenerateOptions = {
      maxNewTokens: num(values["max-new-tokens"] as string | undefined, "max-new-tokens", true) ?? 50,
      temperature: num(values.temperature as string | undefined, "temperature"),
      topK: num(values["top-k"] as string | undefined, "top-k", true),
      topP: num(values["top-p"] as string | undefined, "top-p"),
      repetitionPenalty: num(values["repetition-penalty"] as string | undefined, "repetition-penalty"),
      seed: num(values.seed as string | undefined, "seed", true),
      stop: values.stop as string[] | undefined,
      logprobs: values.logprobs === true,
      signal: ac.signal,
    };
    if (stopIds.length > 0 || values["ignore-eos"]) opts.stopIds = stopIds;
    // every argument is checked before the model loads (ids against the vocabulary only after)
    const ids = promptIds?.split(",").map((s) => num(s.trim(), "prompt-ids", true)!);
    if (ids?.some((id) => id < 0)) throw new UsageError(`--prompt-ids must be token ids ≥ 0, got ${promptIds}`);
    try {
      checkGenerateOptions(opts, Number.MAX_SAFE_INTEGER); // the vocabulary is not known yet
    } catch (e) {
      if (e instanceof InputError) throw new UsageError(e.message);
      throw e;
    }

    folder ??= await embeddedModelFolder();
    await init({ backend: backend as "auto" | BackendName, threads });
    const bar = values["no-progress"] ? undefined : progressBar("loading", stderr);
    bar?.(0, 1);
    const model = await AutoModelForCausalLM.fromPretrained(folder, {
      onProgress: bar ? (p) => bar(p.loaded, p.total) : undefined,
      signal: ac.signal, // Ctrl-C while loading stops before the next tensor (exit 130)
    });
    if (chat) {
      return await chatLoop(model, folder, opts, {
        system: values.system as string | undefined,
        prompt: promptText,
        stdin: io.stdin ?? process.stdin,
        stdout,
        stderr,
        stats: !values["no-progress"],
      });
    }
    opts.stopIds ??= model.arch.eosTokenIds;
    let prompt: string | number[];
    if (ids !== undefined) {
      prompt = ids;
    } else {
      if (!model.tokenizer)
        throw new UsageError(
          `${folder} has no tokenizer (tokenizer.json or vocab.json + merges.txt): use --prompt-ids`,
        );
      prompt = promptText!;
    }
    const started = performance.now();
    let n = 0;
    for await (const c of model.generate(prompt, opts)) {
      n++;
      stdout.write(model.tokenizer ? c.text : `${n > 1 ? " " : ""}${c.token}`);
      if (opts.logprobs) stderr.write(`[${c.token} ${c.logprob!.toFixed(4)}]`);
    }
    stdout.write("\n");
    const s = (performance.now() - started) / 1000;
    if (!values["no-progress"])
      stderr.write(
        `${n} tokens in ${s.toFixed(2)} s (${(n / s).toFixed(1)} tokens/s, backend ${model.runtime.backend}, ` +
          `${model.runtime.threads} thread${model.runtime.threads === 1 ? "" : "s"})\n`,
      );
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      stderr.write(`error: ${e.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (e instanceof WasmformerError) {
      stdout.write("\n");
      stderr.write(`error: ${e.name}: ${e.message}\n`);
      return e.code === "abort" ? 130 : 1;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
    io.signal?.removeEventListener("abort", onSigint);
  }
}

/**
 * The chat loop: every turn re-renders the whole conversation with the chat template and generates
 * the reply from scratch (the reply's stop token is not printed and not kept in the history).
 */
async function chatLoop(
  model: AnyCausalLM,
  folder: string,
  opts: GenerateOptions,
  c: {
    system?: string;
    prompt?: string;
    stdin: NonNullable<CliIO["stdin"]>;
    stdout: NonNullable<CliIO["stdout"]>;
    stderr: NonNullable<CliIO["stderr"]>;
    stats: boolean;
  },
): Promise<number> {
  const tok = model.tokenizer;
  if (!tok) throw new UsageError(`${folder} has no tokenizer (tokenizer.json): chat needs one`);
  if (!tok.applyChatTemplate || !tok.hasChatTemplate)
    throw new UsageError(
      `${folder} has no chat template (tokenizer_config.json with "chat_template"): chat needs one; use generate for plain continuation`,
    );
  // --stop-id / --ignore-eos replace the defaults: eos_token_id and the tokenizer's eos_token
  const given = opts.stopIds;
  const stops = new Set(
    given === undefined
      ? [...model.arch.eosTokenIds, ...(tok.eosTokenId === undefined ? [] : [tok.eosTokenId])]
      : typeof given === "number"
        ? [given]
        : given,
  );
  const turnOpts: GenerateOptions = { ...opts, stopIds: [...stops] };
  const messages: ChatMessage[] = c.system === undefined ? [] : [{ role: "system", content: c.system }];
  const turn = async (text: string) => {
    messages.push({ role: "user", content: text });
    // the template writes the special tokens: encode its text without adding any (transformers' tokenize=True)
    const ids = tok.encode(tok.applyChatTemplate!(messages, { addGenerationPrompt: true }));
    let reply = "";
    let n = 0;
    const started = performance.now();
    for await (const ch of model.generate([ids], turnOpts)) {
      n++;
      if (stops.has(ch.token)) continue;
      reply += ch.text;
      c.stdout.write(ch.text);
      if (opts.logprobs) c.stderr.write(`[${ch.token} ${ch.logprob!.toFixed(4)}]`);
    }
    c.stdout.write("\n");
    messages.push({ role: "assistant", content: reply });
    const s = (performance.now() - started) / 1000;
    if (c.stats) c.stderr.write(`${n} tokens in ${s.toFixed(2)} s (${(n / s).toFixed(1)} tokens/s)\n`);
  };
  if (c.prompt !== undefined) {
    await turn(c.prompt);
    return 0;
  }
  const tty = c.stdin.isTTY === true;
  const rl = createInterface({ input: c.stdin, crlfDelay: Number.POSITIVE_INFINITY, terminal: false });
  // Ctrl-C while waiting for a line ends the chat too (during a reply, generation aborts)
  const onAbort = () => rl.close();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (tty) c.stderr.write("> ");
    for await (const line of rl) {
      if (line.trim() !== "") await turn(line);
      if (tty) c.stderr.write("> ");
    }
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    rl.close();
  }
  if (opts.signal?.aborted) throw new AbortError("interrupted");
  return 0;
}

// run when executed (directly, or through the `wasmformer` bin link), not when imported by tests
if (/(cli\.js|wasmformer)$/.test(process.argv[1] ?? "")) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`${e?.stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}
