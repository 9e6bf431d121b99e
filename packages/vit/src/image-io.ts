/**
 * Getting pixels: browser images (`ImageBitmap`, `OffscreenCanvas`, `HTMLCanvasElement`,
 * `HTMLImageElement`, `ImageData`) through a 2-D canvas, and PNG/JPEG files. In Node the files are
 * decoded by `pngjs` and `jpeg-js` (small, pure-JS, loaded with a dynamic `import()` so browser
 * bundles never include them); in browsers by `createImageBitmap`.
 */
import { InputError, ParseError } from "@wasmformer/core";
import type { RawImage } from "./image-processing.js";

/** Anything `toImageData` accepts. */
export type ImageInput =
  | RawImage
  | Uint8Array // encoded PNG or JPEG
  | ArrayBuffer
  | ImageBitmap
  | OffscreenCanvas
  | { readonly width: number; readonly height: number; getContext(id: "2d"): unknown }; // HTMLCanvasElement

const isNode = typeof process !== "undefined" && !!process.versions?.node;

/** The image format of encoded bytes, by signature. */
export function sniffFormat(bytes: Uint8Array): "png" | "jpeg" | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47)
    return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  return undefined;
}

interface PngModule {
  PNG: { sync: { read(b: Buffer): { width: number; height: number; data: Uint8Array } } };
}
interface JpegModule {
  decode(
    b: Uint8Array,
    o: { useTArray: true; formatAsRGBA: boolean; maxResolutionInMP: number; maxMemoryUsageInMB: number },
  ): { width: number; height: number; data: Uint8Array };
}

/** Limits for decoding untrusted files. */
export interface DecodeOptions {
  /** Largest image accepted, in megapixels (default 100). */
  maxMegapixels?: number;
}

/**
 * Decode PNG or JPEG bytes to RGBA (`{ data, width, height }`). Node: pngjs / jpeg-js; browsers:
 * `createImageBitmap`.
 * @throws ParseError for corrupt files, InputError for other formats or oversized images
 */
export async function decodeImage(bytes: Uint8Array | ArrayBuffer, opts: DecodeOptions = {}): Promise<RawImage> {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const fmt = sniffFormat(b);
  if (!fmt) throw new InputError("not a PNG or JPEG file (unknown signature)");
  const maxMP = opts.maxMegapixels ?? 100;
  if (!isNode && typeof createImageBitmap === "function") {
    let bmp: ImageBitmap;
    try {
      bmp = await createImageBitmap(new Blob([b as Uint8Array<ArrayBuffer>], { type: `image/${fmt}` }));
    } catch (e) {
      throw new ParseError(`could not decode ${fmt.toUpperCase()}: ${(e as Error).message}`);
    }
    return bitmapPixels(bmp);
  }
  let img: { width: number; height: number; data: Uint8Array };
  try {
    if (fmt === "png") {
      // IHDR: width and height at bytes 16..24, checked before inflating anything
      if (b.length >= 24) {
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const mp = (dv.getUint32(16) * dv.getUint32(20)) / 1e6;
        if (mp > maxMP) throw new InputError(`PNG is ${mp.toFixed(1)} MP, more than maxMegapixels ${maxMP}`);
      }
      const { PNG } = (await import(/* @vite-ignore */ "pngjs" as string)) as PngModule;
      img = PNG.sync.read(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    } else {
      const jpeg = (await import(/* @vite-ignore */ "jpeg-js" as string)) as JpegModule & { default?: JpegModule };
      const decode = (jpeg.decode ?? jpeg.default?.decode)!;
      img = decode(b, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: maxMP, maxMemoryUsageInMB: 1024 });
    }
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new ParseError(`could not decode ${fmt.toUpperCase()}: ${(e as Error)?.message ?? String(e)}`);
  }
  const data = new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  return { data, width: img.width, height: img.height, channels: 4 };
}

/** Read and decode a PNG/JPEG file (Node). */
export async function loadImage(path: string | URL, opts: DecodeOptions = {}): Promise<RawImage> {
  const { readFile } = await import(/* @vite-ignore */ "node:fs/promises" as string);
  return decodeImage(new Uint8Array(await readFile(path)), opts);
}

function canvas2d(w: number, h: number): { ctx: CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D } {
  if (typeof OffscreenCanvas === "undefined")
    throw new InputError("this environment has no OffscreenCanvas to read the image with");
  const c = new OffscreenCanvas(w, h);
  const ctx = c.getContext("2d", { willReadFrequently: true } as CanvasRenderingContext2DSettings);
  if (!ctx) throw new InputError("could not get a 2d context to read the image");
  return { ctx: ctx as OffscreenCanvasRenderingContext2D };
}

function bitmapPixels(bmp: ImageBitmap): RawImage {
  const { ctx } = canvas2d(bmp.width, bmp.height);
  ctx.drawImage(bmp, 0, 0);
  const id = ctx.getImageData(0, 0, bmp.width, bmp.height);
  return { data: id.data, width: id.width, height: id.height, channels: 4 };
}

/**
 * Any supported image → RGBA (or the given channels) pixels. Raw images are returned as they are
 * (checked later); encoded bytes are decoded; browser image objects are read through a canvas.
 */
export async function toImageData(input: ImageInput, opts: DecodeOptions = {}): Promise<RawImage> {
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) return decodeImage(input, opts);
  if (typeof ImageBitmap !== "undefined" && input instanceof ImageBitmap) return bitmapPixels(input);
  if (typeof input === "object" && input !== null && "getContext" in input && typeof input.getContext === "function") {
    const ctx = input.getContext("2d") as CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null;
    if (!ctx) throw new InputError("canvas has no 2d context (a WebGL canvas cannot be read this way)");
    const id = ctx.getImageData(0, 0, input.width, input.height);
    return { data: id.data, width: id.width, height: id.height, channels: 4 };
  }
  if (typeof input === "object" && input !== null && "data" in input) return input as RawImage;
  throw new InputError("unsupported image: pass { data, width, height }, PNG/JPEG bytes, an ImageBitmap or a canvas");
}
