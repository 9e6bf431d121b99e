/**
 * ViT page: opens on the embedded digits ViT (`@wasmformer/models` digits-vit). Draw a digit (or pick
 * a sample MNIST digit): the prediction and the probabilities follow the drawing (throttled), with
 * the CLS-attention overlays per head and the mean attention distance per layer and head as a
 * scatter plot (as in fig. 7 of the ViT paper). Any checkpoint folder can be loaded instead, and an
 * image file classified. The Train page's model replaces the loaded one when it is used.
 */
import { compute } from "../client.js";
import { digitPad, sampleDigits, sampleStrip, trainedVit } from "../digits-ui.js";
import { folderLoader } from "../loader.js";
import type { VitInfo, VitResult } from "../tasks/vit.js";
import {
  clear,
  embeddedUrl,
  fmtBytes,
  fmtNum,
  h,
  nextTask,
  palette,
  ramp,
  scatter,
  showError,
  statusLine,
  table,
} from "../ui.js";
import type { Page } from "./index.js";

/** A synthetic test picture (sky, sun, house), drawn on the main thread in a few ms. */
async function sampleImage(): Promise<Blob> {
  const c = new OffscreenCanvas(224, 224);
  const g = c.getContext("2d") as OffscreenCanvasRenderingContext2D;
  const sky = g.createLinearGradient(0, 0, 0, 224);
  sky.addColorStop(0, "#5aa0e6");
  sky.addColorStop(1, "#d8ecff");
  g.fillStyle = sky;
  g.fillRect(0, 0, 224, 224);
  g.fillStyle = "#f5c518";
  g.beginPath();
  g.arc(170, 50, 24, 0, 2 * Math.PI);
  g.fill();
  g.fillStyle = "#3f8f3f";
  g.fillRect(0, 160, 224, 64);
  g.fillStyle = "#b5542e";
  g.fillRect(50, 110, 80, 60);
  g.fillStyle = "#7a2e17";
  g.beginPath();
  g.moveTo(40, 112);
  g.lineTo(90, 70);
  g.lineTo(140, 112);
  g.fill();
  return c.convertToBlob({ type: "image/png" });
}

/** The model input with one head's CLS map blended over it. */
function overlay(r: VitResult, l: number, hd: number, size: number, into?: HTMLCanvasElement): HTMLCanvasElement {
  const { width: w, height: hgt, rgba } = r.input;
  const [gh, gw] = r.grid;
  const N = gh * gw;
  const map = r.cls.subarray((l * r.heads + hd) * N, (l * r.heads + hd + 1) * N);
  let mx = 0;
  for (const v of map) mx = Math.max(mx, v);
  const src = new OffscreenCanvas(w, hgt);
  const sctx = src.getContext("2d") as OffscreenCanvasRenderingContext2D;
  sctx.putImageData(new ImageData(new Uint8ClampedArray(rgba), w, hgt), 0, 0);
  const scale = size / Math.max(w, hgt);
  const c = into ?? h("canvas", {});
  const cw0 = Math.round(w * scale);
  const ch0 = Math.round(hgt * scale);
  // resizing a canvas clears it (and lays the page out again): only when the size changes
  if (c.width !== cw0 || c.height !== ch0) [c.width, c.height] = [cw0, ch0];
  const ctx = c.getContext("2d") as CanvasRenderingContext2D;
  ctx.globalAlpha = 1;
  ctx.drawImage(src, 0, 0, c.width, c.height);
  ctx.globalAlpha = 0.55;
  const cw = c.width / gw;
  const ch = c.height / gh;
  for (let i = 0; i < gh; i++) {
    for (let j = 0; j < gw; j++) {
      ctx.fillStyle = ramp(mx > 0 ? map[i * gw + j] / mx : 0);
      ctx.fillRect(j * cw, i * ch, Math.ceil(cw), Math.ceil(ch));
    }
  }
  return c;
}

/**
 * Put `rows` into the body of the table in `slot` in place when it has that many rows and cells;
 * false when it has not (the caller builds a new table).
 */
function setRows(slot: HTMLElement, rows: readonly (readonly (string | number)[])[]): boolean {
  const body = slot.querySelector("tbody");
  if (!body || body.rows.length !== rows.length || rows.length === 0) return false;
  if ([...body.rows].some((tr, i) => tr.cells.length !== rows[i].length)) return false;
  rows.forEach((row, i) => {
    row.forEach((c, j) => {
      const text = typeof c === "number" ? fmtNum(c) : c;
      const cell = body.rows[i].cells[j];
      if (cell.textContent !== text) cell.textContent = text;
    });
  });
  return true;
}

/** Where a result is shown: top classes, mean attention distance, CLS overlays of one layer. */
function resultView(id: string, prebuild = false): { el: HTMLElement; show(r: VitResult): Promise<void> } {
  const el = h("div", { id: `${id}-out` });
  const layerSel = h("select", { id: `${id}-layer` });
  const maps = h("div", { class: "heats", id: `${id}-maps` });
  let result: VitResult | undefined;
  // one overlay per task, so the main thread never blocks for long
  const drawMaps = async () => {
    const r = result;
    if (!r) return;
    const l = Number(layerSel.value);
    // the same heads: draw into the canvases in place (no new elements, no layout)
    const old = [...maps.querySelectorAll("canvas")];
    if (old.length === r.heads) {
      for (let hd = 0; hd < r.heads; hd++) {
        await nextTask();
        if (r !== result) return;
        overlay(r, l, hd, 140, old[hd]);
        const cap = old[hd].nextElementSibling;
        if (cap) cap.textContent = `layer ${l} · head ${hd}`;
      }
      return;
    }
    const figs: HTMLElement[] = [];
    for (let hd = 0; hd < r.heads; hd++) {
      await nextTask();
      figs.push(h("figure", {}, overlay(r, l, hd, 140), h("figcaption", {}, `layer ${l} · head ${hd}`)));
    }
    if (r === result) maps.replaceChildren(...figs);
  };
  layerSel.addEventListener("change", () => void drawMaps());
  // the sections are built once; later results are drawn into them in place (few new elements,
  // little layout), as predictions follow a drawing
  const topSlot = h("div", {});
  const distPlot = h("div", {});
  const distTable = h("div", {});
  const sections = [
    h("section", { class: "card" }, h("h3", {}, "Top classes"), topSlot),
    h("section", { class: "card" }, h("h3", {}, "CLS attention per head"), h("label", {}, "layer ", layerSel), maps),
    h("section", { class: "card" }, h("h3", {}, "Mean attention distance"), distPlot, distTable),
  ];
  // the drawing's view is in the page from the start (hidden until its first result), so that the
  // first prediction does not build it
  if (prebuild) {
    el.append(...sections);
    el.hidden = true;
  }
  const show = async (r: VitResult) => {
    const keep = result && result.layers === r.layers ? layerSel.value : String(r.layers - 1);
    const sameShape = result && result.layers === r.layers && result.heads === r.heads;
    result = r;
    if (!sameShape) {
      clear(layerSel);
      for (let l = 0; l < r.layers; l++)
        layerSel.append(h("option", { value: l, selected: String(l) === keep }, `layer ${l}`));
    }
    const pts = [];
    for (let l = 0; l < r.layers; l++) {
      for (let hd = 0; hd < r.heads; hd++) {
        pts.push({
          x: l + (hd - (r.heads - 1) / 2) * 0.04,
          y: r.meanDistance[l * r.heads + hd],
          color: palette(hd, r.heads),
        });
      }
    }
    // rendered in steps (one task each) so that no single main-thread task grows long
    const topRows = r.top.map((t) => [t.index, t.label, t.prob] as (string | number)[]);
    if (!setRows(topSlot, topRows)) {
      topSlot.replaceChildren(
        r.top.length
          ? table(["class", "label", "probability"], topRows, `${id}-top`)
          : h("p", { class: "muted" }, "This checkpoint has no classifier head (features only)."),
      );
    }
    await nextTask();
    const plotOpts = {
      xLabel: "layer (network depth)",
      yLabel: "mean attention distance (px)",
      title: "one point per head, coloured by head",
      xTicks: Array.from({ length: r.layers }, (_, l) => l),
      yMin: 0,
    };
    const oldPlot = distPlot.querySelector("canvas") ?? undefined;
    const fig = scatter(pts, plotOpts, oldPlot);
    if (!oldPlot) distPlot.replaceChildren(fig);
    const distRows = Array.from({ length: r.layers }, (_, l) => [
      `${l}`,
      ...r.meanDistance.subarray(l * r.heads, (l + 1) * r.heads),
    ]);
    if (!setRows(distTable, distRows)) {
      distTable.replaceChildren(
        table(["layer", ...Array.from({ length: r.heads }, (_, i) => `head ${i}`)], distRows, `${id}-distance`),
      );
    }
    await nextTask();
    // (again after the page cleared the view or showed an error in it)
    if (!el.contains(topSlot)) el.replaceChildren(...sections);
    el.hidden = false;
    await drawMaps();
  };
  return { el, show };
}

/** The predicted digit and a bar per class, updated in place while the classes stay the same. */
function showProbabilities(slot: HTMLElement, r: VitResult): void {
  const best = r.top[0];
  const rows = [...r.top].sort((a, b) => a.index - b.index);
  const pred = slot.querySelector<HTMLElement>("#vit-prediction");
  const bars = slot.querySelectorAll<HTMLElement>(".prob");
  if (pred && bars.length === rows.length) {
    pred.textContent = best ? best.label : "?";
    pred.dataset.label = best?.label ?? "";
    rows.forEach((t, i) => {
      const [name, meter, pct] = bars[i].children as unknown as [HTMLElement, HTMLMeterElement, HTMLElement];
      name.textContent = t.label;
      meter.value = t.prob;
      pct.textContent = `${(100 * t.prob).toFixed(1)} %`;
    });
    return;
  }
  slot.replaceChildren(
    h(
      "div",
      { class: "probs" },
      h("p", { class: "prediction", id: "vit-prediction", "data-label": best?.label ?? "" }, best ? best.label : "?"),
      ...rows.map((t) =>
        h(
          "div",
          { class: "prob" },
          h("span", {}, t.label),
          h("meter", { min: 0, max: 1, value: t.prob }),
          h("span", { class: "muted" }, `${(100 * t.prob).toFixed(1)} %`),
        ),
      ),
    ),
  );
}

export const vitPage: Page = {
  id: "vit",
  title: "ViT",
  mount(root) {
    let info: VitInfo | undefined;
    let epoch = -1;
    let image: Blob | undefined;
    const imgFile = h("input", { type: "file", accept: "image/*", id: "vit-image" });
    const preview = h("img", { id: "vit-preview", alt: "", width: 160 });
    const sample = h("button", { id: "vit-sample" }, "Use a sample image");
    const run = h("button", { id: "vit-run", disabled: true }, "Classify");
    const status = statusLine();
    status.el.id = "vit-status";
    const view = resultView("vit");
    const out = view.el;
    const drop = h("div", { class: "drop", id: "vit-drop" }, "…or drop an image here");

    // ---- the drawing pad: predictions follow the drawing
    const digitStatus = statusLine();
    digitStatus.el.id = "vit-digit-status";
    const probs = h("div", { id: "vit-probs" });
    const digitView = resultView("vit-digit", true);
    const digitErr = h("div", {});
    let busy = false;
    let again = false;
    const ready = () => !!info && epoch === compute.epoch && !!info.classifier;
    const predict = async () => {
      if (!ready() || pad.empty) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      digitStatus.set("running", "classifying in the worker…");
      try {
        const g = pad.read();
        performance.mark("vit-classify");
        const r = await compute.run((api) => api.classifyDigit(g.gray, g.width, g.height));
        performance.mark("vit-classified");
        showProbabilities(probs, r);
        // the first prediction after opening the page, for the e2e run's time-to-first-prediction
        if (!root.dataset.firstPrediction) root.dataset.firstPrediction = performance.now().toFixed(0);
        await digitView.show(r);
        clear(digitErr);
        digitStatus.set("done", `${r.top[0]?.label} · ${r.ms.toFixed(0)} ms in the worker`);
        digitStatus.el.dataset.runs = String(Number(digitStatus.el.dataset.runs ?? 0) + 1);
      } catch (e) {
        digitStatus.set("error", "failed");
        showError(digitErr, e);
      } finally {
        busy = false;
        if (again) {
          again = false;
          void predict();
        }
      }
    };
    const pad = digitPad("vit", () => void predict());
    const clearBtn = h("button", { id: "vit-clear", onclick: () => pad.clear() }, "Clear");
    const strip = sampleStrip("vit", (s) => pad.show(s.digit));
    // open on a sample "7", so that the first prediction needs no input
    void sampleDigits().then((all) => {
      const seven = all.find((s) => s.label === 7);
      // its own task: the strip's thumbnails are drawn in others
      if (seven) setTimeout(() => pad.empty && pad.show(seven.digit), 0);
    });

    const sync = () => {
      run.disabled = !(info && epoch === compute.epoch && image);
    };
    compute.onRestart(sync);
    const setImage = (b: Blob) => {
      image = b;
      preview.src = URL.createObjectURL(b);
      sync();
    };
    imgFile.addEventListener("change", () => imgFile.files?.[0] && setImage(imgFile.files[0]));
    sample.addEventListener("click", async () => setImage(await sampleImage()));
    drop.addEventListener("dragover", (e) => e.preventDefault());
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      const f = e.dataTransfer?.files?.[0];
      if (f) setImage(f);
    });

    run.addEventListener("click", async () => {
      if (!image) return;
      status.set("running", "classifying in the worker…");
      clear(out);
      try {
        const r = await compute.run((api) => api.classifyImage(image as Blob));
        await view.show(r);
        status.set("done", `classified in ${r.ms.toFixed(0)} ms (worker) · patch grid ${r.grid[0]}×${r.grid[1]}`);
      } catch (e) {
        status.set("error", "failed");
        showError(out, e);
      }
    });

    const describe = (i: VitInfo) =>
      `ViT loaded: ${i.layers} layers, ${i.heads} heads, d=${i.hidden}, ${i.imageSize.join("×")} px, patch ${i.patchSize}, ${i.classifier ? `${i.labels} classes` : "no classifier"}, ${fmtBytes(i.weightBytes)} of weights, ${i.loadMs.toFixed(0)} ms (files ${i.readMs.toFixed(0)} ms)`;
    const modelNote = h("p", { class: "muted", id: "vit-model" });
    const loaded = (i: VitInfo, what: string) => {
      info = i;
      epoch = compute.epoch;
      modelNote.textContent = what;
      sync();
      void predict();
    };
    // the Train page hands its model over
    const fromTrain = (i: VitInfo) =>
      loaded(i, `model: trained on the Train page (${i.layers} layers, ${i.heads} heads)`);
    window.addEventListener("wasmformer:vit-trained", (e) => fromTrain((e as CustomEvent<VitInfo>).detail));
    const trained = trainedVit.info && trainedVit.epoch === compute.epoch ? trainedVit.info : undefined;
    if (trained) queueMicrotask(() => fromTrain(trained));

    root.append(
      h("h2", {}, "Vision Transformer"),
      folderLoader<VitInfo>({
        id: "vit",
        files: "config.json, model.safetensors, preprocessor_config.json",
        url: embeddedUrl("digits-vit"),
        autoload: !trained,
        load: (src, onProgress) => compute.run((api) => api.loadVit(src, onProgress)),
        describe,
        onLoaded: (i) => {
          performance.mark("vit-loaded");
          loaded(i, "model: the loaded checkpoint");
        },
      }),
      modelNote,
      h(
        "div",
        { class: "card" },
        h("h3", {}, "Draw a digit"),
        h("p", { class: "muted" }, "Draw with the mouse, a pen or a finger, or pick a sample MNIST digit."),
        h("div", { class: "digit-row" }, h("div", {}, pad.el, h("div", { class: "actions" }, clearBtn)), probs),
        strip,
        digitStatus.el,
        digitErr,
        digitView.el,
      ),
      h(
        "div",
        { class: "card" },
        h("h3", {}, "Image"),
        h("div", { class: "actions" }, imgFile, sample, run),
        drop,
        preview,
      ),
      status.el,
      out,
    );
  },
};
