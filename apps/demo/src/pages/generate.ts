/**
 * Text generation page: load a GPT-2 folder, stream tokens (proxied callback) with tokens/s, stop
 * (cooperative, keeps the model) or cancel (terminates the worker).
 */
import { proxy } from "comlink";
import { compute } from "../client.js";
import { folderLoader } from "../loader.js";
import type { Gpt2Info } from "../tasks/gpt2.js";
import { clear, embeddedUrl, fmtBytes, h, showError, statusLine } from "../ui.js";
import type { Page } from "./index.js";
import { samplingControls } from "./sampling.js";

/** Loaded-model state shared by the generation and attention pages (one GPT-2 in the worker). */
export const gpt2State = {
  info: undefined as Gpt2Info | undefined,
  epoch: -1,
  /** the worker epoch in which a page started loading the embedded LM (one page does it) */
  embeddedEpoch: -1,
  listeners: [] as ((info: Gpt2Info) => void)[],
  loaded(): boolean {
    return this.info !== undefined && this.epoch === compute.epoch;
  },
};

export const describeGpt2 = (i: Gpt2Info) =>
  `GPT-2 loaded: ${i.layers} layers, ${i.heads} heads, d=${i.embd}, vocab ${i.vocab}, ${(i.params / 1e6).toFixed(2)} M parameters, heap ${fmtBytes(i.heapBytes)}, ${i.loadMs.toFixed(0)} ms (files ${i.readMs.toFixed(0)} ms)`;

/** The GPT-2 loader of a page; the first page shown loads the embedded Brown LM. */
export function gpt2Loader(id: string): HTMLElement {
  const autoload = !gpt2State.loaded() && gpt2State.embeddedEpoch !== compute.epoch;
  if (autoload) gpt2State.embeddedEpoch = compute.epoch;
  return folderLoader<Gpt2Info>({
    id,
    files: "config.json, model.safetensors, and tokenizer.json or vocab.json + merges.txt",
    url: embeddedUrl("brown-lm"),
    autoload,
    load: (src, onProgress) => compute.run((api) => api.loadGpt2(src, onProgress)),
    describe: describeGpt2,
    onLoaded: (info) => {
      gpt2State.info = info;
      gpt2State.epoch = compute.epoch;
      for (const f of gpt2State.listeners) f(info);
    },
  });
}

export const generatePage: Page = {
  id: "generate",
  title: "Text generation",
  mount(root) {
    const prompt = h("textarea", { id: "gen-prompt", rows: 3 }, "The meaning of life is");
    const sampling = samplingControls("gen", { seed: 42, seedSize: 6, maxLimit: 1024 });
    const out = h("div", { class: "stream", id: "gen-out" });
    const rate = h("span", { id: "gen-rate", class: "muted" });
    const status = statusLine();
    status.el.id = "gen-status";
    const err = h("div", {});
    const run = h("button", { id: "gen-run", disabled: true }, "Generate");
    const stop = h("button", { id: "gen-stop", disabled: true }, "Stop");
    const cancel = h(
      "button",
      { id: "gen-cancel", disabled: true, title: "terminate the worker (the model is unloaded)" },
      "Cancel (kill worker)",
    );

    const sync = () => {
      run.disabled = !gpt2State.loaded();
    };
    gpt2State.listeners.push(sync);
    compute.onRestart(sync);

    run.addEventListener("click", async () => {
      clear(err);
      out.textContent = "";
      const p = prompt.value;
      out.append(h("span", { class: "muted" }, p));
      const gen = h("span", { id: "gen-text" });
      out.append(gen);
      // the streamed text goes into one text node, at most once a frame however fast tokens come
      const text = document.createTextNode("");
      gen.append(text);
      let pending = "";
      let tokRate = "";
      let frame = 0;
      const flush = () => {
        frame = 0;
        text.appendData(pending);
        pending = "";
        rate.textContent = tokRate;
      };
      run.disabled = true;
      stop.disabled = false;
      cancel.disabled = false;
      status.set("running", "generating…");
      try {
        const r = await compute.run((api) =>
          api.generate(
            { prompt: p, ...sampling.read() },
            proxy((piece: string, tps: number) => {
              pending += piece;
              tokRate = `${tps.toFixed(1)} tokens/s`;
              frame ||= requestAnimationFrame(flush);
            }),
          ),
        );
        if (frame) cancelAnimationFrame(frame);
        flush();
        rate.textContent = `${r.tokens} tokens in ${(r.ms / 1000).toFixed(2)} s · ${r.tokensPerSecond.toFixed(1)} tokens/s`;
        status.set("done", `finished: ${r.finishReason}`);
        gen.dataset.tokens = String(r.tokens);
      } catch (e) {
        if (frame) cancelAnimationFrame(frame);
        flush();
        status.set("error", "generation failed");
        showError(err, e);
      } finally {
        stop.disabled = true;
        cancel.disabled = true;
        sync();
      }
    });
    stop.addEventListener("click", () => void compute.run((api) => api.stopGeneration()));
    cancel.addEventListener("click", () => compute.cancel());

    root.append(
      h("h2", {}, "Text generation (GPT-2)"),
      gpt2Loader("gpt2"),
      h(
        "div",
        { class: "card form" },
        h("label", {}, "Prompt", prompt),
        sampling.row,
        h("div", { class: "actions" }, run, stop, cancel, rate),
        status.el,
        err,
        out,
      ),
    );
    sync();
  },
};
