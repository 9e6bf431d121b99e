/** The sampling controls of the generating pages (GPT-2, VLM): max new tokens, temperature, top-k, seed. */
import { h } from "../ui.js";

export interface SamplingValues {
  maxNewTokens: number;
  /** 0 = greedy */
  temperature: number;
  topK: number;
  seed: number;
}

/**
 * The four inputs (ids `${prefix}-max`, `-temp`, `-topk`, `-seed`) in one row, and `read()` for
 * their current values.
 */
export function samplingControls(
  prefix: string,
  opts: { seed: number; seedSize: number; maxLimit?: number },
): { row: HTMLElement; read: () => SamplingValues } {
  const maxNew = h("input", { id: `${prefix}-max`, type: "number", value: 40, min: 1, max: opts.maxLimit, size: 5 });
  const temp = h("input", { id: `${prefix}-temp`, type: "number", value: 0, min: 0, step: 0.1, size: 4 });
  const topK = h("input", { id: `${prefix}-topk`, type: "number", value: 0, min: 0, size: 4 });
  const seed = h("input", { id: `${prefix}-seed`, type: "number", value: opts.seed, size: opts.seedSize });
  const row = h(
    "div",
    { class: "row" },
    h("label", {}, "max new tokens ", maxNew),
    h("label", {}, "temperature (0 = greedy) ", temp),
    h("label", {}, "top-k ", topK),
    h("label", {}, "seed ", seed),
  );
  const read = () => ({
    maxNewTokens: Number(maxNew.value),
    temperature: Number(temp.value),
    topK: Number(topK.value),
    seed: Number(seed.value),
  });
  return { row, read };
}
