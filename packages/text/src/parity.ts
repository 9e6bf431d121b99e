/**
 * Parity kinds of @wasmformer/text (`../shared/fixtures/FORMAT.md` §6.1 `tokenizer`, §6.2
 * `pad_sequences`). Both are JSON kinds: they return `{ json }` with exactly the expected keys.
 */
import { InputError, type Tensor } from "@wasmformer/core";
import type { KindRegistry, ParityCase } from "@wasmformer/core/parity";
import { objectFromEntries } from "./json.js";
import { type MatrixMode, type Text, Tokenizer } from "./keras-tokenizer.js";
import { padSequences } from "./pad-sequences.js";

const MODES: MatrixMode[] = ["binary", "count", "freq", "tfidf"];

function field<T>(
  o: Record<string, unknown>,
  key: string,
  where: string,
  check: (v: unknown) => boolean,
  what: string,
): T {
  const v = o[key];
  if (!check(v)) throw new InputError(`${where}.${key}: expected ${what}, got ${JSON.stringify(v)}`);
  return v as T;
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isIntOrNull = (v: unknown) => v === null || v === undefined || (typeof v === "number" && Number.isInteger(v));

function matrixRows(t: Tensor): number[][] {
  const [n, w] = t.shape;
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) rows.push(Array.from(t.data.subarray(i * w, (i + 1) * w)));
  return rows;
}

function allModes(f: (m: MatrixMode) => Tensor): Record<string, number[][]> {
  const o: Record<string, number[][]> = {};
  for (const m of MODES) o[m] = matrixRows(f(m));
  return o;
}

/** Run one `tokenizer` case: fit calls in order, then the conversions of `inputs`. */
export function runTokenizerCase(
  config: Record<string, unknown>,
  inputs: Record<string, unknown>,
): Record<string, unknown> {
  const tok = new Tokenizer({
    numWords: field<number | null>(config, "num_words", "config", isIntOrNull, "an integer or null") ?? null,
    filters: field<string>(config, "filters", "config", (v) => v === undefined || typeof v === "string", "a string"),
    lower: field<boolean>(config, "lower", "config", (v) => v === undefined || typeof v === "boolean", "a boolean"),
    split: field<string>(config, "split", "config", (v) => v === undefined || typeof v === "string", "a string"),
    charLevel: field<boolean>(
      config,
      "char_level",
      "config",
      (v) => v === undefined || typeof v === "boolean",
      "a boolean",
    ),
    oovToken:
      field<string | null>(
        config,
        "oov_token",
        "config",
        (v) => v == null || typeof v === "string",
        "a string or null",
      ) ?? null,
    documentCount: field<number>(config, "document_count", "config", isIntOrNull, "an integer") ?? 0,
  });
  const fit = field<unknown[]>(inputs, "fit", "inputs", (v) => v === undefined || Array.isArray(v), "a list") ?? [];
  fit.forEach((call, i) => {
    if (!isObj(call)) throw new InputError(`inputs.fit[${i}]: expected an object`);
    if (call.method === "fit_on_texts") {
      const texts = field<Text[]>(call, "texts", `inputs.fit[${i}]`, Array.isArray, "a list of texts");
      tok.fitOnTexts(texts);
    } else if (call.method === "fit_on_sequences") {
      tok.fitOnSequences(
        field<number[][]>(call, "sequences", `inputs.fit[${i}]`, Array.isArray, "a list of sequences"),
      );
    } else {
      throw new InputError(`inputs.fit[${i}].method: unknown method ${JSON.stringify(call.method)}`);
    }
  });
  const out: Record<string, unknown> = {
    document_count: tok.documentCount,
    word_counts: [...tok.wordCounts.entries()].map(([w, c]) => [w, c]),
    word_docs: objectFromEntries(tok.wordDocs),
    index_docs: objectFromEntries([...tok.indexDocs].map(([i, c]) => [String(i), c])),
    word_index: objectFromEntries(tok.wordIndex),
    index_word: objectFromEntries([...tok.indexWord].map(([i, w]) => [String(i), w])),
  };
  if (inputs.texts !== undefined) {
    const texts = field<Text[]>(inputs, "texts", "inputs", Array.isArray, "a list of texts");
    out.texts_to_sequences = tok.textsToSequences(texts);
    out.texts_to_matrix = allModes((m) => tok.textsToMatrix(texts, m));
  }
  if (inputs.sequences !== undefined) {
    const seqs = field<number[][]>(inputs, "sequences", "inputs", Array.isArray, "a list of sequences");
    out.sequences_to_texts = tok.sequencesToTexts(seqs);
    out.sequences_to_matrix = allModes((m) => tok.sequencesToMatrix(seqs, m));
  }
  return out;
}

/** Run one `pad_sequences` case. */
export function runPadSequencesCase(
  config: Record<string, unknown>,
  inputs: Record<string, unknown>,
): Record<string, unknown> {
  const seqs = field<number[][]>(inputs, "sequences", "inputs", Array.isArray, "a list of sequences");
  const dtype = (config.dtype ?? "int32") as "int32" | "float32";
  const t = padSequences(seqs, {
    maxlen: field<number | null>(config, "maxlen", "config", isIntOrNull, "an integer or null"),
    dtype,
    padding: config.padding as "pre" | "post" | undefined,
    truncating: config.truncating as "pre" | "post" | undefined,
    value: field<number>(config, "value", "config", (v) => v === undefined || typeof v === "number", "a number"),
  });
  return { dtype, shape: [...t.shape], padded: matrixRows(t) };
}

function inputsOf(c: ParityCase): Record<string, unknown> {
  const inputs = c.json.inputs;
  if (!isObj(inputs)) throw new InputError(`${c.name}: case.json "inputs" must be an object`);
  return inputs;
}

export const kinds: KindRegistry = {
  async tokenizer(c) {
    return { json: runTokenizerCase(c.config ?? {}, inputsOf(c)) };
  },
  async pad_sequences(c) {
    return { json: runPadSequencesCase(c.config ?? {}, inputsOf(c)) };
  },
};
