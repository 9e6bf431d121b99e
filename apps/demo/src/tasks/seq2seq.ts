/**
 * Seq2seq in the worker (@wasmformer/nn `AttentionSeq2Seq`): load a character-level LSTM
 * encoder–decoder with attention (config.json with its vocabularies, model.safetensors), translate a
 * text greedily, and return the cross-attention weights `[output chars, input chars]`.
 */
import { ConfigError } from "@wasmformer/core";
import { AttentionSeq2Seq } from "@wasmformer/nn";
import { type FolderSource, type Latest, type ProgressFn, readFolder, readJson } from "./folder.js";
import { loadSlots } from "./slots.js";

export interface Seq2SeqInfo {
  srcVocab: number;
  tgtVocab: number;
  hidden: number;
  embed: number;
  loadMs: number;
}

export interface Seq2SeqResult {
  text: string;
  sourceTokens: string[];
  targetTokens: string[];
  /** `[targetTokens.length, sourceTokens.length]`, rows sum to 1 */
  attention: Float32Array;
  ms: number;
}

let model: AttentionSeq2Seq | undefined;

export async function loadSeq2Seq(
  src: FolderSource,
  onProgress: ProgressFn,
  latest: Latest = loadSlots.seq2seq.begin(),
): Promise<Seq2SeqInfo> {
  const t0 = performance.now();
  model?.dispose();
  model = undefined;
  const files = await readFolder(src, ["config.json", "model.safetensors"], [], onProgress);
  const config = await readJson(files["config.json"], "config.json");
  const weights = new Uint8Array(await files["model.safetensors"].arrayBuffer());
  const m = await AttentionSeq2Seq.fromPretrained({ config, weights });
  model = latest(m);
  const c = m.config();
  return {
    srcVocab: c.src_vocab_size,
    tgtVocab: c.tgt_vocab_size,
    hidden: c.hidden_size,
    embed: c.embed_dim,
    loadMs: performance.now() - t0,
  };
}

export function translate(text: string): Seq2SeqResult {
  if (!model) throw new ConfigError("no seq2seq model is loaded: load a checkpoint folder first");
  const t0 = performance.now();
  const r = model.translate(text);
  return {
    text: r.text,
    sourceTokens: r.sourceTokens,
    targetTokens: r.targetTokens,
    attention: Float32Array.from(r.attention.data as Float32Array),
    ms: performance.now() - t0,
  };
}
