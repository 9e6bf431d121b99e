/**
 * What the text-generating tasks (GPT-2, VLM) share in the worker: reading a folder and its GPT-2 tokenizer,
 * one stoppable run at a time, and draining a streaming generator with tokens/s.
 */
import { AbortError, ConfigError } from "@wasmformer/core";
import { fromSubwordTokenizer, type Tokenizer } from "@wasmformer/llm";
import { SubwordTokenizer } from "@wasmformer/text";
import { type FolderSource, type ProgressFn, readFolder, readJson } from "./folder.js";

/**
 * Read a checkpoint folder of a GPT-2 based model: config.json (parsed), model.safetensors and the
 * tokenizer; `readMs` is the time spent reading or downloading the files.
 */
export async function readModelFolder(
  src: FolderSource,
  onProgress: ProgressFn,
): Promise<{ files: Record<string, Blob>; config: Record<string, unknown>; tokenizer: Tokenizer; readMs: number }> {
  const t0 = performance.now();
  const files = await readFolder(
    src,
    ["config.json", "model.safetensors"],
    ["tokenizer.json", "vocab.json", "merges.txt"],
    onProgress,
  );
  const readMs = performance.now() - t0;
  const config = (await readJson(files["config.json"], "config.json")) as Record<string, unknown>;
  return { files, config, tokenizer: await folderTokenizer(files), readMs };
}

/** The byte-level BPE tokenizer of a folder: tokenizer.json, or vocab.json + merges.txt. */
async function folderTokenizer(files: Record<string, Blob>): Promise<Tokenizer> {
  if (files["tokenizer.json"]) {
    return fromSubwordTokenizer(
      SubwordTokenizer.fromTokenizerJson(await files["tokenizer.json"].text(), "tokenizer.json"),
    );
  }
  if (files["vocab.json"] && files["merges.txt"]) {
    return fromSubwordTokenizer(
      SubwordTokenizer.gpt2(await files["vocab.json"].text(), await files["merges.txt"].text()),
    );
  }
  throw new ConfigError("the folder has no tokenizer: add tokenizer.json, or vocab.json and merges.txt");
}

/** One generation at a time: starting a run aborts the previous one; `stop()` aborts the current one. */
export class RunSlot {
  private controller: AbortController | undefined;

  /** Abort the running generation (if any) and start a new one. */
  start(): AbortController {
    this.controller?.abort();
    const ctl = new AbortController();
    this.controller = ctl;
    return ctl;
  }

  /** The run of `ctl` is over. */
  end(ctl: AbortController): void {
    if (this.controller === ctl) this.controller = undefined;
  }

  /** Stop the running generation (it ends after the current token); false when none runs. */
  stop(): boolean {
    if (!this.controller) return false;
    this.controller.abort(new Error("stopped by the user"));
    return true;
  }
}

/**
 * Drain a streaming generator: `onToken(piece, tokens/s since t0)` is awaited for every step (the
 * page paces the stream); an abort ends the stream with finish reason "stopped".
 */
export async function drainStream<T>(
  it: AsyncIterator<T, { finishReasons: readonly string[] }>,
  piece: (step: T) => string,
  onToken: (text: string, tokensPerSecond: number) => Promise<void> | void,
  t0: number,
): Promise<{ tokens: number; text: string; finishReason: string }> {
  let tokens = 0;
  let text = "";
  let finishReason = "length";
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) {
        finishReason = r.value.finishReasons[0] ?? "length";
        break;
      }
      tokens++;
      const p = piece(r.value);
      text += p;
      await onToken(p, (tokens * 1000) / (performance.now() - t0));
    }
  } catch (e) {
    if (!(e instanceof AbortError)) throw e;
    finishReason = "stopped";
  }
  return { tokens, text, finishReason };
}
