import { describe, expect, test } from "vitest";
import { WeightsError } from "../src/errors.js";
import { openSafetensors, parseSafetensors, writeSafetensors } from "../src/safetensors.js";
import {
  checkBlockCount,
  checkTensors,
  countBlocks,
  type ExpectedTensor,
  tensorMeta,
  tensorSource,
  WeightFaults,
} from "../src/state-dict.js";
import { Tensor } from "../src/tensor.js";

const f32 = (shape: number[]) => new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, "f32");
const i32 = (shape: number[]) => new Tensor(new Int32Array(shape.reduce((a, b) => a * b, 1)), shape, "i32");

const wants: ExpectedTensor[] = [
  { name: "fc.weight", shape: [3, 2] },
  { name: "fc.bias", shape: [3] },
  { name: "head.weight", shape: [4, 3], optional: true },
];

const errOf = (f: () => void): WeightsError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    return e as WeightsError;
  }
  throw new Error("did not throw");
};

describe("checkTensors / WeightFaults", () => {
  test("a fitting checkpoint: no faults; optional tensors may be absent; fit lists the present ones", async () => {
    const src = tensorSource({ "fc.weight": f32([3, 2]), "fc.bias": f32([3]) });
    const { faults, fit } = await checkTensors(src, wants);
    expect(faults.ok).toBe(true);
    expect([...fit.keys()]).toEqual(["fc.weight", "fc.bias"]);
    expect(fit.get("fc.weight")).toEqual({ dtype: "f32", shape: [3, 2] });
    expect(() => faults.throwIfAny("model")).not.toThrow();
  });

  test("missing, wrong shape, wrong dtype and unexpected are all reported in one WeightsError", async () => {
    const src = tensorSource({
      "fc.weight": f32([2, 3]),
      "head.weight": i32([4, 3]),
      "extra.buf": f32([1]),
      "other.x": f32([1]),
    });
    const { faults, fit } = await checkTensors(src, wants, { owns: (n) => !n.startsWith("other.") });
    expect(fit.size).toBe(0);
    expect(faults.missing).toEqual(["fc.bias"]);
    expect(faults.wrong).toEqual(["fc.weight", "head.weight"]);
    expect(faults.unexpected).toEqual(["extra.buf"]);
    const e = errOf(() => faults.throwIfAny("Linear"));
    expect(e.names).toEqual(["fc.bias", "fc.weight", "head.weight", "extra.buf"]);
    expect(e.message).toContain(
      "checkpoint does not match the Linear (1 missing, 2 wrong shape or dtype, 1 unexpected)",
    );
    expect(e.message).toContain('"fc.weight" has shape [2, 3], the config needs [3, 2]');
    expect(e.message).toContain('missing "fc.bias" [3]');
    expect(e.message).toContain('"head.weight" has dtype i32, expected a floating-point tensor');
    expect(e.message).toContain('unexpected "extra.buf"');
    expect(e.message).not.toContain("other.x");
  });

  test("ignore patterns; faults accumulate across checks", async () => {
    const faults = new WeightFaults();
    await checkTensors(tensorSource({ "a.w": f32([1]), "a.num_batches_tracked": f32([1]) }), [], {
      owns: (n) => n.startsWith("a."),
      ignore: (n) => n.endsWith(".num_batches_tracked"),
      faults,
    });
    await checkTensors(tensorSource({}), [{ name: "b.w", shape: [2] }], { faults });
    faults.addMissing("b.bias", [2], "the layer needs both weight and bias");
    expect(faults.names).toEqual(["b.w", "b.bias", "a.w"]);
    const e = errOf(() => faults.throwIfAny("model"));
    expect(e.message).toContain('missing "b.bias" [2] (the layer needs both weight and bias)');
  });

  test("at most `max` messages in full, every name in `names`", () => {
    const faults = new WeightFaults();
    for (let i = 0; i < 15; i++) faults.addMissing(`t${i}`, [1]);
    const e = errOf(() => faults.throwIfAny("model", 12));
    expect(e.names).toHaveLength(15);
    expect(e.message).toContain('missing "t11" [1]');
    expect(e.message).not.toContain('"t12"');
    expect(e.message).toContain("… and 3 more");
  });

  test("tensorMeta reads a safetensors file's header, not its data (parsed and lazy files)", async () => {
    const bytes = writeSafetensors({ w: f32([2, 5]), n: i32([3]) });
    const parsed = parseSafetensors(bytes);
    expect(await tensorMeta(parsed, "w")).toEqual({ dtype: "f32", shape: [2, 5] });
    expect(await tensorMeta(parsed, "n")).toEqual({ dtype: "i32", shape: [3] });
    const lazy = await openSafetensors(bytes);
    const r = await checkTensors(lazy, [{ name: "w", shape: [2, 5] }], { ignore: (n) => n === "n" });
    expect(r.faults.ok).toBe(true);
    expect(await tensorMeta(tensorSource({ x: f32([4]) }), "x")).toEqual({ dtype: "f32", shape: [4] });
  });

  test("tensorSource: a Map or record; get of an absent name is a WeightsError naming it", () => {
    const s = tensorSource(new Map([["a", f32([1])]]));
    expect(s.names()).toEqual(["a"]);
    expect(s.has("a")).toBe(true);
    expect(s.has("b")).toBe(false);
    expect(errOf(() => s.get("b")).names).toEqual(["b"]);
  });

  test("strict: false leaves unused tensors alone (missing and wrong ones are still faults)", async () => {
    const src = tensorSource({ "fc.weight": f32([3, 3]), "fc.bias": f32([3]), extra: f32([1]) });
    const strict = await checkTensors(src, wants);
    expect(strict.faults.unexpected).toEqual(["extra"]);
    const lax = await checkTensors(src, wants, { strict: false });
    expect(lax.faults.unexpected).toEqual([]);
    expect(lax.faults.wrong).toEqual(["fc.weight"]);
  });
});

describe("countBlocks / checkBlockCount", () => {
  const names = ["h.0.w", "h.1.w", "h.10.b", "h.x.w", "h.01.w", "h.2", "wte", "hh.5.w", "h.-1.w", "h.99999999999.w"];
  test("counts 1 + the largest decimal index directly under the prefix", () => {
    expect(countBlocks(names, "h.")).toBe(11);
    expect(countBlocks(names, "hh.")).toBe(6);
    expect(countBlocks(names, "blocks.")).toBe(0);
    expect(countBlocks([], "h.")).toBe(0);
  });

  test("a count above the file's fails at once, naming the first missing block; at or below passes", () => {
    const file = ["t.h.0.a", "t.h.0.b", "t.h.1.a"];
    expect(() => checkBlockCount(file, "t.h.", 2, "n_layer", "a")).not.toThrow();
    expect(() => checkBlockCount(file, "t.h.", 1, "n_layer", "a")).not.toThrow();
    const t0 = performance.now();
    const e = errOf(() => checkBlockCount(file, "t.h.", 1e7, "n_layer", "a"));
    expect(performance.now() - t0).toBeLessThan(100);
    expect(e.message).toBe(
      'checkpoint does not match the config: n_layer 10000000 asks for blocks "t.h.0.*" … "t.h.9999999.*", ' +
        'the checkpoint holds 2 ("t.h.0.*" … "t.h.1.*"); missing "t.h.2.a" and the rest of blocks 2 … 9999999',
    );
    expect(e.names).toEqual(["t.h.2.a"]);
    expect(errOf(() => checkBlockCount([], "h.", 1, "n_layer", "a")).message).toContain("holds none");
  });
});
