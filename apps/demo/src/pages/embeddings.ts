/**
 * Word embeddings page: opens on the embedded Brown-corpus vectors (`@wasmformer/models`
 * brown-word2vec; or any word2vec file); train Word2Vec in the worker with a live progress bar and
 * loss curve; nearest neighbours, analogies and a 2-D PCA scatter plot of the vectors.
 */

/** Words of the Brown corpus to plot when its vectors are loaded (family, royalty, days, months). */
const BROWN_PLOT =
  "man woman boy girl father mother son daughter husband wife king queen monday tuesday friday sunday january march june october";

import type { Word2VecProgress } from "@wasmformer/text";
import { proxy } from "comlink";
import { compute } from "../client.js";
import { folderLoader } from "../loader.js";
import { COUNTRIES, PAIRS_GENDER } from "../tasks/corpus.js";
import type { Neighbours, Projection, TrainRequest, VectorsInfo } from "../tasks/embeddings.js";
import {
  clear,
  embeddedUrl,
  h,
  linePlot,
  nextTask,
  progressBar,
  scatter,
  section,
  showError,
  statusLine,
  table,
} from "../ui.js";
import type { Page } from "./index.js";

const num = (el: HTMLInputElement) => Number(el.value);
/** 1234567 → "1,234,567" (no Intl: creating a number formatter costs tens of ms on the main thread) */
const thousands = (x: number) => String(Math.round(x)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

function colourOf(word: string): string {
  for (const [m, f, rank] of PAIRS_GENDER) {
    if (word === m) return rank === "royal" ? "#1d4ed8" : "#60a5fa";
    if (word === f) return rank === "royal" ? "#be123c" : "#fb7185";
  }
  for (const [country, city, people] of COUNTRIES) {
    if (word === country) return "#15803d";
    if (word === city) return "#a16207";
    if (word === people) return "#7c3aed";
  }
  return "#9ca3af";
}

export const embeddingsPage: Page = {
  id: "embeddings",
  title: "Word embeddings",
  mount(root) {
    const corpusSel = h(
      "select",
      { id: "w2v-corpus" },
      h("option", { value: "builtin" }, "built-in corpus (generated)"),
      h("option", { value: "own" }, "my text (below)"),
    );
    const own = h("textarea", { id: "w2v-text", rows: 4, placeholder: "one sentence per line", hidden: true });
    corpusSel.addEventListener("change", () => {
      own.hidden = corpusSel.value !== "own";
    });
    const sentences = h("input", { id: "w2v-sentences", type: "number", value: 20000, size: 7 });
    const model = h(
      "select",
      { id: "w2v-model" },
      h("option", { value: "skipgram" }, "skip-gram"),
      h("option", { value: "cbow" }, "CBOW"),
    );
    const dim = h("input", { id: "w2v-dim", type: "number", value: 50, size: 4 });
    const win = h("input", { id: "w2v-window", type: "number", value: 4, size: 3 });
    const neg = h("input", { id: "w2v-negative", type: "number", value: 5, size: 3 });
    const epochs = h("input", { id: "w2v-epochs", type: "number", value: 5, size: 3 });
    const minCount = h("input", { id: "w2v-mincount", type: "number", value: 1, size: 3 });
    const seed = h("input", { id: "w2v-seed", type: "number", value: 1, size: 5 });
    const train = h("button", { id: "w2v-train" }, "Train");
    const stop = h("button", { id: "w2v-stop", disabled: true }, "Stop");
    const bar = progressBar("");
    bar.el.id = "w2v-progress";
    const loss = linePlot(420, 150, "training loss (mean per example, per report)");
    const status = statusLine();
    status.el.id = "w2v-status";
    const err = h("div", {});
    const results = h("div", { id: "w2v-results" });

    const query = h("input", { id: "w2v-query", value: "paris", size: 14 });
    const nnOut = h("div", { id: "w2v-nn" });
    const aIn = h("input", { id: "w2v-a", value: "man", size: 10 });
    const bIn = h("input", { id: "w2v-b", value: "king", size: 10 });
    const cIn = h("input", { id: "w2v-c", value: "woman", size: 10 });
    const anOut = h("div", { id: "w2v-analogy" });
    const ask = h("div", { class: "card", id: "w2v-ask", hidden: true });
    // default plot: the gendered pairs (gender and rank directions); countries and capitals can be typed in
    const PLANTED = PAIRS_GENDER.map(([m, f]) => `${m} ${f}`).join(" ");
    const plotWords = h("input", { id: "w2v-plot-words", size: 80, value: PLANTED });
    const plotOut = h("div", { id: "w2v-plot" });

    const drawProjection = (p: Projection) => {
      clear(plotOut);
      plotOut.append(
        scatter(
          p.words.map((w, i) => ({ x: p.coords[i * 2], y: p.coords[i * 2 + 1], label: w, color: colourOf(w) })),
          {
            width: 720,
            height: 520,
            xLabel: `PC1 (${(p.explained[0] * 100).toFixed(1)}% of the variance of these words)`,
            yLabel: `PC2 (${(p.explained[1] * 100).toFixed(1)}%)`,
            title: `2-D PCA of ${p.words.length} word vectors (blue: male, red: female, dark: royal; green: countries, brown: capitals, violet: peoples)`,
          },
        ),
      );
      plotOut.dataset.points = String(p.words.length);
    };
    const replot = async (g?: number) => {
      if (stale(g)) return;
      try {
        const words = plotWords.value.split(/[\s,]+/).filter(Boolean);
        const p = await compute.run((api) => api.project(words));
        if (!stale(g)) drawProjection(p);
      } catch (e) {
        if (!stale(g)) showError(plotOut, e);
      }
    };

    // which vectors the worker holds: a training or a load begun since a display started makes that
    // display stale (its queries would reach a worker whose vectors are gone), so it stops quietly
    let vecGen = 0;
    const stale = (g: number | undefined) => g !== undefined && g !== vecGen;

    const showNeighbours = async (g?: number) => {
      if (stale(g)) return;
      try {
        const r = await compute.run((api) => api.neighbours(query.value, 8));
        if (stale(g)) return;
        clear(nnOut);
        nnOut.append(
          table(
            ["neighbour", "cosine"],
            r.map((n) => [n.word, n.similarity]),
            "w2v-nn-table",
          ),
        );
      } catch (e) {
        if (!stale(g)) showError(nnOut, e);
      }
    };
    const showAnalogy = async (g?: number) => {
      if (stale(g)) return;
      try {
        const r: Neighbours = await compute.run((api) => api.analogy(aIn.value, bIn.value, cIn.value, 5));
        if (stale(g)) return;
        clear(anOut);
        anOut.append(
          table(
            [`${aIn.value} : ${bIn.value} :: ${cIn.value} : ?`, "cosine"],
            r.map((n) => [n.word, n.similarity]),
            "w2v-analogy-table",
          ),
        );
      } catch (e) {
        if (!stale(g)) showError(anOut, e);
      }
    };
    ask.append(
      h("h3", {}, "Nearest neighbours"),
      h(
        "div",
        { class: "actions" },
        query,
        h("button", { id: "w2v-nn-run", onclick: () => void showNeighbours() }, "Find"),
      ),
      nnOut,
      h("h3", {}, "Analogy (3CosAdd: b − a + c)"),
      h(
        "div",
        { class: "actions" },
        aIn,
        " : ",
        bIn,
        " :: ",
        cIn,
        " : ?",
        h("button", { id: "w2v-analogy-run", onclick: () => void showAnalogy() }, "Solve"),
      ),
      anOut,
    );

    /** The vectors (trained here or loaded) are in the worker: show the plot, neighbours and analogy. */
    const showVectors = async (summary: string, vocab: number, g: number) => {
      if (stale(g)) return;
      clear(results);
      results.append(
        section(
          "Vectors",
          h("p", { class: "muted", id: "w2v-summary" }, summary),
          h(
            "div",
            { class: "actions" },
            h("label", {}, "words to plot (empty: all) ", plotWords),
            h("button", { id: "w2v-plot-run", onclick: () => void replot() }, "Plot"),
          ),
          plotOut,
        ),
      );
      ask.hidden = false;
      results.dataset.vocab = String(vocab);
      await replot(g);
      await showNeighbours(g);
      await showAnalogy(g);
    };

    train.addEventListener("click", async () => {
      const g = ++vecGen;
      clear(err);
      clear(results);
      ask.hidden = true;
      const losses: number[] = [];
      loss.draw(losses);
      bar.set(0, "starting…");
      train.disabled = true;
      stop.disabled = false;
      status.set("running", "training in the worker…");
      const req: TrainRequest = {
        corpus: corpusSel.value === "own" ? own.value : "builtin",
        sentences: num(sentences),
        model: model.value as "skipgram" | "cbow",
        dim: num(dim),
        window: num(win),
        negative: num(neg),
        epochs: num(epochs),
        minCount: num(minCount),
        seed: num(seed),
      };
      try {
        const r = await compute.run((api) =>
          api.trainWord2Vec(
            req,
            proxy((p: Word2VecProgress) => {
              bar.set(
                p.progress,
                `epoch ${Math.min(p.epoch + 1, p.epochs)}/${p.epochs} · ${thousands(p.wordsPerSec)} words/s`,
              );
              losses.push(p.loss);
              loss.draw(losses);
            }),
          ),
        );
        bar.set(1, `done · ${thousands(r.wordsPerSec)} words/s`);
        status.set("done", `trained ${r.vocab} vectors`);
        // the vectors' displays are built in tasks of their own, after this one has painted
        await nextTask();
        if (req.corpus === "builtin") {
          // the built-in corpus plants gendered pairs and capitals
          plotWords.value = PLANTED;
          query.value = "paris";
        }
        await showVectors(
          `${r.vocab} words × ${req.dim} dims from ${thousands(r.words)} training words in ${(r.ms / 1000).toFixed(1)} s; loss per epoch ${r.epochLoss.map((x) => x.toFixed(3)).join(" → ")}`,
          r.vocab,
          g,
        );
      } catch (e) {
        bar.set(0, "");
        status.set("error", "training failed or was stopped");
        showError(err, e);
      } finally {
        train.disabled = false;
        stop.disabled = true;
      }
    });
    stop.addEventListener("click", () => void compute.run((api) => api.stopTraining()));

    const loader = folderLoader<VectorsInfo>({
      id: "w2v-load",
      files: "vectors.bin (word2vec binary) or vectors.txt (word2vec text)",
      url: embeddedUrl("brown-word2vec"),
      autoload: true,
      load: (src, onProgress) => compute.run((api) => api.loadWordVectors(src, onProgress)),
      describe: (i) => `${i.vocab} word vectors × ${i.dim} dims loaded in ${i.ms.toFixed(0)} ms`,
      onLoaded: (i) => {
        // a training under way wins: its vectors are the ones the worker ends with
        if (train.disabled) return;
        plotWords.value = BROWN_PLOT;
        query.value = "money";
        void showVectors(`loaded: ${i.vocab} words × ${i.dim} dims (${i.file})`, i.vocab, ++vecGen);
      },
    });

    root.append(
      h("h2", {}, "Word embeddings (Word2Vec)"),
      h(
        "p",
        { class: "muted" },
        "The page opens on word vectors trained by the project on the Brown corpus; train your own below.",
      ),
      loader,
      h(
        "p",
        { class: "muted" },
        "Skip-gram or CBOW with negative sampling (@wasmformer/text on core's wasm kernels), trained in the worker. The built-in corpus is generated from templates over a small world (people and royalty of both genders, countries, capitals, peoples, animals, food): its structure is planted, the training is real.",
      ),
      h(
        "div",
        { class: "card form" },
        h("div", { class: "row" }, h("label", {}, "corpus ", corpusSel), h("label", {}, "sentences ", sentences)),
        own,
        h(
          "div",
          { class: "row" },
          h("label", {}, "model ", model),
          h("label", {}, "dim ", dim),
          h("label", {}, "window ", win),
          h("label", {}, "negatives ", neg),
          h("label", {}, "epochs ", epochs),
          h("label", {}, "min count ", minCount),
          h("label", {}, "seed ", seed),
        ),
        h("div", { class: "actions" }, train, stop),
        bar.el,
        loss.el,
        status.el,
        err,
      ),
      ask,
      results,
    );
  },
};
