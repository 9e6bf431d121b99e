/**
 * Attention page: per-layer, per-head heatmaps of a loaded GPT-2's self-attention over a sentence
 * (causal: each token attends to itself and the tokens before it).
 */
import { compute } from "../client.js";
import type { AttentionResult } from "../tasks/gpt2.js";
import { clear, fmtNum, h, heatmap, nextFrame, nextTask, prepareLabels, showError, statusLine, table } from "../ui.js";
import { describeGpt2, gpt2Loader, gpt2State } from "./generate.js";
import type { Page } from "./index.js";

export const attentionPage: Page = {
  id: "attention",
  title: "Attention",
  mount(root) {
    const sentence = h("input", {
      id: "attn-sentence",
      size: 70,
      value: "The animal didn't cross the street because it was too tired",
    });
    const layerSel = h("select", { id: "attn-layer" });
    const querySel = h("select", { id: "attn-query" });
    const chips = h("div", { id: "attn-chips" });
    const run = h("button", { id: "attn-run", disabled: true }, "Show attention");
    const status = statusLine();
    status.el.id = "attn-status";
    const model = h(
      "p",
      { class: "muted", id: "attn-model" },
      "No model loaded: load a GPT-2 folder below or on the Text generation page.",
    );
    const out = h("div", { id: "attn-out" });
    let result: AttentionResult | undefined;

    // what one query token attends to, per head of the chosen layer: the tokens shaded by weight
    // one head's line a frame: a line is a few dozen shaped text runs
    let chipsGen = 0;
    const drawChips = async () => {
      const g = ++chipsGen;
      clear(chips);
      if (!result) return;
      const { tokens, heads, weights } = result;
      const T = tokens.length;
      const l = Number(layerSel.value);
      const q = Number(querySel.value);
      chips.append(h("h4", {}, `what "${tokens[q].trim()}" attends to (layer ${l})`));
      for (let hd = 0; hd < heads; hd++) {
        await nextFrame();
        if (g !== chipsGen) return;
        const row = weights.subarray((l * heads + hd) * T * T + q * T, (l * heads + hd) * T * T + (q + 1) * T);
        let mx = 0;
        for (const v of row) mx = Math.max(mx, v);
        const line = h("div", { class: "chips", "data-head": hd }, h("span", { class: "muted" }, `head ${hd}: `));
        tokens.forEach((t, j) => {
          const a = mx > 0 ? row[j] / mx : 0;
          line.append(
            h(
              "span",
              {
                class: "chip",
                title: fmtNum(row[j]),
                style: `background: rgba(37, 99, 235, ${a.toFixed(3)}); color: ${a > 0.55 ? "#fff" : "#111"}`,
              },
              t,
            ),
          );
        });
        chips.append(line);
      }
    };
    querySel.addEventListener("change", () => void drawChips());

    // one heatmap per task: the main thread never blocks for long, whatever the model size
    const draw = async () => {
      clear(out);
      clear(chips);
      if (!result) return;
      await nextFrame();
      const chipsDrawn = drawChips();
      const { tokens, heads, weights } = result;
      const T = tokens.length;
      const l = Number(layerSel.value);
      const labels = tokens.map((t) => t.replace(/\s/g, "·"));
      const cell = T > 24 ? 10 : 16;
      await prepareLabels(labels, cell);
      const grid = h("div", { class: "heats" });
      out.append(h("p", { class: "muted" }, `rows: queries, columns: keys; ${T} tokens`), grid);
      for (let hd = 0; hd < heads; hd++) {
        await nextTask();
        const off = (l * heads + hd) * T * T;
        grid.append(
          heatmap(weights.subarray(off, off + T * T), T, T, {
            rowLabels: labels,
            colLabels: labels,
            cell,
            title: `layer ${l} · head ${hd}`,
          }),
        );
      }
      // the key each query attends to most, per head (the numbers behind the heatmaps)
      const rows = labels.map((q, i) => [
        q,
        ...Array.from({ length: heads }, (_, hd) => {
          const row = weights.subarray((l * heads + hd) * T * T + i * T, (l * heads + hd) * T * T + (i + 1) * T);
          let best = 0;
          for (let j = 1; j < T; j++) if (row[j] > row[best]) best = j;
          return `${labels[best]} ${fmtNum(row[best])}`;
        }),
      ]);
      await chipsDrawn;
      await nextFrame();
      out.append(
        h("h4", {}, `strongest key per query, layer ${l}`),
        table(["query", ...Array.from({ length: heads }, (_, hd) => `head ${hd}`)], rows, "attn-argmax"),
      );
    };
    let drawn: Promise<void> = Promise.resolve();
    layerSel.addEventListener("change", () => {
      out.dataset.ready = "0";
      drawn = drawn.then(draw).then(() => {
        out.dataset.ready = "1";
      });
    });

    const sync = () => {
      const ok = gpt2State.loaded();
      run.disabled = !ok;
      if (ok && gpt2State.info) model.textContent = describeGpt2(gpt2State.info);
    };
    gpt2State.listeners.push(sync);
    compute.onRestart(sync);

    run.addEventListener("click", async () => {
      status.set("running", "computing in the worker…");
      try {
        const t0 = performance.now();
        result = await compute.run((api) => api.gpt2Attention(sentence.value));
        clear(layerSel);
        for (let l = 0; l < result.layers; l++) layerSel.append(h("option", { value: l }, `layer ${l}`));
        // default query: the last "it" (the sentence's pronoun), else the last token
        const toks = result.tokens;
        let qDefault = toks.length - 1;
        toks.forEach((t, i) => {
          if (t.trim().toLowerCase() === "it") qDefault = i;
        });
        clear(querySel);
        toks.forEach((t, i) => {
          querySel.append(h("option", { value: i, selected: i === qDefault }, `${i}: ${t.replace(/\s/g, "·")}`));
        });
        out.dataset.ready = "0";
        await (drawn = drawn.then(draw));
        out.dataset.ready = "1";
        status.set(
          "done",
          `${result.layers} layers × ${result.heads} heads in ${(performance.now() - t0).toFixed(0)} ms`,
        );
      } catch (e) {
        status.set("error", "failed");
        showError(out, e);
      }
    });

    root.append(
      h("h2", {}, "Attention"),
      h("p", { class: "muted" }, "Self-attention weights of a loaded GPT-2 checkpoint, per layer and head."),
      model,
      h(
        "div",
        { class: "card actions" },
        sentence,
        h("label", {}, "layer ", layerSel),
        h("label", {}, "query ", querySel),
        run,
      ),
      status.el,
      chips,
      out,
      gpt2Loader("attn-gpt2"),
    );
    sync();
  },
};
