/**
 * Train page: fine-tune the embedded digits ViT (or train one of its shape from random weights) in
 * the worker, on digits drawn and labelled here plus the sample MNIST digits (optionally shifted by
 * up to 2 px each epoch). Live loss (per step)
 * and accuracy (per epoch) plots; Stop ends after the current step, Train again resumes from there
 * (same weights, same optimizer state). When a run ends the model goes to the ViT page.
 */
import { proxy } from "comlink";
import { compute } from "../client.js";
import { digitPad, digitThumb, type Gray, sampleDigits, trainedVit } from "../digits-ui.js";
import type { Progress } from "../tasks/folder.js";
import type { LabelledDigit, TrainEpoch, TrainStep } from "../tasks/train.js";
import type { VitInfo } from "../tasks/vit.js";
import { embeddedUrl, h, linePlot, showError, statusLine } from "../ui.js";
import type { Page } from "./index.js";

export const trainPage: Page = {
  id: "train",
  title: "Train",
  mount(root) {
    const mode = h(
      "select",
      { id: "train-mode" },
      h("option", { value: "fine-tune" }, "fine-tune the embedded digits ViT"),
      h("option", { value: "scratch" }, "train its shape from random weights"),
    );
    const lr = h("input", { id: "train-lr", type: "number", value: 1e-3, step: 1e-4, min: 1e-5, max: 0.1, size: 8 });
    const epochs = h("input", { id: "train-epochs", type: "number", value: 30, min: 1, max: 10000, size: 6 });
    const useSamples = h("input", { id: "train-samples", type: "checkbox", checked: true });
    const augment = h("input", { id: "train-shift", type: "checkbox", checked: true });
    const label = h(
      "select",
      { id: "train-label" },
      ...Array.from({ length: 10 }, (_, d) => h("option", { value: d }, String(d))),
    );
    const mine: { g: Gray; label: number }[] = [];
    const list = h("div", { class: "samples", id: "train-mine" });
    const pad = digitPad("train", () => {});
    const add = h("button", { id: "train-add" }, "Add with this label");
    const start = h("button", { id: "train-start" }, "Train");
    const stop = h("button", { id: "train-stop", disabled: true }, "Stop");
    const reset = h("button", { id: "train-reset" }, "Start over");
    const status = statusLine();
    status.el.id = "train-status";
    const err = h("div", {});
    const lossPlot = linePlot(420, 160, "training loss per step");
    const accPlot = linePlot(420, 160, "accuracy per epoch (on the digits as drawn)");
    lossPlot.el.id = "train-loss";
    accPlot.el.id = "train-acc";

    const losses: number[] = [];
    // for the end-to-end tests: the loss curve's values
    (window as unknown as { __trainLosses: number[] }).__trainLosses = losses;
    const accs: number[] = [];
    let setupEpoch = -1; // the worker epoch the session was set up in (-1: none)
    let running = false;
    let drawing = false;
    let last: TrainStep | undefined;
    // at most one redraw (status line and plots) per frame, however fast the steps come
    const redraw = () => {
      if (drawing) return;
      drawing = true;
      requestAnimationFrame(() => {
        drawing = false;
        if (last && running) {
          status.el.dataset.step = String(last.step);
          status.set("running", `step ${last.step} · loss ${last.loss.toFixed(4)}`);
        }
        lossPlot.draw(losses);
        accPlot.draw(accs);
      });
    };
    const invalidate = () => {
      setupEpoch = -1;
    };
    mode.addEventListener("change", invalidate);
    lr.addEventListener("change", invalidate);
    compute.onRestart(invalidate);

    add.addEventListener("click", () => {
      if (pad.empty) return;
      const d = Number(label.value);
      const g = pad.read();
      mine.push({ g, label: d });
      const small = new OffscreenCanvas(28, 28);
      const ctx = small.getContext("2d") as OffscreenCanvasRenderingContext2D;
      ctx.drawImage(pad.canvas, 0, 0, 28, 28);
      const px = ctx.getImageData(0, 0, 28, 28).data;
      const thumb = new Uint8Array(28 * 28).map((_, i) => px[i * 4]);
      list.append(h("span", { class: "sample", title: `labelled ${d}`, "data-label": d }, digitThumb(thumb)));
      pad.clear();
    });

    const dataset = async (): Promise<LabelledDigit[]> => {
      const out: LabelledDigit[] = mine.map((m) => ({
        gray: m.g.gray,
        width: m.g.width,
        height: m.g.height,
        label: m.label,
      }));
      if (useSamples.checked) {
        for (const s of await sampleDigits()) out.push({ gray: s.digit, width: 28, height: 28, label: s.label });
      }
      return out;
    };

    const sync = () => {
      start.disabled = running;
      stop.disabled = !running;
      reset.disabled = running;
      start.textContent = setupEpoch === compute.epoch && losses.length > 0 ? "Resume" : "Train";
    };

    start.addEventListener("click", async () => {
      if (running) return;
      running = true;
      sync();
      err.replaceChildren();
      try {
        const digits = await dataset();
        if (setupEpoch !== compute.epoch) {
          status.set("running", "loading the checkpoint…");
          losses.length = 0;
          accs.length = 0;
          redraw();
          const s = await compute.run((api) =>
            api.setupTraining(
              {
                start: mode.value as "fine-tune" | "scratch",
                checkpoint: { kind: "url", url: embeddedUrl("digits-vit") },
                lr: Number(lr.value),
                seed: 0,
              },
              proxy((p: Progress) => status.set("running", `${p.stage}…`)),
            ),
          );
          setupEpoch = compute.epoch;
          root.dataset.params = String(s.params);
        }
        status.set("running", `training on ${digits.length} digits…`);
        const r = await compute.run((api) =>
          api.runTraining(
            digits,
            Math.max(1, Math.floor(Number(epochs.value))),
            augment.checked ? 2 : 0,
            proxy((s: TrainStep) => {
              losses.push(s.loss);
              last = s;
              redraw();
            }),
            proxy((e: TrainEpoch) => {
              accs.push(e.accuracy);
              status.el.dataset.epoch = String(e.epoch);
              redraw();
            }),
          ),
        );
        status.el.dataset.step = String(r.step);
        // the ViT page classifies with the trained model from now on
        const info = await compute.run((api) => api.useTrainedVit());
        trainedVit.info = info;
        trainedVit.epoch = compute.epoch;
        window.dispatchEvent(new CustomEvent<VitInfo>("wasmformer:vit-trained", { detail: info }));
        const acc = accs.length ? ` · accuracy ${(100 * accs[accs.length - 1]).toFixed(1)} %` : "";
        status.set(
          "done",
          `${r.stopped === "stop" ? "stopped" : "finished"} at step ${r.step} (epoch ${r.epoch})${acc} · the ViT page now uses this model`,
        );
        status.el.dataset.stopped = r.stopped;
      } catch (e) {
        status.set("error", "training failed");
        showError(err, e);
      } finally {
        running = false;
        sync();
      }
    });
    stop.addEventListener("click", () => void compute.run((api) => api.stopTrainingVit()));
    reset.addEventListener("click", () => {
      invalidate();
      losses.length = 0;
      accs.length = 0;
      redraw();
      status.set("idle", "");
      sync();
    });

    // the plots' canvases get their 2-D contexts now, not in the middle of the first training steps
    lossPlot.draw(losses);
    accPlot.draw(accs);

    root.append(
      h("h2", {}, "Train the digits ViT"),
      h(
        "p",
        { class: "muted" },
        "Training runs in the worker with the project's own training engine (nn's fit, AdamW). Stop keeps the model; Resume continues from it. When a run ends, the ViT page uses the trained model.",
      ),
      h(
        "div",
        { class: "card" },
        h("h3", {}, "Your digits"),
        h(
          "div",
          { class: "digit-row" },
          pad.el,
          h(
            "div",
            {},
            h("label", {}, "label ", label),
            h("div", { class: "actions" }, add, h("button", { onclick: () => pad.clear() }, "Clear")),
          ),
        ),
        list,
        h("label", {}, useSamples, " also train on the 40 sample MNIST digits"),
      ),
      h(
        "div",
        { class: "card" },
        h("h3", {}, "Training"),
        h(
          "div",
          { class: "actions" },
          h("label", {}, "start ", mode),
          h("label", {}, "learning rate ", lr),
          h("label", {}, "epochs per run ", epochs),
          h("label", {}, augment, " shift the digits by up to 2 px each epoch"),
        ),
        h("div", { class: "actions" }, start, stop, reset),
        status.el,
        err,
        h("div", { class: "heats" }, lossPlot.el, accPlot.el),
      ),
    );
    sync();
  },
};
