/**
 * VLM page: opens on the embedded mini MiniGPT-4 (`@wasmformer/models` digits-minigpt4: the digits
 * ViT → Q-Former → projection → the Brown LM). Draw or pick a digit (or an image file), ask a
 * question; the answer streams in (MiniGPT-4 prompt, stops at the separator), with tokens/s; stop.
 * Any ViT → Q-Former → GPT-2 folder or MiniGPT-4 folder can be loaded instead.
 */
import { proxy } from "comlink";
import { compute } from "../client.js";
import { digitPad, type Gray, sampleDigits, sampleStrip } from "../digits-ui.js";
import { folderLoader } from "../loader.js";
import type { VlmInfo } from "../tasks/vlm.js";
import { clear, embeddedUrl, h, showError, statusLine } from "../ui.js";
import type { Page } from "./index.js";
import { samplingControls } from "./sampling.js";

export const vlmPage: Page = {
  id: "vlm",
  title: "VLM",
  mount(root) {
    let info: VlmInfo | undefined;
    let epoch = -1;
    let image: Blob | Gray | undefined;
    let imageKey = "";
    let drawings = 0;
    const imgFile = h("input", { type: "file", accept: "image/*", id: "vlm-image" });
    const preview = h("img", { id: "vlm-preview", alt: "", width: 160 });
    const drop = h("div", { class: "drop", id: "vlm-drop" }, "…or drop an image here");
    const question = h("input", { id: "vlm-question", size: 60, value: "what digit is this?" });
    const sampling = samplingControls("vlm", { seed: 1, seedSize: 5 });
    const ask = h("button", { id: "vlm-ask", disabled: true }, "Ask");
    const stop = h("button", { id: "vlm-stop", disabled: true }, "Stop");
    const rate = h("span", { id: "vlm-rate", class: "muted" });
    const status = statusLine();
    status.el.id = "vlm-answer-status";
    const err = h("div", {});
    const answer = h("div", { class: "stream", id: "vlm-answer" });

    const sync = () => {
      ask.disabled = !(info && epoch === compute.epoch && image);
    };
    compute.onRestart(sync);
    const setImage = (b: Blob) => {
      image = b;
      if (preview.src) URL.revokeObjectURL(preview.src);
      preview.src = URL.createObjectURL(b);
      imageKey = preview.src;
      sync();
    };
    // a drawing is read when asked; every change of it is a new picture (new features)
    const pad = digitPad("vlm", () => {
      image = pad.read();
      imageKey = `drawing-${++drawings}`;
      sync();
    });
    const strip = sampleStrip("vlm", (s) => pad.show(s.digit));
    void sampleDigits().then((all) => {
      const three = all.find((s) => s.label === 3);
      if (three && pad.empty && !image) pad.show(three.digit);
    });
    imgFile.addEventListener("change", () => imgFile.files?.[0] && setImage(imgFile.files[0]));
    drop.addEventListener("dragover", (e) => e.preventDefault());
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      const f = e.dataTransfer?.files?.[0];
      if (f) setImage(f);
    });

    ask.addEventListener("click", async () => {
      if (!image) return;
      clear(err);
      answer.textContent = "";
      const out = h("span", { id: "vlm-text" });
      answer.append(h("div", { class: "muted" }, `Q: ${question.value}`), h("span", { class: "muted" }, "A: "), out);
      ask.disabled = true;
      stop.disabled = false;
      status.set("running", "encoding the image and generating in the worker…");
      try {
        const r = await compute.run((api) =>
          api.askVlm(
            image as Blob | Gray,
            imageKey,
            { question: question.value, ...sampling.read() },
            proxy((text: string, tps: number) => {
              out.append(text);
              rate.textContent = `${tps.toFixed(1)} tokens/s`;
            }),
          ),
        );
        out.dataset.tokens = String(r.tokens);
        rate.textContent = `${r.tokens} tokens · ${r.tokensPerSecond.toFixed(1)} tokens/s · image encoded in ${r.imageMs.toFixed(0)} ms`;
        status.set("done", `finished: ${r.finishReason}`);
      } catch (e) {
        status.set("error", "failed");
        showError(err, e);
      } finally {
        stop.disabled = true;
        sync();
      }
    });
    stop.addEventListener("click", () => void compute.run((api) => api.stopVlm()));

    root.append(
      h("h2", {}, "Vision-language model"),
      h(
        "p",
        { class: "muted" },
        "A frozen ViT reads the image, a BLIP-2 Q-Former summarises it into query embeddings that a projection puts in the language model's input space, and the language model answers (@wasmformer/vlm, MiniGPT-4 prompt). The embedded model was trained here: only its Q-Former and projection, on generated questions about MNIST digits.",
      ),
      folderLoader<VlmInfo>({
        id: "vlm",
        files:
          'config.json (model_type "vit-qformer-gpt2"), model.safetensors, and tokenizer.json or vocab.json + merges.txt; or a MiniGPT-4 folder by URL (model_type "minigpt4", naming its ViT and LM folders)',
        url: embeddedUrl("digits-minigpt4"),
        autoload: true,
        load: (src, onProgress) => compute.run((api) => api.loadVlm(src, onProgress)),
        describe: (i) =>
          `VLM loaded: ViT ${i.visionLayers} layers (${i.imageSize.join("×")} px) → Q-Former ${i.qformerLayers} layers, ${i.queries} queries → LM ${i.textLayers} layers; ${i.loadMs.toFixed(0)} ms (files ${i.readMs.toFixed(0)} ms)`,
        onLoaded: (i) => {
          info = i;
          epoch = compute.epoch;
          sync();
        },
      }),
      h(
        "div",
        { class: "card" },
        h("h3", {}, "Image"),
        h("p", { class: "muted" }, "Draw a digit or pick a sample, or choose an image file."),
        h(
          "div",
          { class: "digit-row" },
          h(
            "div",
            {},
            pad.el,
            h("div", { class: "actions" }, h("button", { id: "vlm-clear", onclick: () => pad.clear() }, "Clear")),
          ),
          h("div", {}, imgFile, drop, preview),
        ),
        strip,
      ),
      h(
        "div",
        { class: "card form" },
        h("label", {}, "Question", question),
        sampling.row,
        h("div", { class: "actions" }, ask, stop, rate),
        status.el,
        err,
        answer,
      ),
    );
  },
};
