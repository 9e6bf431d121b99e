/**
 * Seq2seq page: opens on the embedded dates translator (`@wasmformer/models` dates-seq2seq, an LSTM
 * encoder–decoder with attention). Type a written date: the ISO date comes back, with the
 * cross-attention heatmap (which input characters each output character looked at).
 */
import { compute } from "../client.js";
import { folderLoader } from "../loader.js";
import type { Seq2SeqInfo } from "../tasks/seq2seq.js";
import { embeddedUrl, h, heatmap, showError, statusLine } from "../ui.js";
import type { Page } from "./index.js";

const EXAMPLES = ["march 3rd, 1998", "3 March 1998", "Tuesday, July 14, 2015", "1/2/03", "the 21st of december 1987"];

export const seq2seqPage: Page = {
  id: "seq2seq",
  title: "Seq2seq",
  mount(root) {
    let loaded = -1; // the worker epoch the model was loaded in
    const input = h("input", { id: "s2s-input", size: 40, value: EXAMPLES[0], spellcheck: false });
    const run = h("button", { id: "s2s-run", disabled: true }, "Translate");
    const output = h("p", { class: "prediction", id: "s2s-output" });
    const status = statusLine();
    status.el.id = "s2s-translate-status";
    const out = h("div", { id: "s2s-out" });
    const sync = () => {
      run.disabled = loaded !== compute.epoch;
    };
    compute.onRestart(sync);

    const translate = async () => {
      if (loaded !== compute.epoch || !input.value.trim()) return;
      status.set("running", "translating in the worker…");
      try {
        const text = input.value;
        const r = await compute.run((api) => api.translate(text));
        output.textContent = r.text;
        output.dataset.input = text;
        out.replaceChildren(
          heatmap(r.attention, r.targetTokens.length, r.sourceTokens.length, {
            rowLabels: r.targetTokens,
            colLabels: r.sourceTokens.map((c) => (c === " " ? "␣" : c)),
            cell: 16,
            title: "cross-attention: rows are output characters, columns input characters",
          }),
        );
        status.set("done", `${r.targetTokens.length} characters in ${r.ms.toFixed(1)} ms (worker)`);
      } catch (e) {
        output.textContent = "";
        status.set("error", "failed");
        showError(out, e);
      }
    };
    run.addEventListener("click", () => void translate());
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") void translate();
    });

    root.append(
      h("h2", {}, "Seq2seq: written dates → ISO dates"),
      folderLoader<Seq2SeqInfo>({
        id: "s2s",
        files: "config.json (with the character vocabularies), model.safetensors",
        url: embeddedUrl("dates-seq2seq"),
        autoload: true,
        load: (src, onProgress) => compute.run((api) => api.loadSeq2Seq(src, onProgress)),
        describe: (i) =>
          `LSTM encoder–decoder with attention: hidden ${i.hidden}, embeddings ${i.embed}, vocabularies ${i.srcVocab} → ${i.tgtVocab} characters, loaded in ${i.loadMs.toFixed(0)} ms`,
        onLoaded: () => {
          loaded = compute.epoch;
          sync();
          void translate();
        },
      }),
      h(
        "div",
        { class: "card" },
        h("h3", {}, "Translate"),
        h("div", { class: "actions" }, input, run),
        h(
          "div",
          { class: "actions" },
          ...EXAMPLES.map((x) =>
            h(
              "button",
              {
                class: "chip",
                onclick: () => {
                  input.value = x;
                  void translate();
                },
              },
              x,
            ),
          ),
        ),
        output,
        status.el,
        out,
      ),
    );
  },
};
