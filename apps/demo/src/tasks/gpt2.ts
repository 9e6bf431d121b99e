/**
 * GPT-2 in the worker (@wasmformer/llm): load a Hugging Face folder (config.json, model.safetensors,
 * tokenizer.json or vocab.json + merges.txt), stream generated tokens, and read the self-attention
 * weights of a sentence for the attention page.
 */
import { ConfigError, openSafetensors } from "@wasmformer/core";
import { GPT2LMHeadModel, type Tokenizer } from "@wasmformer/llm";
import type { FolderSource, Latest, ProgressFn } from "./folder.js";
import { drainStream, RunSlot, readModelFolder } from "./generation.js";
import { loadSlots } from "./slots.js";

export interface Gpt2Info {
  layers: number;
  heads: number;
  embd: number;
  vocab: number;
  positions: number;
  params: number;
  heapBytes: number;
  loadMs: number;
  /** of which reading/downloading the files */
  readMs: number;
}

export interface GenerateRequest {
  prompt: string;
  maxNewTokens: number;
  /** 0 = greedy */
  temperature: number;
  topK: number;
  seed: number;
}

export interface GenerateStats {
  tokens: number;
  ms: number;
  tokensPerSecond: number;
  text: string;
  finishReason: string;
}

export interface AttentionResult {
  tokens: string[];
  layers: number;
  heads: number;
  /** `[layers, heads, T, T]` row-major (queries × keys; causal, so the upper triangle is 0) */
  weights: Float32Array;
}

let model: GPT2LMHeadModel | undefined;
let tokenizer: Tokenizer | undefined;
const slot = new RunSlot();

export async function loadGpt2(
  src: FolderSource,
  onProgress: ProgressFn,
  latest: Latest = loadSlots.gpt2.begin(),
): Promise<Gpt2Info> {
  const t0 = performance.now();
  model = undefined;
  const { files, config, tokenizer: tok, readMs } = await readModelFolder(src, onProgress);
  const file = await openSafetensors(files["model.safetensors"]);
  let last = 0;
  const m = await GPT2LMHeadModel.fromWeights(config, file, {
    onProgress: (p) => {
      const now = performance.now();
      if (now - last > 50 || p.loaded === p.total) {
        onProgress({ stage: `loading ${p.tensor}`, loaded: p.loaded, total: p.total });
        last = now;
      }
    },
  });
  await file.close();
  m.tokenizer = tok;
  model = latest(m);
  tokenizer = tok;
  const c = m.config;
  let params = 0;
  for (const n of file.names()) params += file.info(n).shape.reduce((a, b) => a * b, 1);
  return {
    layers: c.n_layer,
    heads: c.n_head,
    embd: c.n_embd,
    vocab: c.vocab_size,
    positions: c.n_positions,
    params,
    heapBytes: m.heapBytes,
    loadMs: performance.now() - t0,
    readMs,
  };
}

function need(): GPT2LMHeadModel {
  if (!model) throw new ConfigError("no GPT-2 model is loaded: load a checkpoint folder first");
  return model;
}

/**
 * Generate, calling `onToken` for every new token (awaited, so the page paces the stream and the
 * worker stays responsive to `stopGeneration`).
 */
export async function generateText(
  req: GenerateRequest,
  onToken: (text: string, tokensPerSecond: number) => Promise<void> | void,
): Promise<GenerateStats> {
  const m = need();
  const ctl = slot.start();
  const t0 = performance.now();
  const it = m.generate(req.prompt, {
    maxNewTokens: req.maxNewTokens,
    temperature: req.temperature,
    topK: req.topK,
    seed: req.seed,
    signal: ctl.signal,
  });
  try {
    const { tokens, text, finishReason } = await drainStream(it, (c) => c.text, onToken, t0);
    const ms = performance.now() - t0;
    return { tokens, ms, tokensPerSecond: (tokens * 1000) / ms, text, finishReason };
  } finally {
    slot.end(ctl);
  }
}

/** Stop the running generation (it ends after the current token). */
export function stopGeneration(): boolean {
  return slot.stop();
}

/** Per-layer, per-head self-attention weights of a sentence. */
export function gpt2Attention(sentence: string): AttentionResult {
  const m = need();
  const tok = tokenizer as Tokenizer;
  const ids = tok.encode(sentence);
  if (ids.length === 0) throw new ConfigError("the sentence has no tokens");
  const out = m.prefill([ids], { logits: "none", outputAttentions: true });
  const atts = out.attentions ?? [];
  const L = atts.length;
  const H = m.config.n_head;
  const T = ids.length;
  const weights = new Float32Array(L * H * T * T);
  atts.forEach((a, l) => {
    weights.set((a.data as Float32Array).subarray(0, H * T * T), l * H * T * T);
  });
  m.reset();
  return { tokens: ids.map((id) => tok.decode([id])), layers: L, heads: H, weights };
}
