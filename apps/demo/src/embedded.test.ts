// The sample digits served with the app (vite-embedded.ts): 4 held-out MNIST digits per class.
import { describe, expect, it } from "vitest";
import { checkpointsDir, sampleDigits } from "../vite-embedded.js";

describe("served sample digits", () => {
  it("are 40 labelled 28 × 28 digits, 4 of each class, with ink", () => {
    const b = sampleDigits();
    expect(b.length).toBe(40 * (1 + 784));
    const labels = Array.from(b.subarray(0, 40));
    for (let d = 0; d < 10; d++) expect(labels.filter((l) => l === d).length).toBe(4);
    for (let i = 0; i < 40; i++) {
      const px = b.subarray(40 + i * 784, 40 + (i + 1) * 784);
      const ink = px.reduce((n, v) => n + (v > 128 ? 1 : 0), 0);
      expect(ink).toBeGreaterThan(20);
    }
  });

  it("the checkpoints come from the models package", () => {
    expect(checkpointsDir.replaceAll("\\", "/")).toMatch(/packages\/models\/checkpoints$/);
  });
});
