// Our resamplers against the real thing: Pillow 9.4 `Image.resize` (every filter, down- and
// up-scaling) and PyTorch 1.13 `F.interpolate(mode="bicubic", align_corners=False)` with and without
// antialias. Golden values from test/fixtures/gen_resample.py (Debian python3-pil / python3-torch).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { interpolateBicubic, type PilFilter, resamplePil, resamplePilF32 } from "../src/resample.js";

interface Golden {
  image: { height: number; width: number; data: number[] };
  resize: { filter: PilFilter; height: number; width: number; data: number[] }[];
  grid: { height: number; width: number; data: number[] };
  interpolate: { antialias: boolean; height: number; width: number; data: number[] }[];
}
const g: Golden = JSON.parse(readFileSync(new URL("./fixtures/resample-golden.json", import.meta.url), "utf8"));

describe("Pillow Image.resize, byte for byte", () => {
  const src = Uint8Array.from(g.image.data);
  it.each(g.resize.map((r) => [r.filter, `${g.image.height}x${g.image.width}→${r.height}x${r.width}`, r] as const))(
    "%s %s",
    (_f, _s, r) => {
      const out = resamplePil(src, g.image.height, g.image.width, 3, r.height, r.width, r.filter);
      expect(Array.from(out)).toEqual(r.data);
    },
  );
});

describe("PyTorch bicubic interpolate (position embeddings)", () => {
  const grid = Float32Array.from(g.grid.data);
  it.each(g.interpolate.map((r) => [r.antialias ? "antialias" : "plain", `${r.height}x${r.width}`, r] as const))(
    "%s → %s",
    (_a, _s, r) => {
      const out = r.antialias
        ? resamplePilF32(grid, g.grid.height, g.grid.width, 1, r.height, r.width, "bicubic")
        : interpolateBicubic(grid, g.grid.height, g.grid.width, 1, r.height, r.width);
      expect(out.length).toBe(r.data.length);
      for (let i = 0; i < r.data.length; i++) expect(Math.abs(out[i]! - r.data[i]!)).toBeLessThan(2e-6);
    },
  );
});
