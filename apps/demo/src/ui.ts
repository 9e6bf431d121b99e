/**
 * Tiny DOM helpers for the demo (no framework): element builder, tables, progress bars, error
 * boxes, canvas heatmaps, line and scatter plots. Everything here runs on the main thread and is
 * cheap; all compute happens in the worker.
 */

type Attrs = Record<string, string | number | boolean | ((ev: Event) => void) | undefined>;
type Child = Node | string | number | null | undefined | false;

/** `h("button", { onclick }, "Run")` → an element. Attributes starting with `on` become listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (k === "class") el.className = String(v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children)
    if (c !== null && c !== undefined && c !== false) el.append(typeof c === "number" ? String(c) : c);
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.firstChild.remove();
}

/** A section with a heading and optional note. */
export function section(title: string, ...children: Child[]): HTMLElement {
  return h("section", { class: "card" }, h("h3", {}, title), ...children);
}

/** A table from a header row and body rows. */
export function table(
  head: readonly (string | number)[],
  rows: readonly (readonly (string | number)[])[],
  cls = "",
): HTMLTableElement {
  return h(
    "table",
    { class: cls },
    h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, String(c))))),
    h(
      "tbody",
      {},
      ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, typeof c === "number" ? fmtNum(c) : c)))),
    ),
  );
}

export function fmtNum(x: number): string {
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? x.toExponential(2) : x.toFixed(4).replace(/0+$/, "").replace(/\.$/, "");
}

/** An error box shown in the page (and returned to be appended). */
export function errorBox(err: unknown): HTMLElement {
  const e = err as { name?: string; message?: string };
  const name = e?.name && e.name !== "Error" ? `${e.name}: ` : "";
  return h("div", { class: "error", role: "alert" }, `${name}${e?.message ?? String(err)}`);
}

/** Replace the contents of `slot` with an error box. */
export function showError(slot: Element, err: unknown): void {
  console.error(err);
  clear(slot);
  slot.append(errorBox(err));
}

/** A labelled progress bar: `set(fraction, text)`. */
export function progressBar(label = ""): { el: HTMLElement; set(f: number, text?: string): void } {
  const bar = h("progress", { max: 1, value: 0 });
  const txt = h("span", { class: "muted" }, label);
  const el = h("div", { class: "progress" }, bar, txt);
  return {
    el,
    set(f: number, text?: string) {
      bar.value = Math.max(0, Math.min(1, f));
      if (text !== undefined) txt.textContent = text;
    },
  };
}

/** A file-size string. */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** RGB of v in [0, 1] on a perceptual-ish dark-blue → yellow ramp. */
function rampRgb(v: number): [number, number, number] {
  const t = Math.max(0, Math.min(1, v));
  const r = Math.round(255 * Math.min(1, Math.max(0, 1.6 * t - 0.4)));
  const g = Math.round(255 * Math.min(1, 0.15 + 0.85 * t));
  const b = Math.round(255 * Math.max(0, 0.55 - 0.55 * t) + 40 * (1 - t));
  return [r, g, b];
}

/** CSS colour for v in [0, 1] (the ramp of `heatmap`). */
export function ramp(v: number): string {
  const [r, g, b] = rampRgb(v);
  return `rgb(${r},${g},${b})`;
}

let strips = new Map<string, HTMLCanvasElement>();

/**
 * The labels along one side of a heatmap, `depth` pixels deep (right-aligned row labels, or column
 * labels written bottom-up), cached for the last few label sets.
 */
function labelStrip(labels: readonly string[], cell: number, depth: number, vertical: boolean): HTMLCanvasElement {
  const key = `${vertical}|${cell}|${depth}|${labels.join("\u0000")}`;
  const hit = strips.get(key);
  if (hit) return hit;
  const long = labels.length * cell;
  const c = h("canvas", vertical ? { width: long, height: depth } : { width: depth, height: long });
  const ctx = c.getContext("2d");
  if (ctx) {
    ctx.fillStyle = "#333";
    ctx.font = "10px sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = vertical ? "left" : "right";
    labels.forEach((l, i) => {
      if (!vertical) {
        ctx.fillText(l.slice(0, 11), depth - 4, i * cell + cell / 2);
        return;
      }
      ctx.save();
      ctx.translate(i * cell + cell / 2, depth - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(l.slice(0, 11), 0, 0);
      ctx.restore();
    });
  }
  if (strips.size >= 8) strips = new Map();
  strips.set(key, c);
  return c;
}

/**
 * Draw (and cache) a heatmap's row and column label strips, each in a task of its own: the first
 * heatmap of a set of labels then only copies them.
 */
export async function prepareLabels(labels: readonly string[], cell: number): Promise<void> {
  labelStrip(labels, cell, LABEL_DEPTH, false);
  await nextTask();
  labelStrip(labels, cell, LABEL_DEPTH, true);
}

const LABEL_DEPTH = 70;

/** A copy of a cached canvas (an element can stand in one place only). */
function copyOf(src: HTMLCanvasElement): HTMLCanvasElement {
  const c = h("canvas", { width: src.width, height: src.height });
  c.getContext("2d")?.drawImage(src, 0, 0);
  return c;
}

/**
 * Heatmap of a row-major `[rows, cols]` matrix with optional row/column labels. Values are scaled by
 * the matrix maximum (attention rows sum to 1). The cells are one pixel each on a `cols × rows`
 * canvas that CSS scales up without smoothing: the main thread writes O(cells) pixels and the
 * compositor does the scaling, however large the map is drawn.
 */
export function heatmap(
  data: ArrayLike<number>,
  rows: number,
  cols: number,
  opts: { rowLabels?: readonly string[]; colLabels?: readonly string[]; cell?: number; title?: string } = {},
): HTMLElement {
  const cell = opts.cell ?? 18;
  const depth = LABEL_DEPTH;
  const cells = h("canvas", { width: cols, height: rows, class: "cells" });
  cells.style.width = `${cols * cell}px`;
  cells.style.height = `${rows * cell}px`;
  let max = 0;
  for (let i = 0; i < rows * cols; i++) max = Math.max(max, data[i]);
  const img = new ImageData(cols, rows);
  const px = new Uint32Array(img.data.buffer); // RGBA bytes as one little-endian word: 0xAABBGGRR
  for (let k = 0; k < rows * cols; k++) {
    const [r, g, b] = rampRgb(max > 0 ? data[k] / max : 0);
    px[k] = 0xff000000 | (b << 16) | (g << 8) | r;
  }
  cells.getContext("2d")?.putImageData(img, 0, 0);
  // the labels are drawn once per set of labels and copied: every head of a layer shares them
  const grid = h(
    "div",
    { class: "heat-grid" },
    opts.colLabels && opts.rowLabels ? h("span", {}) : null,
    opts.colLabels ? copyOf(labelStrip(opts.colLabels, cell, depth, true)) : null,
    opts.rowLabels ? copyOf(labelStrip(opts.rowLabels, cell, depth, false)) : null,
    cells,
  );
  grid.style.gridTemplateColumns = opts.rowLabels ? `${depth}px auto` : "auto";
  return h("figure", { class: "heat" }, grid, opts.title ? h("figcaption", {}, opts.title) : null);
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * A simple line plot (e.g. the loss curve); returns the figure and an update function. It is an SVG
 * polyline, not a canvas: an update sets one attribute and two texts, and the browser rasterizes it
 * off the main thread (a canvas would be redrawn and copied to the compositor on every update).
 */
export function linePlot(
  width = 360,
  height = 160,
  label = "",
): { el: HTMLElement; draw(ys: readonly number[]): void } {
  const line = svg("polyline", { fill: "none", stroke: "#2563eb", "stroke-width": 1.5 });
  const hiText = svg("text", { x: 6, y: 12, "font-size": 10, fill: "#555" });
  const loText = svg("text", { x: 6, y: height - 6, "font-size": 10, fill: "#555" });
  const frame = svg("rect", { x: 0.5, y: 0.5, width: width - 1, height: height - 1, fill: "none", stroke: "#ccc" });
  const plot = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "plot" });
  plot.append(frame, line, hiText, loText);
  const cap = h("figcaption", {}, label);
  const draw = (ys: readonly number[]) => {
    if (ys.length < 1) {
      line.setAttribute("points", "");
      hiText.textContent = "";
      loText.textContent = "";
      cap.textContent = label;
      return;
    }
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const y of ys) {
      lo = Math.min(lo, y);
      hi = Math.max(hi, y);
    }
    if (hi === lo) hi = lo + 1;
    let pts = "";
    ys.forEach((y, i) => {
      const x = 4 + ((width - 8) * i) / Math.max(1, ys.length - 1);
      const yy = height - 4 - ((height - 8) * (y - lo)) / (hi - lo);
      pts += `${x.toFixed(1)},${yy.toFixed(1)} `;
    });
    line.setAttribute("points", pts);
    hiText.textContent = fmtNum(hi);
    loText.textContent = fmtNum(lo);
    cap.textContent = `${label} (last ${fmtNum(ys[ys.length - 1])})`;
  };
  return { el: h("figure", {}, plot, cap), draw };
}

/**
 * A scatter plot with optional point labels and colours; with `into` (a canvas of an earlier plot)
 * it is drawn again into that canvas, and its figure returned, instead of a new element.
 */
export function scatter(
  pts: readonly { x: number; y: number; label?: string; color?: string }[],
  opts: {
    width?: number;
    height?: number;
    xLabel?: string;
    yLabel?: string;
    title?: string;
    /** labelled x positions (default: the two ends) */
    xTicks?: readonly number[];
    /** lower end of the y axis (default: the smallest y) */
    yMin?: number;
  } = {},
  into?: HTMLCanvasElement,
): HTMLElement {
  const width = opts.width ?? 420;
  const height = opts.height ?? 320;
  const c = into ?? h("canvas", { width, height, class: "plot" });
  if (c.width !== width || c.height !== height) [c.width, c.height] = [width, height];
  const ctx = c.getContext("2d");
  ctx?.clearRect(0, 0, width, height);
  ctx?.save();
  if (ctx && pts.length > 0) {
    const pad = 44;
    let x0 = Number.POSITIVE_INFINITY;
    let x1 = Number.NEGATIVE_INFINITY;
    let y0 = Number.POSITIVE_INFINITY;
    let y1 = Number.NEGATIVE_INFINITY;
    for (const p of pts) {
      x0 = Math.min(x0, p.x);
      x1 = Math.max(x1, p.x);
      y0 = Math.min(y0, p.y);
      y1 = Math.max(y1, p.y);
    }
    if (opts.xTicks?.length) {
      x0 = Math.min(x0, ...opts.xTicks) - 0.3;
      x1 = Math.max(x1, ...opts.xTicks) + 0.3;
    }
    if (opts.yMin !== undefined) y0 = Math.min(y0, opts.yMin);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) y1 = y0 + 1;
    const X = (x: number) => pad + ((width - 2 * pad) * (x - x0)) / (x1 - x0);
    const Y = (y: number) => height - pad - ((height - 2 * pad) * (y - y0)) / (y1 - y0);
    ctx.strokeStyle = "#bbb";
    ctx.strokeRect(pad - 6.5, 6.5, width - 2 * pad + 12, height - pad);
    ctx.font = "10px sans-serif";
    ctx.fillStyle = "#555";
    if (opts.xTicks?.length) {
      ctx.textAlign = "center";
      for (const t of opts.xTicks) ctx.fillText(String(t), X(t), height - pad + 14);
    } else {
      ctx.fillText(fmtNum(x0), pad - 6, height - 8);
      ctx.textAlign = "right";
      ctx.fillText(fmtNum(x1), width - pad + 6, height - 8);
    }
    ctx.textAlign = "right";
    ctx.fillText(fmtNum(Number(y1.toPrecision(3))), pad - 8, 14);
    ctx.fillText(fmtNum(Number(y0.toPrecision(3))), pad - 8, height - pad);
    ctx.textAlign = "center";
    if (opts.xLabel) ctx.fillText(opts.xLabel, width / 2, height - 8);
    for (const p of pts) {
      ctx.fillStyle = p.color ?? "#2563eb";
      ctx.beginPath();
      ctx.arc(X(p.x), Y(p.y), 3, 0, 2 * Math.PI);
      ctx.fill();
      if (p.label) {
        ctx.fillStyle = "#222";
        ctx.textAlign = "left";
        ctx.fillText(p.label, X(p.x) + 4, Y(p.y) - 4);
      }
    }
    if (opts.yLabel) {
      ctx.save();
      ctx.translate(10, height / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "center";
      ctx.fillStyle = "#555";
      ctx.fillText(opts.yLabel, 0, 0);
      ctx.restore();
    }
  }
  ctx?.restore();
  if (into?.parentElement) return into.parentElement;
  return h("figure", {}, c, opts.title ? h("figcaption", {}, opts.title) : null);
}

/** Distinct colours for categories (heads, layers). */
export function palette(i: number, n: number): string {
  return `hsl(${Math.round((360 * i) / Math.max(1, n))}, 70%, 45%)`;
}

/** A status line for the page's state machine (idle / running / done / error) that tests read. */
export function statusLine(): {
  el: HTMLElement;
  set(state: "idle" | "running" | "done" | "error", text?: string): void;
} {
  const el = h("p", { class: "status", "data-state": "idle" });
  return {
    el,
    set(state, text = "") {
      el.dataset.state = state;
      el.textContent = text;
    },
  };
}

/** Yield to the event loop (so that rendering many figures never makes one long main-thread task). */
export function nextTask(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/**
 * Wait until the page has rendered a frame, then yield once more: DOM added before this is laid out
 * and painted in that frame, so what is added after it lands in a later frame (large displays
 * built piece by piece never make one long frame).
 */
export function nextFrame(): Promise<void> {
  return new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
}

/** The served folder of an embedded `@wasmformer/models` checkpoint (see vite-embedded.ts). */
export function embeddedUrl(name: string): string {
  return `${import.meta.env.BASE_URL}models/${name}/`;
}
