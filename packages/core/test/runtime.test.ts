// Loader, runtime and heap: every way of supplying the wasm, backend choice, memory growth.
import { readFile } from "node:fs/promises";
import { describe, expect, test } from "vitest";
import {
  BusyError,
  createRefRuntime,
  createRuntime,
  DisposedError,
  InputError,
  init,
  JsHeap,
  relaxedSimdSupported,
  releaseRuntime,
  simdSupported,
  WASM32_MAX_BYTES,
  WasmError,
} from "../src/index.js";

const wasmUrl = new URL("../build/core.wasm", import.meta.url);
const relaxedUrl = new URL("../build/core-relaxed.wasm", import.meta.url);

describe("loader", () => {
  test("feature probes validate in Node 20 (relaxed needs the flag vitest passes)", () => {
    expect(simdSupported()).toBe(true);
    expect(relaxedSimdSupported()).toBe(true);
  });

  test("auto picks relaxed SIMD where the engine validates it", async () => {
    expect(await init()).toBe("wasm-relaxed");
    const rt = createRuntime();
    expect(rt.backend).toBe("wasm-relaxed");
  });

  test("loads from caller-provided bytes, a file URL, a URL string and a compiled Module", async () => {
    const bytes = new Uint8Array(await readFile(wasmUrl));
    expect(await init({ backend: "wasm-simd", wasm: bytes })).toBe("wasm-simd");
    expect(await init({ backend: "wasm-simd", wasm: bytes.buffer.slice(0) as ArrayBuffer })).toBe("wasm-simd");
    expect(await init({ backend: "wasm-simd", wasm: wasmUrl })).toBe("wasm-simd");
    expect(await init({ backend: "wasm-simd", wasm: wasmUrl.href })).toBe("wasm-simd");
    const module = await WebAssembly.compile(bytes);
    expect(await init({ backend: "wasm-simd", wasm: module })).toBe("wasm-simd");
    expect(await init({ backend: "wasm-relaxed", wasmRelaxed: relaxedUrl })).toBe("wasm-relaxed");
    const rt = createRuntime();
    const a = rt.heap.put(new Float32Array([1, 2]));
    const b = rt.heap.put(new Float32Array([3, 4]));
    const c = rt.heap.allocF32(1);
    rt.k.gemm(1, 1, 2, a, 2, 0, b, 1, 0, c, 1, 0, 1, 0, 0);
    expect(rt.heap.f32(c, 1)[0]).toBe(11);
  });

  test("a module that is not ours is rejected with a WasmError", async () => {
    // (module (memory (export "memory") 1))
    const other = new Uint8Array([
      0, 97, 115, 109, 1, 0, 0, 0, 5, 3, 1, 0, 1, 7, 10, 1, 6, 109, 101, 109, 111, 114, 121, 2, 0,
    ]);
    await init({ backend: "wasm-simd", wasm: other });
    expect(() => createRuntime()).toThrow(WasmError);
    await init({ backend: "wasm-simd", wasm: wasmUrl });
  });

  test("garbage bytes fail with a WasmError", async () => {
    await expect(init({ backend: "wasm-simd", wasm: new Uint8Array([1, 2, 3]) })).rejects.toThrow(WasmError);
    await init();
  });

  test("backend 'ref' gives the pure-TS kernels", async () => {
    expect(await init({ backend: "ref" })).toBe("ref");
    expect(createRuntime().backend).toBe("ref");
    expect(await init()).toBe("wasm-relaxed");
  });
});

describe("releaseRuntime", () => {
  test("an unknown backend name is a typed error, not a silent fallback", async () => {
    await expect(init({ backend: "bogus" as never })).rejects.toThrow(InputError);
    await expect(init({ backend: "bogus" as never })).rejects.toThrow(/"bogus"/);
    expect(await init()).toBe("wasm-relaxed");
  });

  test("a released runtime's memory goes to the next createRuntime of its backend, emptied", async () => {
    await init();
    const a = createRuntime();
    const base = a.heap.mark();
    a.heap.alloc(8 << 20);
    const bytes = a.heap.buffer().byteLength;
    releaseRuntime(a);
    expect(a.heap.used()).toBe(0);
    const b = createRuntime();
    expect(b).toBe(a); // the same instance and memory, not a new one
    expect(b.heap.mark()).toBe(base);
    expect(b.heap.buffer().byteLength).toBe(bytes);
    const p = b.heap.allocF32(4);
    expect(Array.from(b.heap.f32(p, 4))).toEqual([0, 0, 0, 0]); // zeroed, though the bytes were used
    releaseRuntime(b);
    releaseRuntime(b); // twice: nothing happens
    const c = createRuntime();
    const d = createRuntime(); // only one was released: this one is new
    expect(c).toBe(a);
    expect(d).not.toBe(a);
  });

  test("a released runtime is only reused by its own backend", async () => {
    await init();
    const w = createRuntime();
    releaseRuntime(w);
    const r = createRuntime({ backend: "ref" });
    expect(r).not.toBe(w);
    expect(r.backend).toBe("ref");
    expect(createRuntime()).toBe(w);
  });

  test("DisposedError and BusyError are typed errors with their own codes", () => {
    const d = new DisposedError("GPT2LMHeadModel");
    expect(d.code).toBe("disposed");
    expect(d.message).toMatch(/GPT2LMHeadModel has been disposed/);
    expect(new BusyError("x").code).toBe("busy");
  });
});

describe("heap", () => {
  test("allocations are 16-byte aligned, zeroed, never 0, and survive growth", async () => {
    await init();
    for (const rt of [createRuntime(), createRefRuntime()]) {
      const first = rt.heap.put(new Float32Array([1, 2, 3]));
      expect(first).toBeGreaterThan(0);
      const ptrs = [3, 5, 17, 33, 65, 129].map((n) => rt.heap.allocF32(n));
      for (const p of ptrs) expect(p % 16).toBe(0);
      const view = rt.heap.f32(first, 3);
      rt.heap.alloc(64 << 20); // forces memory growth
      expect(view.byteLength === 0 || view[0] === 1).toBe(true); // old view detached (wasm) or stale copy (ref)
      expect(Array.from(rt.heap.f32(first, 3))).toEqual([1, 2, 3]);
      const big = rt.heap.allocF32(10);
      expect(Array.from(rt.heap.f32(big, 10))).toEqual(new Array(10).fill(0));
    }
  });

  test("mark/release reuses scratch", async () => {
    await init();
    const rt = createRuntime();
    const m = rt.heap.mark();
    const p = rt.heap.alloc(1000);
    rt.heap.release(m);
    expect(rt.heap.alloc(1000)).toBe(p);
  });

  test("memory handed out again is zeroed, also across growth and partly reused ranges", async () => {
    await init();
    for (const heap of [createRuntime().heap, new JsHeap(1024)]) {
      const m = heap.mark();
      const a = heap.allocF32(300);
      heap.f32(a, 300).fill(7);
      heap.release(m);
      const b = heap.allocF32(200); // inside the dirtied range
      expect(heap.f32(b, 200).every((v) => v === 0)).toBe(true);
      heap.f32(b, 200).fill(5);
      const c = heap.allocF32(400); // straddles the old high-water mark, then fresh memory
      expect(heap.f32(c, 400).every((v) => v === 0)).toBe(true);
      heap.f32(c, 400).fill(3);
      heap.release(m);
      const d = heap.allocF32(1 << 18); // forces growth: old dirty bytes and new pages alike
      expect(heap.f32(d, 1 << 18).every((v) => v === 0)).toBe(true);
    }
  });

  test("more than wasm32 can hold fails with a clear error saying how much was needed", async () => {
    await init();
    const rt = createRuntime();
    expect(() => rt.heap.alloc(5 * 2 ** 30)).toThrow(/needed 5\.\d\d GiB.*at most 4 GiB/);
    expect(() => new JsHeap().alloc(WASM32_MAX_BYTES)).toThrow(WasmError);
  });
});

describe("errors", () => {
  test("every typed error carries its class name explicitly (survives minification)", async () => {
    const errors = await import("../src/errors.js");
    for (const [name, Cls] of Object.entries(errors)) {
      if (typeof Cls !== "function" || !name.endsWith("Error")) continue;
      const e =
        name === "WasmformerError" ? new errors.WasmformerError("x", "m") : new (Cls as new (m: string) => Error)("m");
      expect(e.name).toBe(name);
      expect(e).toBeInstanceOf(errors.WasmformerError);
    }
    expect(String(new errors.ConfigError("bad", "hidden_size"))).toBe("ConfigError: config: hidden_size: bad");
  });
});
