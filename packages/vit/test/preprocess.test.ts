// Image preprocessing (HF ViTImageProcessor semantics, Pillow resampling) against hand-computed values,
// and PNG/JPEG decoding of small generated files.
import { ConfigError, InputError, ParseError } from "@wasmformer/core";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { decodeImage, sniffFormat, toImageData } from "../src/image-io.js";
import { centerCrop, resizeOutputSize, toRgb, ViTImageProcessor } from "../src/image-processing.js";
import { interpolateBicubic, resamplePil, resamplePilF32 } from "../src/resample.js";

const row = (vals: number[]) => new Uint8Array(vals);

describe("Pillow resampling (8-bit)", () => {
  it("bilinear upscale 2 → 4: taps and round-half-up fixed point", () => {
    // centres (o + 0.5)·0.5: 0.25 → [a], 0.75 → .75a + .25b, 1.25 → .25a + .75b, 1.75 → [b]
    expect(Array.from(resamplePil(row([0, 200]), 1, 2, 1, 1, 4, "bilinear"))).toEqual([0, 50, 150, 200]);
    // .75·10 + .25·20 = 12.5 rounds to 13, like Pillow
    expect(Array.from(resamplePil(row([10, 20]), 1, 2, 1, 1, 4, "bilinear"))).toEqual([10, 13, 18, 20]);
  });

  it("bilinear downscale 4 → 2 widens the filter (antialias): weights 3/7, 3/7, 1/7", () => {
    expect(Array.from(resamplePil(row([0, 70, 140, 210]), 1, 4, 1, 1, 2, "bilinear"))).toEqual([50, 160]);
    // the same along y, and channels stay separate
    const col = row([0, 1, 70, 1, 140, 1, 210, 1]); // [4, 1, 2]
    expect(Array.from(resamplePil(col, 4, 1, 2, 2, 1, "bilinear"))).toEqual([50, 1, 160, 1]);
  });

  it("bicubic (a = −0.5) clips overshoot to 0…255, nearest picks ⌊(o + ½)·scale⌋ (6 → 3: 1, 3, 5)", () => {
    const out = resamplePil(row([0, 0, 255, 255]), 1, 4, 1, 1, 8, "bicubic");
    expect(Math.min(...out)).toBe(0);
    expect(Math.max(...out)).toBe(255);
    expect(Array.from(resamplePil(row([1, 2, 3, 4, 5, 6]), 1, 6, 1, 1, 3, "nearest"))).toEqual([2, 4, 6]);
    // float path without rounding: 4 → 2 bilinear = 50, 160 exactly
    const f = resamplePilF32(new Float32Array([0, 70, 140, 210]), 1, 4, 1, 1, 2, "bilinear");
    expect(f[0]).toBeCloseTo(50, 4);
    expect(f[1]).toBeCloseTo(160, 4);
  });

  it("same size is a copy", () => {
    const src = row([1, 2, 3, 4]);
    const out = resamplePil(src, 2, 2, 1, 2, 2, "bicubic");
    expect(Array.from(out)).toEqual([1, 2, 3, 4]);
    expect(out).not.toBe(src);
  });
});

describe("PyTorch bicubic (position embeddings)", () => {
  it("is the identity at the same size and matches cubic-convolution weights 1 → 2", () => {
    const g = new Float32Array([1, 2, 3, 4]);
    expect(Array.from(interpolateBicubic(g, 2, 2, 1, 2, 2))).toEqual([1, 2, 3, 4]);
    // 1-d 2 → 4: src = (o + .5)/2 − .5 = −.25, .25, .75, 1.25; borders clamp
    const out = interpolateBicubic(new Float32Array([0, 1]), 1, 2, 1, 1, 4);
    const A = -0.75;
    const c1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
    const c2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    // o = 1: t = .25, taps at −1, 0, 1, 2 → values 0, 0, 1, 1
    expect(out[1]).toBeCloseTo(c1(0.75) + c2(1.75), 6);
    // o = 0: t = .75, taps at −2, −1, 0, 1 → values 0, 0, 0, 1: only the last weight, cc2(2 − .75)
    expect(out[0]).toBeCloseTo(c2(1.25), 6);
    expect(out[3]).toBeCloseTo(1 - c2(1.25), 6);
  });
});

describe("HF geometry: resize output size and center crop", () => {
  it("shortest_edge keeps the aspect ratio (int truncation)", () => {
    expect(resizeOutputSize({ shortest_edge: 50 }, 100, 200)).toEqual([50, 100]);
    expect(resizeOutputSize({ shortest_edge: 224 }, 300, 200)).toEqual([336, 224]);
    expect(resizeOutputSize({ shortest_edge: 224 }, 333, 500)).toEqual([224, 336]);
    expect(resizeOutputSize({ height: 7, width: 9 }, 1, 1)).toEqual([7, 9]);
  });

  it("center crop takes (orig − crop) // 2 and pads with zeros when larger", () => {
    const img = Uint8Array.from({ length: 25 }, (_, i) => i); // 5x5, 1 channel
    expect(Array.from(centerCrop(img, 5, 5, 1, 2, 2))).toEqual([6, 7, 11, 12]);
    // 5 → 2 leaves 3: HF floors (offset 1), torchvision rounds half to even (round(1.5) = 2)
    expect(Array.from(centerCrop(img, 5, 5, 1, 2, 2, "round"))).toEqual([12, 13, 17, 18]);
    // 4 → 1 leaves 3 as well; 6 → 1 leaves 5: round(2.5) = 2
    const six = Uint8Array.from({ length: 6 }, (_, i) => i);
    expect(Array.from(centerCrop(six, 1, 6, 1, 1, 1, "round"))).toEqual([2]);
    expect(Array.from(centerCrop(Uint8Array.from([1, 2, 3, 4]), 2, 2, 1, 4, 4))).toEqual([
      0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0,
    ]);
  });
});

describe("ViTImageProcessor", () => {
  it("RGBA → resize → rescale → normalize → [B, 3, H, W]", () => {
    // 1x2 RGBA image: left pixel (0, 255, 51), right (200, 255, 51); alpha ignored
    const img = { data: new Uint8ClampedArray([0, 255, 51, 9, 200, 255, 51, 77]), width: 2, height: 1 };
    const p = ViTImageProcessor.fromConfig({ size: { height: 1, width: 4 }, resample: 2 });
    const x = p.preprocess(img);
    expect(x.shape).toEqual([1, 3, 1, 4]);
    // R channel: [0, 50, 150, 200] / 255, then (v − .5) / .5
    const r = Array.from(x.data.subarray(0, 4));
    for (const [i, v] of [0, 50, 150, 200].entries()) expect(r[i]).toBeCloseTo((v / 255 - 0.5) / 0.5, 6);
    expect(Array.from(x.data.subarray(4, 8))).toEqual([1, 1, 1, 1]); // G = 255 → 1
    const imagenet = ViTImageProcessor.fromConfig({
      do_resize: false,
      image_mean: [0.485, 0.456, 0.406],
      image_std: [0.229, 0.224, 0.225],
    });
    const y = imagenet.preprocess({ data: new Uint8Array([51, 51, 51]), width: 1, height: 1, channels: 3 });
    expect(y.data[0]).toBeCloseTo((0.2 - 0.485) / 0.229, 5);
    expect(y.data[2]).toBeCloseTo((0.2 - 0.406) / 0.225, 5);
  });

  it("shortest-edge resize + center crop (DeiT/timm style), grey input, batches", () => {
    const p = ViTImageProcessor.fromConfig({
      size: { shortest_edge: 4 },
      do_center_crop: true,
      crop_size: 4,
      resample: 3,
      do_normalize: false,
      do_rescale: false,
    });
    const grey = { data: new Uint8Array(8 * 16).fill(100), width: 16, height: 8, channels: 1 };
    const x = p.preprocess([grey, grey]);
    expect(x.shape).toEqual([2, 3, 4, 4]);
    expect(Array.from(new Set(x.data))).toEqual([100]);
  });

  it("typed errors for bad images and bad configs", () => {
    const p = ViTImageProcessor.fromConfig({});
    expect(() => p.preprocess({ data: new Uint8Array(12), width: 2, height: 2, channels: 2 })).toThrow(InputError);
    expect(() => p.preprocess({ data: new Uint8Array(12), width: 2, height: 2 })).toThrow(/looks like 3 channels/);
    expect(() => p.preprocess({ data: new Uint8Array(4), width: 0, height: 1 })).toThrow(InputError);
    expect(() => p.preprocess({ data: new Float32Array(4) as unknown as Uint8Array, width: 1, height: 1 })).toThrow(
      InputError,
    );
    expect(() => p.preprocess([])).toThrow(InputError);
    const se = ViTImageProcessor.fromConfig({ size: { shortest_edge: 4 } });
    const a = { data: new Uint8Array(4 * 8 * 4), width: 8, height: 4 };
    const b = { data: new Uint8Array(4 * 4 * 4), width: 4, height: 4 };
    expect(() => se.preprocess([a, b])).toThrow(/cannot batch/);
    expect(() => ViTImageProcessor.fromConfig({ resample: 9 })).toThrow(ConfigError);
    expect(() => ViTImageProcessor.fromConfig({ size: "big" })).toThrow(ConfigError);
    expect(() => ViTImageProcessor.fromConfig({ image_std: [1, 0, 1] })).toThrow(ConfigError);
    expect(() => ViTImageProcessor.fromConfig({ image_mean: [1, 2] })).toThrow(ConfigError);
    expect(toRgb({ data: new Uint8Array([1, 2, 3, 4]), width: 1, height: 1 }).rgb).toEqual(new Uint8Array([1, 2, 3]));
  });
});

describe("PNG / JPEG decoding (Node: pngjs, jpeg-js)", () => {
  const W = 5;
  const H = 3;
  const rgba = new Uint8Array(W * H * 4);
  for (let i = 0; i < W * H; i++) rgba.set([i * 10, 255 - i * 10, 128, 255], i * 4);

  it("PNG round trip is exact", async () => {
    const png = new PNG({ width: W, height: H });
    png.data.set(rgba);
    const bytes = new Uint8Array(PNG.sync.write(png));
    expect(sniffFormat(bytes)).toBe("png");
    const img = await decodeImage(bytes);
    expect([img.width, img.height, img.channels]).toEqual([W, H, 4]);
    expect(Array.from(img.data)).toEqual(Array.from(rgba));
    expect((await toImageData(bytes.buffer.slice(0) as ArrayBuffer)).width).toBe(W);
  });

  it("JPEG decodes to RGBA close to the source (flat colour)", async () => {
    const flat = new Uint8Array(16 * 16 * 4);
    for (let i = 0; i < 256; i++) flat.set([200, 40, 90, 255], i * 4);
    const bytes = new Uint8Array(jpeg.encode({ data: flat, width: 16, height: 16 }, 95).data);
    expect(sniffFormat(bytes)).toBe("jpeg");
    const img = await decodeImage(bytes);
    expect([img.width, img.height]).toEqual([16, 16]);
    for (let i = 0; i < 256; i++) {
      expect(Math.abs(img.data[i * 4]! - 200)).toBeLessThanOrEqual(3);
      expect(Math.abs(img.data[i * 4 + 1]! - 40)).toBeLessThanOrEqual(3);
      expect(Math.abs(img.data[i * 4 + 2]! - 90)).toBeLessThanOrEqual(3);
      expect(img.data[i * 4 + 3]).toBe(255);
    }
  });

  it("corrupt or unknown files are typed errors", async () => {
    await expect(decodeImage(new Uint8Array([1, 2, 3, 4]))).rejects.toThrow(InputError);
    const png = new PNG({ width: 2, height: 2 });
    const good = new Uint8Array(PNG.sync.write(png));
    await expect(decodeImage(good.subarray(0, good.length - 20))).rejects.toThrow(ParseError);
    await expect(decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0, 0, 0]))).rejects.toThrow(ParseError);
    // a huge declared PNG size is refused before inflating
    const huge = good.slice();
    new DataView(huge.buffer).setUint32(16, 100000);
    new DataView(huge.buffer).setUint32(20, 100000);
    await expect(decodeImage(huge)).rejects.toThrow(/maxMegapixels/);
  });
});

describe("browser image objects (stand-ins for ImageBitmap / OffscreenCanvas / canvas)", () => {
  // Node has no canvas: minimal fakes with the DOM's shape check the code paths, not a browser
  const pixels = new Uint8ClampedArray([1, 2, 3, 255, 4, 5, 6, 255]);
  class FakeCtx {
    drawn: unknown;
    constructor(
      readonly w: number,
      readonly h: number,
    ) {}
    drawImage(img: unknown) {
      this.drawn = img;
    }
    getImageData(_x: number, _y: number, w: number, h: number) {
      return { data: pixels, width: w, height: h };
    }
  }
  class FakeOffscreenCanvas {
    ctx: FakeCtx;
    constructor(
      readonly width: number,
      readonly height: number,
    ) {
      this.ctx = new FakeCtx(width, height);
    }
    getContext(id: string) {
      return id === "2d" ? this.ctx : null;
    }
  }
  class FakeImageBitmap {
    constructor(
      readonly width: number,
      readonly height: number,
    ) {}
  }

  it("reads an OffscreenCanvas and an ImageBitmap through a 2d context", async () => {
    const g = globalThis as Record<string, unknown>;
    const saved = [g.OffscreenCanvas, g.ImageBitmap];
    g.OffscreenCanvas = FakeOffscreenCanvas;
    g.ImageBitmap = FakeImageBitmap;
    try {
      const fromCanvas = await toImageData(new FakeOffscreenCanvas(2, 1) as unknown as OffscreenCanvas);
      expect([fromCanvas.width, fromCanvas.height, fromCanvas.channels]).toEqual([2, 1, 4]);
      expect(Array.from(fromCanvas.data)).toEqual(Array.from(pixels));
      const fromBitmap = await toImageData(new FakeImageBitmap(2, 1) as unknown as ImageBitmap);
      expect([fromBitmap.width, fromBitmap.height]).toEqual([2, 1]);
      const p = ViTImageProcessor.fromConfig({ do_resize: false, do_normalize: false, do_rescale: false });
      expect(Array.from(p.preprocess(fromBitmap).data)).toEqual([1, 4, 2, 5, 3, 6]);
      const webgl = { width: 1, height: 1, getContext: () => null };
      await expect(toImageData(webgl)).rejects.toThrow(InputError);
    } finally {
      [g.OffscreenCanvas, g.ImageBitmap] = saved;
    }
  });

  it("rejects what is not an image", async () => {
    await expect(toImageData(42 as unknown as Uint8Array)).rejects.toThrow(InputError);
  });
});
