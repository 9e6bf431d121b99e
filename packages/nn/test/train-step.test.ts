// The train_step models of nn (mlp, lstm_classifier; FORMAT.md §6.17) through `runTrainStep`, on
// the shared cases (computed by PyTorch) and on every backend, compared as the parity runner does:
// each expected tensor within its per-tensor tolerance, else the case tolerance.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { caseFromFolder } from "@wasmformer/core/parity";
import { describe, expect, it } from "vitest";
import { runTrainStep, setParityRuntime } from "../src/parity.js";
import { backends, closeTo, FIXTURES } from "./helpers.js";

const bks = await backends();
const SHARED = ["train_step-mlp_sgd_momentum", "train_step-lstm_classifier_adamw"];

describe.each(bks)("train_step shared cases on $name", ({ make }) => {
  it.each(SHARED)("%s", async (name) => {
    setParityRuntime(make);
    const dir = join(FIXTURES, name);
    const json = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
    const c = caseFromFolder(dir);
    const result = await runTrainStep(c);
    if (!("tensors" in result)) throw new Error("tensor kind returned JSON");
    const io = await c.io();
    const names = io.names().filter((n) => n.startsWith("expected."));
    expect(names.length).toBeGreaterThan(0);
    for (const full of names) {
      const short = full.slice(9);
      const tol = json.tolerance.per_tensor?.[full] ?? json.tolerance.per_tensor?.[short] ?? json.tolerance;
      const e = io.get(full);
      const a = result.tensors[short];
      expect(a, `${short} produced`).toBeDefined();
      expect(closeTo(a, e.data, e.shape, tol.atol, tol.rtol), short).toBeUndefined();
    }
  });
});
