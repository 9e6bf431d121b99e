// The page of the wllama benchmark (driven by bench/wllama.mjs through Playwright): one engine
// per call, each loading the GGUF file by URL. `window.bench` is the interface the script uses.
import { Wllama } from "@wllama/wllama";
import wllamaWasm from "@wllama/wllama/esm/wasm/wllama.wasm?url";

/** llama.cpp compiled to wasm, loaded with `n_threads` (1: no pthreads; > 1: its pthread pool). */
async function wllamaEngine(url, threads, contextLength) {
  const w = new Wllama({ default: wllamaWasm }, { suppressNativeLog: !globalThis.VERBOSE_NATIVE });
  await w.loadModelFromUrl(url, {
    useCache: false,
    n_threads: threads,
    n_ctx: contextLength,
    n_parallel: 1,
    n_gpu_layers: 0, // CPU (wasm) only; WebGPU is on by default in wllama 3
  });
  return {
    info: { threads: w.getNumThreads(), multithread: w.isMultithread(), version: Wllama.getLibllamaVersion() },
    /**
     * Greedy completion of `prompt` (text: wllama 3 takes no token ids). The decode figure is
     * llama.cpp's own `timings.predicted_per_token_ms`: the time from the first new token (which
     * ends the prefill) to the last, over n − 1. `ids` (with `withIds`: from `logprobs`, which
     * costs time, so not on timed runs) are the chosen tokens.
     */
    async generate(prompt, n, withIds = false) {
      const r = await w.createCompletion({
        prompt,
        max_tokens: n,
        temperature: 0,
        ignore_eos: true,
        cache_prompt: false,
        ...(withIds ? { logprobs: 1 } : {}),
      });
      const t = r.timings;
      return {
        decodeMs: t.predicted_per_token_ms,
        prefillMs: t.prompt_ms,
        promptTokens: t.prompt_n,
        newTokens: t.predicted_n,
        ids: withIds ? r.choices[0].logprobs.content.map((c) => c.id) : undefined,
      };
    },
    /**
     * Median time of one page → worker → page round trip of wllama's `get_result` action for a
     * request id that does not exist (the worker answers at once): the messaging that each decoded
     * token also pays, since the page polls `get_result` once per token.
     */
    async roundTrip(k = 21) {
      const ms = [];
      for (let i = 0; i < k; i++) {
        const t0 = performance.now();
        await w.proxy.wllamaAction("get_result", { _name: "gres_req", req_id: 1e9 });
        ms.push(performance.now() - t0);
      }
      return ms.sort((a, b) => a - b)[k >> 1];
    },
    dispose: () => w.exit(),
  };
}

/** Our llm in a module Worker (ours.worker.js). */
async function oursEngine(url, threads, contextLength) {
  const worker = new Worker(new URL("./ours.worker.js", import.meta.url), { type: "module" });
  const call = (msg) =>
    new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => (data.ok ? resolve(data) : reject(new Error(data.error)));
      worker.onerror = (e) => reject(new Error(e.message));
      worker.postMessage(msg);
    });
  const info = await call({ cmd: "load", url, threads, contextLength });
  return {
    info,
    generate: (prompt, n) => call({ cmd: "generate", prompt, n }),
    async dispose() {
      await call({ cmd: "dispose" });
      worker.terminate();
    },
  };
}

const engines = new Map();
window.bench = {
  isolated: () => crossOriginIsolated,
  async load(name, kind, url, threads, contextLength) {
    const make = kind === "wllama" ? wllamaEngine : oursEngine;
    const e = await make(url, threads, contextLength);
    engines.set(name, e);
    return e.info;
  },
  generate: (name, prompt, n, withIds) => engines.get(name).generate(prompt, n, withIds),
  roundTrip: (name) => engines.get(name).roundTrip(),
  async dispose(name) {
    await engines.get(name).dispose();
    engines.delete(name);
  },
};
