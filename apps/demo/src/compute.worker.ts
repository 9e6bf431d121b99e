/**
 * The demo's compute worker: owns the wasm instances and the loaded models; the page only sends
 * inputs and receives results (comlink; buffers transferred both ways, tokens streamed through
 * proxied callbacks). Cancelling terminates this worker; the client restarts it lazily.
 */
import { backendName, init } from "@wasmformer/core";
import { expose, transfer } from "comlink";
import { preprocess, type TextRequest, textTransferables } from "./tasks/text.js";

let ready: Promise<string> | undefined;

/** Load the kernels once; resolves to the backend name ("wasm-relaxed", "wasm-simd" or "ref"). */
function ensureInit(): Promise<string> {
  ready ??= init().then(() => backendName());
  return ready;
}

const api = {
  /** Load the kernels; returns the backend and what the engine supports. */
  async init(): Promise<{ backend: string; crossOriginIsolated: boolean }> {
    const backend = await ensureInit();
    return { backend, crossOriginIsolated: self.crossOriginIsolated };
  },

  /** Keras Tokenizer + padSequences on the given texts. */
  async textPreprocess(req: TextRequest) {
    await ensureInit();
    const r = preprocess(req);
    return transfer(r, textTransferables(r));
  },
};

export type ComputeApi = typeof api;
expose(api);
