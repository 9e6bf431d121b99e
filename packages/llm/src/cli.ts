#!/usr/bin/env node
/**
 * `wasmformer generate --model <folder> --prompt "…"`: load a Hugging Face GPT-2 or Llama-family folder (progress
 * bar on stderr), then stream the generated text to stdout. Ctrl-C cancels (exit code 130).
 */
import { parseArgs } from "node:util";
import { type BackendName, InputError, init, WasmformerError } from "@wasmformer/core";
import { AutoModelForCausalLM } from "./auto.js";
import { checkGenerateOptions, type GenerateOptions } from "./generate.js";

const USAGE = `usage: wasmformer generate --model <folder> --prompt "<text>" [options]

Loads a Hugging Face decoder folder (config.json with model_type gpt2, llama, qwen2 or mistral,
model.safetensors, tokenizer.json or vocab.json + merges.txt) and streams the continuation of the
prompt to stdout.

options:
  --model, -m <folder>          model folder (required)
  --prompt, -p <text>           prompt text (required unless --prompt-ids)
  --prompt-ids <ids>            prompt as comma-separated token ids
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

/** A progress bar on stderr: `\r`-redrawn on a terminal, a line per 10% otherwise. */
function progressBar(label: string) {
  const tty = process.stderr.isTTY === true;
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
    process.stderr.write(tty ? `\r${line}${pct === 100 ? "\n" : ""}` : `${line}\n`);
  };
}

export async function main(argv: string[]): Promise<number> {
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
    process.stderr.write(`${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const ac = new AbortController();
  const onSigint = () => ac.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  try {
    if (positionals[0] !== "generate" || positionals.length > 1) {
      throw new UsageError(
        positionals.length === 0
          ? "missing command (generate)"
          : `unknown command ${JSON.stringify(positionals.join(" "))}`,
      );
    }
    const folder = values.model as string | undefined;
    if (!folder) throw new UsageError("--model <folder> is required");
    const promptText = values.prompt as string | undefined;
    const promptIds = values["prompt-ids"] as string | undefined;
    if ((promptText === undefined) === (promptIds === undefined))
      throw new UsageError("give exactly one of --prompt or --prompt-ids");
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

    await init({ backend: backend as "auto" | BackendName, threads });
    const bar = values["no-progress"] ? undefined : progressBar("loading");
    bar?.(0, 1);
    const model = await AutoModelForCausalLM.fromPretrained(folder, {
      onProgress: bar ? (p) => bar(p.loaded, p.total) : undefined,
    });
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
      process.stdout.write(model.tokenizer ? c.text : `${n > 1 ? " " : ""}${c.token}`);
      if (opts.logprobs) process.stderr.write(`[${c.token} ${c.logprob!.toFixed(4)}]`);
    }
    process.stdout.write("\n");
    const s = (performance.now() - started) / 1000;
    if (!values["no-progress"])
      process.stderr.write(
        `${n} tokens in ${s.toFixed(2)} s (${(n / s).toFixed(1)} tokens/s, backend ${model.runtime.backend}, ` +
          `${model.runtime.threads} thread${model.runtime.threads === 1 ? "" : "s"})\n`,
      );
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`error: ${e.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (e instanceof WasmformerError) {
      process.stdout.write("\n");
      process.stderr.write(`error: ${e.name}: ${e.message}\n`);
      return e.code === "abort" ? 130 : 1;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSigint);
  }
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
