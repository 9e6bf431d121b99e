/**
 * Autoregressive generation on a decoder (`GPT2LMHeadModel`, `LlamaForCausalLM`): prefill the (left-padded) prompts once, then
 * one cached decode step per token; sampling, stop strings/ids, streaming (async iterator and
 * callback), cancellation through an `AbortSignal`, log-probabilities and attention weights.
 */
import { AbortError, InputError, Tensor } from "@wasmformer/core";
import { eosTokenIds } from "./config.js";
import { type CausalLM, checkTokenId } from "./gpt2-model.js";
import {
  applyRepetitionPenalty,
  checkSamplingOptions,
  logProbOf,
  Rng,
  type SamplingOptions,
  sampleToken,
} from "./sampler.js";
import { TextStreamer, type Tokenizer } from "./tokenizer.js";

/** One generated token of one row. */
export interface GenerationChunk {
  /** Batch row (prompt index). */
  row: number;
  /** 0 for the first new token of the row. */
  step: number;
  token: number;
  /** The text this token completes (may be "" while a UTF-8 character is incomplete; "" for stop ids). */
  text: string;
  /** With `logprobs`: log-probability of `token` under the model (log-softmax of the raw logits). */
  logprob?: number;
  /** With `outputAttentions`: per layer `[H, S]`, the attention weights of the query that chose the token. */
  attentions?: Tensor<"f32">[];
}

export type FinishReason = "length" | "stop_id" | "stop_string";

export interface GenerationResult {
  /** Generated ids per row (stop ids included). */
  ids: number[][];
  /** Generated text per row ("" without a tokenizer). */
  texts: string[];
  finishReasons: FinishReason[];
  /** With `logprobs`: per row, per token. */
  logprobs?: number[][];
}

export interface GenerateOptions extends SamplingOptions {
  /** New tokens per row (default 20). `prompt + maxNewTokens > n_positions` (`max_position_embeddings`) is an `InputError`. */
  maxNewTokens?: number;
  /** Seed of the PRNG used by sampling (default: a random seed). */
  seed?: number;
  /** Stop a row when its text contains one of these (the text includes the stop string, as HF `stop_strings`). */
  stop?: string[];
  /** Stop a row after one of these ids (default: `eos_token_id` of the config, a number or a list; pass [] to never stop early). */
  stopIds?: number | number[];
  /** `[B, T]` 1 = token, 0 = left padding, for id prompts that are already padded. */
  attentionMask?: ArrayLike<number>[];
  /** Cancels generation: the iterator throws `AbortError` before the next step. */
  signal?: AbortSignal;
  /** Called for each chunk, before the iterator yields it. */
  onToken?: (chunk: GenerationChunk) => void;
  logprobs?: boolean;
  outputAttentions?: boolean;
}

/**
 * A prompt given as embeddings instead of ids (HF `generate(inputs_embeds=…)`), e.g. image
 * embeddings spliced between token embeddings (@wasmformer/vlm). `seenIds` (per row) are the ids
 * the repetition penalty counts as already present; by default none.
 */
export interface EmbedsPrompt {
  inputsEmbeds: Tensor;
  seenIds?: ArrayLike<number>[];
}

export type Prompt = string | string[] | number[] | number[][] | EmbedsPrompt;

const isEmbedsPrompt = (p: Prompt): p is EmbedsPrompt =>
  typeof p === "object" && p !== null && !Array.isArray(p) && "inputsEmbeds" in p;

/** Rows of an `EmbedsPrompt`: its `seenIds` (or empty rows), one per batch row of the embeddings. */
function embedsRows(p: EmbedsPrompt, V: number): number[][] {
  const e = p.inputsEmbeds;
  if (!(e instanceof Tensor) || e.ndim !== 3)
    throw new InputError(
      `inputsEmbeds must be a [batch, time, n_embd] Tensor, got ${e instanceof Tensor ? `[${e.shape.join(", ")}]` : typeof e}`,
    );
  const B = e.shape[0];
  if (p.seenIds !== undefined && (!Array.isArray(p.seenIds) || p.seenIds.length !== B))
    throw new InputError(`seenIds must be ${B} rows of token ids (one per inputsEmbeds row), got ${show(p.seenIds)}`);
  return Array.from({ length: B }, (_, b) => {
    const row = p.seenIds?.[b];
    if (row === undefined) return [];
    if (row === null || typeof row !== "object" || typeof row.length !== "number")
      throw new InputError(`seenIds[${b}] is not an array of token ids`);
    return Array.from(row, (id, t) => checkTokenId(id, V, `seenIds[${b}, ${t}]`));
  });
}

const show = (v: unknown): string => (typeof v === "string" ? JSON.stringify(v) : String(v));

/** Typed errors for every generation option (the sampling ones through `checkSamplingOptions`). */
export function checkGenerateOptions(o: GenerateOptions, vocabSize: number): void {
  if (o === null || typeof o !== "object") throw new InputError(`options must be an object, got ${show(o)}`);
  checkSamplingOptions(o);
  const N = o.maxNewTokens ?? 20;
  if (!Number.isInteger(N) || N < 0) throw new InputError(`maxNewTokens must be an integer ≥ 0, got ${show(N)}`);
  if (o.seed !== undefined && (typeof o.seed !== "number" || !Number.isFinite(o.seed)))
    throw new InputError(`seed must be a finite number, got ${show(o.seed)}`);
  if (o.stop !== undefined) {
    if (!Array.isArray(o.stop)) throw new InputError(`stop must be an array of strings, got ${show(o.stop)}`);
    o.stop.forEach((x, i) => {
      if (typeof x !== "string") throw new InputError(`stop[${i}] must be a string, got ${show(x)}`);
    });
  }
  if (o.stopIds !== undefined) {
    if (Array.isArray(o.stopIds)) o.stopIds.forEach((id, i) => void checkTokenId(id, vocabSize, `stopIds[${i}]`));
    else if (typeof o.stopIds === "number") checkTokenId(o.stopIds, vocabSize, "stopIds");
    else throw new InputError(`stopIds must be a token id or an array of token ids, got ${show(o.stopIds)}`);
  }
  if (o.attentionMask !== undefined && !Array.isArray(o.attentionMask))
    throw new InputError(`attentionMask must be an array of rows, got ${show(o.attentionMask)}`);
  const s = o.signal as unknown;
  if (s !== undefined && (s === null || typeof s !== "object" || typeof (s as AbortSignal).aborted !== "boolean"))
    throw new InputError(`signal must be an AbortSignal, got ${show(s)}`);
  if (o.onToken !== undefined && typeof o.onToken !== "function")
    throw new InputError(`onToken must be a function, got ${show(o.onToken)}`);
  for (const k of ["logprobs", "outputAttentions"] as const) {
    if (o[k] !== undefined && typeof o[k] !== "boolean")
      throw new InputError(`${k} must be a boolean, got ${show(o[k])}`);
  }
}

/** The ids that end a row: `stopIds` (one or several), else the config's `eos_token_id` (one or several). */
export function stopIdSet(
  stopIds: number | number[] | undefined,
  config: { eos_token_id: number | number[] | null },
): Set<number> {
  return new Set(stopIds === undefined ? eosTokenIds(config) : typeof stopIds === "number" ? [stopIds] : stopIds);
}

/** Let timers and abort events run between decode steps. */
function macrotask(): Promise<void> {
  if (typeof setImmediate === "function") return new Promise((r) => setImmediate(r));
  return new Promise((r) => setTimeout(r, 0));
}

function abortError(signal: AbortSignal): AbortError {
  const reason = signal.reason;
  return new AbortError(
    `generation aborted${reason instanceof Error ? `: ${reason.message}` : reason !== undefined ? `: ${String(reason)}` : ""}`,
  );
}

/** Prompts → rows of ids, left-padded to one length, with the attention mask when padded. */
function promptRows(model: CausalLM, tok: Tokenizer | undefined, prompt: Prompt, mask?: ArrayLike<number>[]) {
  let rows: number[][];
  if (typeof prompt === "string" || (Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] === "string")) {
    if (!tok)
      throw new InputError("a text prompt needs a tokenizer (load the model with fromPretrained, or pass token ids)");
    const texts = typeof prompt === "string" ? [prompt] : (prompt as unknown[]);
    rows = texts.map((t, b) => {
      if (typeof t !== "string") throw new InputError(`prompt[${b}] is not a string`);
      return tok.encode(t, { addSpecialTokens: true }); // as HF's tokenizer(prompt): a Llama BOS, nothing for GPT-2
    });
  } else if (Array.isArray(prompt) && prompt.length > 0 && Array.isArray(prompt[0])) {
    rows = (prompt as unknown[]).map((r, b) => {
      if (!Array.isArray(r)) throw new InputError(`prompt[${b}] is not an array of token ids`);
      return r as number[];
    });
  } else if (Array.isArray(prompt) && prompt.length > 0) {
    rows = [prompt as number[]];
  } else {
    throw new InputError("prompt must be a string, strings, token ids or rows of token ids (and not empty)");
  }
  rows.forEach((r, b) => {
    if (r.length === 0) throw new InputError(`prompt ${b} has no tokens`);
  });
  if (mask) return { rows, mask: mask.map((m) => Array.from(m)) };
  const T = Math.max(...rows.map((r) => r.length));
  if (rows.every((r) => r.length === T)) return { rows, mask: undefined };
  const padId = model.arch.eosTokenIds[0] ?? 0;
  return {
    rows: rows.map((r) => [...new Array<number>(T - r.length).fill(padId), ...r]),
    mask: rows.map((r) => [...new Array<number>(T - r.length).fill(0), ...new Array<number>(r.length).fill(1)]),
  };
}

/**
 * Generate from one or several prompts. Returns an async iterator of chunks (one per new token
 * per row, in step order); its return value is the `GenerationResult`.
 */
export async function* generate(
  model: CausalLM,
  tokenizer: Tokenizer | undefined,
  prompt: Prompt,
  o: GenerateOptions = {},
): AsyncGenerator<GenerationChunk, GenerationResult, void> {
  const V = model.config.vocab_size;
  checkGenerateOptions(o, V);
  const N = o.maxNewTokens ?? 20;
  const maxPos = model.arch.maxPositions;
  const stopIds = stopIdSet(o.stopIds, { eos_token_id: model.arch.eosTokenIds });
  const stops = (o.stop ?? []).filter((s) => s.length > 0);
  const embeds = isEmbedsPrompt(prompt) ? prompt.inputsEmbeds : undefined;
  if (embeds && o.attentionMask) throw new InputError("attentionMask is not supported with an inputsEmbeds prompt");
  const { rows, mask } = isEmbedsPrompt(prompt)
    ? { rows: embedsRows(prompt, V), mask: undefined }
    : promptRows(model, tokenizer, prompt, o.attentionMask);
  const B = rows.length;
  const T = embeds ? embeds.shape[1] : rows[0].length;
  if (T + N > maxPos) {
    throw new InputError(
      `prompt of ${T} tokens + maxNewTokens ${N} = ${T + N} positions exceeds ${model.arch.positionsField} ${maxPos}`,
    );
  }
  if (o.signal?.aborted) throw abortError(o.signal);
  const rng = new Rng(o.seed ?? Math.floor(Math.random() * 2 ** 32));

  // the generation's own KV context: other calls on the model in between do not disturb it
  const context = model.createContext();
  try {
    const out = embeds
      ? model.prefillEmbeds(embeds, { logits: "last", outputAttentions: o.outputAttentions, context })
      : model.prefill(rows, { attentionMask: mask, logits: "last", outputAttentions: o.outputAttentions, context });
    // tokens a row has seen (its real prompt tokens, then generated ones), for the repetition penalty
    const seen = rows.map((r, b) => (mask ? r.filter((_, t) => mask[b][t] === 1) : [...r]));
    const ids: number[][] = rows.map(() => []);
    const texts = rows.map(() => "");
    const logprobs: number[][] = rows.map(() => []);
    const finish: (FinishReason | undefined)[] = rows.map(() => undefined);
    const streamers = rows.map(() => (tokenizer ? new TextStreamer(tokenizer) : undefined));
    let logits = out.logits!.data; // [B, V] of the last position
    let attentions = out.attentions;
    const penalty = o.repetitionPenalty ?? 1;

    for (let step = 0; step < N; step++) {
      const next = new Array<number>(B);
      const chunks: GenerationChunk[] = [];
      for (let b = 0; b < B; b++) {
        if (finish[b]) {
          next[b] = ids[b][ids[b].length - 1]; // finished rows keep the batch in step; outputs ignored
          continue;
        }
        const raw = logits.subarray(b * V, (b + 1) * V);
        let row = raw;
        if (penalty !== 1) {
          row = raw.slice();
          applyRepetitionPenalty(row, seen[b], penalty);
        }
        const id = sampleToken(row, o, rng);
        next[b] = id;
        ids[b].push(id);
        seen[b].push(id);
        const chunk: GenerationChunk = { row: b, step, token: id, text: "" };
        if (stopIds.has(id)) {
          finish[b] = "stop_id";
        } else if (streamers[b]) {
          chunk.text = streamers[b]!.push(id);
          const before = texts[b].length;
          texts[b] += chunk.text;
          for (const s of stops) {
            if (texts[b].indexOf(s, Math.max(0, before - s.length + 1)) >= 0) finish[b] = "stop_string";
          }
        }
        if (o.logprobs) {
          chunk.logprob = logProbOf(raw, id);
          logprobs[b].push(chunk.logprob);
        }
        if (attentions) {
          // the query that produced these logits: the last one of the call, per layer [H, S]
          chunk.attentions = attentions.map((a) => {
            const [, H, Tq, S] = a.shape;
            const outA = new Float32Array(H * S);
            for (let h = 0; h < H; h++)
              outA.set(a.data.subarray(((b * H + h) * Tq + Tq - 1) * S, ((b * H + h) * Tq + Tq) * S), h * S);
            return new Tensor(outA, [H, S], "f32");
          });
        }
        if (step === N - 1 && !finish[b]) finish[b] = "length";
        if (finish[b] && streamers[b] && finish[b] !== "stop_id") {
          const tail = streamers[b]!.flush();
          chunk.text += tail;
          texts[b] += tail;
        }
        chunks.push(chunk);
      }
      for (const c of chunks) {
        o.onToken?.(c);
        yield c;
      }
      if (finish.every(Boolean) || step === N - 1) break;
      await macrotask();
      if (o.signal?.aborted) throw abortError(o.signal);
      const d = model.decode(next, { outputAttentions: o.outputAttentions, context });
      logits = d.logits!.data;
      attentions = d.attentions;
    }
    for (let b = 0; b < B; b++) finish[b] ??= "length";
    const result: GenerationResult = { ids, texts, finishReasons: finish as FinishReason[] };
    if (o.logprobs) result.logprobs = logprobs;
    return result;
  } finally {
    model.releaseContext(context);
  }
}

/** Run `generate` to the end and return its result (chunks still go to `onToken`). */
export async function generateAll(
  model: CausalLM,
  tokenizer: Tokenizer | undefined,
  prompt: Prompt,
  o: GenerateOptions = {},
): Promise<GenerationResult> {
  const it = generate(model, tokenizer, prompt, o);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}
