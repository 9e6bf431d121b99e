/**
 * Text preprocessing page: the lecture's Keras examples (word_index, texts → sequences → texts,
 * the four `texts_to_matrix` modes, `pad_sequences` pre/post), editable, computed in the worker.
 */
import { compute } from "../client.js";
import type { TextRequest, TextResult } from "../tasks/text.js";
import { clear, h, section, showError, statusLine, table } from "../ui.js";
import type { Page } from "./index.js";

const LECTURE = {
  fit: ["I love Algeria", "machine learning", "Artificial intelligence", "AI"],
  encode: ["Algeria love AI", "I love machine learning"],
  decode: [[3, 4, 7, 2, 8, 1, 3]],
  windows: ["blue car and blue window", "black crow in the window", "i see my reflection in the window"],
  pad: [[1, 2, 3, 4], [1, 2, 3], [1]],
};

const lines = (s: string) => s.split("\n").filter((l) => l.trim().length > 0);

/** "3 4 7, 2" → [3, 4, 7, 2] per line; throws on anything that is not an integer. */
function parseSeqs(s: string, what: string): number[][] {
  return lines(s).map((l, i) =>
    l
      .split(/[\s,[\]]+/)
      .filter(Boolean)
      .map((x) => {
        const v = Number(x);
        if (!Number.isInteger(v)) throw new Error(`${what}, line ${i + 1}: "${x}" is not an integer`);
        return v;
      }),
  );
}

function optInt(s: string, what: string): number | null {
  if (s.trim() === "") return null;
  const v = Number(s);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${what} must be a non-negative integer or empty, got "${s}"`);
  return v;
}

function matrixRows(m: { rows: number; cols: number; data: Float32Array }, label: (i: number) => string) {
  const rows: (string | number)[][] = [];
  for (let i = 0; i < m.rows; i++) rows.push([label(i), ...m.data.subarray(i * m.cols, (i + 1) * m.cols)]);
  return rows;
}

export const textPage: Page = {
  id: "text",
  title: "Text preprocessing",
  mount(root) {
    const fit = h("textarea", { rows: 4, id: "fit-texts" }, LECTURE.fit.join("\n"));
    const enc = h("textarea", { rows: 2, id: "encode-texts" }, LECTURE.encode.join("\n"));
    const dec = h("textarea", { rows: 2, id: "decode-seqs" }, LECTURE.decode.map((s) => s.join(" ")).join("\n"));
    const oov = h("input", { id: "oov", value: "", placeholder: "none", size: 8 });
    const numWords = h("input", { id: "num-words", value: "", placeholder: "no limit", size: 6 });
    const win = h("textarea", { rows: 3, id: "matrix-texts" }, LECTURE.windows.join("\n"));
    const pad = h("textarea", { rows: 3, id: "pad-seqs" }, LECTURE.pad.map((s) => s.join(" ")).join("\n"));
    const maxlen = h("input", { id: "maxlen", value: "4", size: 4 });
    const trunc = h(
      "select",
      { id: "truncating" },
      h("option", { value: "pre" }, "pre"),
      h("option", { value: "post" }, "post"),
    );
    const status = statusLine();
    const out = h("div", { id: "text-out" });

    const run = async () => {
      let req: TextRequest;
      try {
        req = {
          fitTexts: lines(fit.value),
          encodeTexts: lines(enc.value),
          decodeSequences: parseSeqs(dec.value, "sequences to decode"),
          oovToken: oov.value.trim() === "" ? null : oov.value.trim(),
          numWords: optInt(numWords.value, "num_words"),
          matrixTexts: lines(win.value),
          padSequences: parseSeqs(pad.value, "sequences to pad"),
          maxlen: optInt(maxlen.value, "maxlen"),
          truncating: trunc.value as "pre" | "post",
          value: 0,
        };
      } catch (e) {
        status.set("error", "");
        showError(out, e);
        return;
      }
      status.set("running", "computing in the worker…");
      try {
        const r = await compute.run((api) => api.textPreprocess(req));
        render(r, req);
        status.set("done", `done in ${r.ms.toFixed(1)} ms (worker)`);
      } catch (e) {
        status.set("error", "");
        showError(out, e);
      }
    };

    const render = (r: TextResult, req: TextRequest) => {
      clear(out);
      out.append(
        section(
          "word_index",
          h("p", { class: "muted" }, `document_count = ${r.documentCount}`),
          table(
            ["word", "index", "count"],
            r.wordIndex.map(([w, i]) => [w, i, r.wordCounts.find(([x]) => x === w)?.[1] ?? ""]),
            "word-index",
          ),
        ),
        section(
          "texts_to_sequences",
          table(
            ["text", "sequence"],
            req.encodeTexts.map((t, i) => [t, `[${r.sequences[i].join(", ")}]`]),
            "sequences",
          ),
        ),
        section(
          "sequences_to_texts",
          table(
            ["sequence", "text"],
            req.decodeSequences.map((s, i) => [`[${s.join(", ")}]`, r.decoded[i]]),
            "decoded",
          ),
        ),
        section(
          "texts_to_matrix (fit on the window sentences)",
          ...(["binary", "count", "freq", "tfidf"] as const).map((mode) =>
            h(
              "div",
              { class: "matrix" },
              h("h4", {}, `mode="${mode}"`),
              table(
                ["", ...r.matrixVocab],
                matrixRows(r.matrices[mode], (i) => `text ${i + 1}`),
                `matrix matrix-${mode}`,
              ),
            ),
          ),
        ),
        section(
          "pad_sequences",
          h("h4", {}, `padding="pre"`),
          table(
            ["seq", ...Array.from({ length: r.padded.pre.cols }, (_, j) => j)],
            matrixRows(r.padded.pre, (i) => `${i + 1}`),
            "padded-pre",
          ),
          h("h4", {}, `padding="post"`),
          table(
            ["seq", ...Array.from({ length: r.padded.post.cols }, (_, j) => j)],
            matrixRows(r.padded.post, (i) => `${i + 1}`),
            "padded-post",
          ),
        ),
      );
    };

    root.append(
      h("h2", {}, "Text preprocessing"),
      h(
        "p",
        { class: "muted" },
        "Keras Tokenizer and pad_sequences (@wasmformer/text), run in the worker. The lecture's examples are preloaded; edit and press Run.",
      ),
      h(
        "div",
        { class: "form" },
        h("label", {}, "fit_on_texts (one per line)", fit),
        h("label", {}, "texts_to_sequences", enc),
        h("label", {}, "sequences_to_texts", dec),
        h("div", { class: "row" }, h("label", {}, "oov_token ", oov), h("label", {}, "num_words ", numWords)),
        h("label", {}, "texts_to_matrix texts", win),
        h("label", {}, "pad_sequences input", pad),
        h("div", { class: "row" }, h("label", {}, "maxlen ", maxlen), h("label", {}, "truncating ", trunc)),
        h("button", { id: "text-run", onclick: () => void run() }, "Run"),
      ),
      status.el,
      out,
    );
    void run();
  },
};
