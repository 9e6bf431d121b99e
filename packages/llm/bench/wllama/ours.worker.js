// Our side of the wllama benchmark, in a module Worker as an app would run it: the GGUF file by
// URL, init({ threads }), greedy decoding of token ids with prefill + decode steps.
import { init, terminateThreads, threadsInfo } from "@wasmformer/core";
import { AutoModelForCausalLM } from "@wasmformer/llm";

let model;

const argmax = (l) => {
  let b = 0;
  for (let i = 1; i < l.length; i++) if (l[i] > l[b]) b = i;
  return b;
};

/**
 * Greedy tokens after the text `prompt` (tokenized by the GGUF file's tokenizer); ms per decode step
 * from the first new token (which ends the prefill) to the last, over n − 1, as llama.cpp times it.
 */
function generate(text, n) {
  const V = model.config.vocab_size;
  const prompt = model.tokenizer.encode(text);
  const t0 = performance.now();
  let l = model.prefill([prompt]).logits.data;
  let t = argmax(l.subarray(l.length - V));
  const tFirst = performance.now();
  const ids = [t];
  while (ids.length < n) {
    l = model.decode([t]).logits.data;
    t = argmax(l.subarray(l.length - V));
    ids.push(t);
  }
  const tLast = performance.now();
  return { ids, promptIds: prompt, prefillMs: tFirst - t0, decodeMs: (tLast - tFirst) / (n - 1) };
}

self.onmessage = async ({ data: m }) => {
  try {
    if (m.cmd === "load") {
      const backend = await init({ threads: m.threads });
      model = await AutoModelForCausalLM.fromPretrained(m.url, { contextLength: m.contextLength });
      const info = threadsInfo();
      postMessage({ ok: true, backend, threads: info.threads, reason: info.reason ?? "" });
    } else if (m.cmd === "generate") {
      postMessage({ ok: true, ...generate(m.prompt, m.n) });
    } else if (m.cmd === "dispose") {
      model.dispose();
      terminateThreads();
      postMessage({ ok: true });
    }
  } catch (e) {
    postMessage({ ok: false, error: `${e?.name}: ${e?.message}` });
  }
};
