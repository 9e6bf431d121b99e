// The parity runner on its own generated cases, on broken ones, and on ../shared/fixtures when present.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tensor, writeSafetensors } from "@wasmformer/core";
import { afterAll, describe, expect, test } from "vitest";
import { generateOpsCases } from "../src/gen-ops.mjs";
import { main } from "../src/runner.mjs";

const tmp = mkdtempSync(join(tmpdir(), "parity-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(args) {
  const lines = [];
  const code = await main(args, (l) => lines.push(l));
  return { code, lines };
}

function writeCase(root, name, kind, extra = {}, files = {}) {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, bytes] of Object.entries(files)) writeFileSync(join(dir, f), bytes);
  writeFileSync(
    join(dir, "case.json"),
    JSON.stringify({ format_version: 1, kind, name, config: {}, files: { io: "io.safetensors" }, ...extra }),
  );
}

describe("parity runner", () => {
  test("generated ops cases pass on every backend", async () => {
    const root = join(tmp, "ops");
    const names = generateOpsCases(root, 7);
    for (const backend of ["ref", "auto"]) {
      const { code, lines } = await run([root, "--backend", backend]);
      expect(lines.filter((l) => l.startsWith("PASS")).length, lines.join("\n")).toBe(names.length);
      expect(lines.at(-1)).toBe(`${names.length} passed, 0 failed, 0 skipped`);
      expect(code).toBe(0);
    }
  });

  test("failures are reported, never dropped: unsupported kind, crash, hang, wrong output, bad case.json, error cases", async () => {
    const root = join(tmp, "bad");
    const io = writeSafetensors({ "expected.out": new Tensor(new Float32Array([1, 2]), [2]) });
    writeCase(root, "nosuchkind-a", "nosuchkind", {}, { "io.safetensors": io });
    writeCase(root, "test_crash-a", "test_crash", {}, { "io.safetensors": io });
    writeCase(root, "test_hang-a", "test_hang", {}, { "io.safetensors": io });
    writeCase(root, "test_wrong_output-a", "test_wrong_output", {}, { "io.safetensors": io });
    writeCase(root, "test_typed_error-err_a", "test_typed_error", { expect_error: "input" }, { "io.safetensors": io });
    writeCase(
      root,
      "test_wrong_output-err_b",
      "test_wrong_output",
      { expect_error: "input" },
      { "io.safetensors": io },
    );
    writeCase(root, "test_crash-err_c", "test_crash", { expect_error: "input" }, { "io.safetensors": io });
    writeCase(
      root,
      "ops-err_truncated",
      "ops",
      { expect_error: "safetensors", config: { op: "matmul" } },
      { "io.safetensors": io.slice(0, io.length - 3) },
    );
    mkdirSync(join(root, "zz-broken"));
    writeFileSync(join(root, "zz-broken", "case.json"), "{ not json");
    const kinds = new URL("./kinds-for-tests.mjs", import.meta.url).pathname;
    const { code, lines } = await run([root, "--kinds", kinds, "--timeout", "5"]);
    const line = (n) => lines.find((l) => l.split(" ")[1] === n) ?? "";
    expect(line("nosuchkind-a")).toBe("FAIL nosuchkind-a unsupported kind");
    expect(line("test_crash-a")).toMatch(/^FAIL test_crash-a unexpected TypeError/);
    expect(line("test_hang-a")).toMatch(/^FAIL test_hang-a timed out/);
    expect(line("test_wrong_output-a")).toMatch(/^FAIL test_wrong_output-a out: element 1 is 2.5, expected 2/);
    expect(line("test_typed_error-err_a")).toMatch(
      /^PASS test_typed_error-err_a rejected: ShapeError: test_typed_error/,
    );
    expect(line("test_wrong_output-err_b")).toMatch(/^FAIL .* produced outputs/);
    expect(line("test_crash-err_c")).toMatch(/^FAIL .* got unexpected TypeError/);
    expect(line("ops-err_truncated")).toMatch(/^PASS ops-err_truncated rejected: SafetensorsError/);
    expect(line("zz-broken")).toMatch(/^FAIL zz-broken unreadable case.json/);
    expect(lines.at(-1)).toBe("2 passed, 7 failed, 0 skipped");
    expect(code).toBe(1);
  }, 60_000);

  const shared = new URL("../../../../shared/fixtures", import.meta.url).pathname;
  test.runIf(existsSync(shared))(
    "every shared case of a registered kind passes",
    async () => {
      const owner = {
        ops: "core",
        tokenizer: "text",
        pad_sequences: "text",
        rnn: "nn",
        lstm: "nn",
        gru: "nn",
        mha: "nn",
        sdpa: "nn",
        positional_encoding: "nn",
        transformer_encoder_layer: "nn",
        transformer_decoder_layer: "nn",
        transformer: "nn",
        transformer_seq2seq: "nn",
        vit: "vit",
        gpt2: "llm",
        vlm: "vlm",
        llama: "llm",
        bert: "bert",
        train_step: "nn",
      };
      const { lines } = await run([shared]);
      const failures = lines.filter((l) => l.startsWith("FAIL") && !l.endsWith(" unsupported kind"));
      expect(failures, failures.join("\n")).toEqual([]);
      // a kind may be unsupported only while its package does not implement it yet: if the owner's
      // parity entry exports the kind, "unsupported" means the runner failed to load it
      for (const l of lines.filter((x) => x.endsWith(" unsupported kind"))) {
        const kind = l.split(" ")[1].replace(/-[^-]*$/, "");
        const pkg = owner[kind];
        expect(pkg, `unknown kind in ${l}`).toBeDefined();
        const entry = new URL(`../../../packages/${pkg}/dist/parity.js`, import.meta.url);
        const exported = existsSync(entry) ? Object.keys((await import(entry.href)).kinds ?? {}) : [];
        expect(exported, l).not.toContain(kind);
      }
      const m = JSON.parse(readFileSync(join(shared, "manifest.json"), "utf8"));
      expect(lines.length - 1).toBe(readdirSync(shared).filter((d) => existsSync(join(shared, d, "case.json"))).length);
      expect(Array.isArray(m.cases)).toBe(true);
    },
    600_000,
  );
});
