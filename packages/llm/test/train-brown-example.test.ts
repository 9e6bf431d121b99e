// examples/train-brown.mjs end to end at a toy size (plain Node on the built packages): BpeTrainer
// tokenizer, fit with validation, samples, save, and AutoModelForCausalLM.fromPretrained reading
// the folder back with the same validation loss and the same greedy text.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SubwordTokenizer } from "@wasmformer/text";
import { afterAll, expect, test } from "vitest";

const SCRIPT = fileURLToPath(new URL("../examples/train-brown.mjs", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "train-brown-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("train-brown.mjs trains, samples, saves a folder that loads back identically", () => {
  for (const arch of ["gpt2", "llama"]) {
    const out = join(dir, arch);
    const log = execFileSync(
      process.execPath,
      [
        "--experimental-wasm-relaxed-simd",
        SCRIPT,
        ...["--arch", arch, "--docs", "10", "--vocab", "400", "--layers", "1", "--width", "32", "--heads", "2"],
        ...["--ctx", "32", "--batch", "8", "--epochs", "1", "--max-steps", "12", "--out", out],
      ],
      { encoding: "utf8", timeout: 90_000 },
    );
    const before = Number(/before training: validation loss ([\d.]+)/.exec(log)![1]);
    const after = Number(/done after 12 steps: validation loss ([\d.]+)/.exec(log)![1]);
    expect(after).toBeLessThan(before);
    expect(log).toMatch(/sample 4: "The United States/);
    const [, back, trained] = /fromPretrained: validation loss ([\d.]+) \(trained model ([\d.]+)\)/.exec(log)!;
    expect(back).toBe(trained);
    expect(log).toContain("greedy text identical");
    for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) expect(existsSync(join(out, f))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).model_type).toBe(arch);
    const tok = SubwordTokenizer.fromTokenizerJson(readFileSync(join(out, "tokenizer.json"), "utf8"));
    expect(tok.decode(tok.encodeIds("The jury said."))).toBe("The jury said.");
  }
}, 180_000);
