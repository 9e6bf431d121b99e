/**
 * Digit widgets shared by the ViT, VLM and Train pages: a drawing pad (mouse, pen or touch through
 * pointer events; white ink on black, as MNIST) and the strip of sample MNIST digits served with the
 * app (`samples/digits.bin`, see vite-embedded.ts). Both hand out grey pixels (0 = background,
 * 255 = ink); the MNIST-style centring happens in the worker.
 */
import type { VitInfo } from "./tasks/vit.js";
import { h } from "./ui.js";

/**
 * The Train page's last model handed to the worker's ViT task (and the worker epoch it lives in):
 * a ViT page mounted later opens on it instead of the embedded checkpoint.
 */
export const trainedVit: { info?: VitInfo; epoch: number } = { epoch: -1 };

export const PAD = 280;
const S = 28;

export interface Gray {
  gray: Uint8Array;
  width: number;
  height: number;
}

export interface DigitPad {
  el: HTMLElement;
  canvas: HTMLCanvasElement;
  /** The drawing as grey pixels (`PAD × PAD`). */
  read(): Gray;
  /** Replace the drawing with a 28 × 28 digit, scaled up. */
  show(digit: Uint8Array): void;
  clear(): void;
  /** Whether anything is drawn. */
  readonly empty: boolean;
}

/**
 * A drawing pad; `onChange` runs while drawing (at most every `throttleMs`) and once when a stroke
 * ends, after `show` and after `clear`.
 */
export function digitPad(id: string, onChange: () => void, throttleMs = 120): DigitPad {
  const canvas = h("canvas", { width: PAD, height: PAD, id: `${id}-pad`, class: "pad" });
  const ctx = canvas.getContext("2d", { willReadFrequently: true }) as CanvasRenderingContext2D;
  let empty = true;
  const wipe = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, PAD, PAD);
    empty = true;
  };
  wipe();
  let last = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // throttled: at most one call per `throttleMs`, the last change always reported
  const changed = () => {
    const now = performance.now();
    if (timer) return;
    const wait = Math.max(0, last + throttleMs - now);
    timer = setTimeout(() => {
      timer = undefined;
      last = performance.now();
      onChange();
    }, wait);
  };
  let prev: { x: number; y: number } | undefined;
  const pos = (e: PointerEvent) => {
    const r = canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * PAD) / r.width, y: ((e.clientY - r.top) * PAD) / r.height };
  };
  const stroke = (p: { x: number; y: number }) => {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 22;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo((prev ?? p).x, (prev ?? p).y);
    ctx.lineTo(p.x + 0.01, p.y);
    ctx.stroke();
    prev = p;
    empty = false;
  };
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    prev = undefined;
    stroke(pos(e));
    changed();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!canvas.hasPointerCapture(e.pointerId)) return;
    stroke(pos(e));
    changed();
  });
  const end = (e: PointerEvent) => {
    if (!canvas.hasPointerCapture(e.pointerId)) return;
    canvas.releasePointerCapture(e.pointerId);
    prev = undefined;
    changed();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  // no scrolling or zooming while drawing with a finger
  canvas.style.touchAction = "none";

  const pad: DigitPad = {
    el: canvas,
    canvas,
    read() {
      const rgba = ctx.getImageData(0, 0, PAD, PAD).data;
      const gray = new Uint8Array(PAD * PAD);
      for (let i = 0; i < gray.length; i++) gray[i] = rgba[i * 4];
      return { gray, width: PAD, height: PAD };
    },
    show(digit) {
      const img = new ImageData(S, S);
      for (let i = 0; i < S * S; i++) {
        img.data.set([digit[i], digit[i], digit[i], 255], i * 4);
      }
      const small = new OffscreenCanvas(S, S);
      (small.getContext("2d") as OffscreenCanvasRenderingContext2D).putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(small, 0, 0, PAD, PAD);
      empty = false;
      changed();
    },
    clear() {
      wipe();
      changed();
    },
    get empty() {
      return empty;
    },
  };
  return pad;
}

export interface Sample {
  label: number;
  digit: Uint8Array;
}

let samples: Promise<Sample[]> | undefined;

/** The sample digits served with the app: 40 held-out MNIST digits, 4 per class. */
export function sampleDigits(): Promise<Sample[]> {
  samples ??= fetch(`${import.meta.env.BASE_URL}samples/digits.bin`)
    .then((r) => {
      if (!r.ok) throw new Error(`sample digits: HTTP ${r.status}`);
      return r.arrayBuffer();
    })
    .then((buf) => {
      const b = new Uint8Array(buf);
      const n = b.length / (1 + S * S);
      if (!Number.isInteger(n)) throw new Error(`sample digits: ${b.length} bytes is not a whole number of digits`);
      return Array.from({ length: n }, (_, i) => ({
        label: b[i],
        digit: b.subarray(n + i * S * S, n + (i + 1) * S * S),
      }));
    });
  return samples;
}

/** A 28 × 28 digit as a small canvas. */
export function digitThumb(digit: Uint8Array, size = 28): HTMLCanvasElement {
  const c = h("canvas", { width: S, height: S, class: "thumb" });
  c.style.width = `${size}px`;
  c.style.height = `${size}px`;
  const img = new ImageData(S, S);
  const px = new Uint32Array(img.data.buffer); // RGBA bytes as one little-endian word: 0xAABBGGRR
  for (let i = 0; i < S * S; i++) px[i] = 0xff000000 | (digit[i] * 0x010101);
  (c.getContext("2d") as CanvasRenderingContext2D).putImageData(img, 0, 0);
  return c;
}

/** The sample strip: a button per digit (`data-label`), `onPick` called with the chosen one. */
export function sampleStrip(id: string, onPick: (s: Sample) => void): HTMLElement {
  const el = h("div", { class: "samples", id: `${id}-samples` }, h("span", { class: "muted" }, "loading samples…"));
  void sampleDigits().then(
    async (all) => {
      await new Promise((r) => setTimeout(r, 0)); // not in the task that received the file
      el.replaceChildren();
      // a few thumbnails per task, so that building the strip never makes one long task
      for (let i = 0; i < all.length; i++) {
        const s = all[i];
        el.append(
          h(
            "button",
            {
              class: "sample",
              "data-label": s.label,
              "data-index": i,
              title: `MNIST ${s.label}`,
              onclick: () => onPick(s),
            },
            digitThumb(s.digit),
          ),
        );
        if (i % 4 === 3) await new Promise((r) => setTimeout(r, 0));
      }
    },
    (e) => {
      el.replaceChildren(h("span", { class: "error" }, String((e as Error).message)));
    },
  );
  return el;
}

/** The 28 × 28 digit as a grey PNG-ready canvas (white on black) for image-based models. */
export async function digitPng(g: Gray): Promise<Blob> {
  const c = new OffscreenCanvas(g.width, g.height);
  const img = new ImageData(g.width, g.height);
  for (let i = 0; i < g.gray.length; i++) img.data.set([g.gray[i], g.gray[i], g.gray[i], 255], i * 4);
  (c.getContext("2d") as OffscreenCanvasRenderingContext2D).putImageData(img, 0, 0);
  return c.convertToBlob({ type: "image/png" });
}
