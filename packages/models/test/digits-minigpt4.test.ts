/**
 * The mini MiniGPT-4 training script (scripts/train-digits-minigpt4.mjs): a few seeded steps on the
 * digits-vit and brown-lm folders lower the answer loss of a fixed batch, and what it saves loads
 * back in one call (`MiniGPT4.fromFolder`). The checkpoint itself is not in the repository yet: the
 * runs so far name 40–50 % of held-out digits, short of the 95 % the issue asks for.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, test } from "vitest";

const script = fileURLToPath(new URL("../scripts/train-digits-minigpt4.mjs", import.meta.url));

describe("digits-minigpt4 training script", () => {
  test("a few steps lower the loss of a fixed batch; the saved folder loads back", async () => {
    const out = mkdtempSync(join(tmpdir(), "wasmformer-minigpt4-train-"));
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["--experimental-wasm-relaxed-simd", script, "--max-steps", "5", "--batch", "8", "--eval", "1", "--out", out],
        { env: { ...process.env, WASMFORMER_THREADS: "1" }, timeout: 90_000 },
      );
      const m = /fixed-batch loss ([\d.]+) → ([\d.]+)/.exec(stdout);
      expect(m, stdout).not.toBeNull();
      expect(Number(m![2])).toBeLessThan(Number(m![1]));
      // the script reloads the saved folder with MiniGPT4.fromFolder and scores it
      expect(stdout).toMatch(/held-out accuracy of "what digit is this\?": [\d.]+ % of 10 digits/);
      const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
      expect(cfg.model_type).toBe("minigpt4");
      expect(cfg.qformer_config.encoder_hidden_size).toBe(64);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
