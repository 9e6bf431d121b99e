// openSafetensors(...).readRaw: a tensor's stored bytes in order, in chunks, through one reused
// buffer (loaders stream weights into the heap without a JS copy per tensor).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InputError, openSafetensors, SafetensorsError, Tensor, writeSafetensors } from "../src/index.js";

describe("openSafetensors readRaw", () => {
  const tensors = new Map([
    [
      "a",
      new Tensor(
        Float32Array.from({ length: 37 }, (_, i) => i * 0.5 - 3),
        [37],
        "f32",
      ),
    ],
    [
      "b",
      new Tensor(
        Float32Array.from({ length: 6 }, (_, i) => -i),
        [2, 3],
        "f32",
      ),
    ],
  ]);
  const bytes = writeSafetensors(tensors);
  const dir = mkdtempSync(join(tmpdir(), "readraw-"));
  const path = join(dir, "m.safetensors");
  writeFileSync(path, bytes);

  for (const [what, src] of [
    ["a file (readInto)", path],
    ["bytes", bytes],
  ] as const) {
    it(`${what}: the bytes of each tensor in order, chunk by chunk, one buffer reused`, async () => {
      const f = await openSafetensors(src);
      for (const name of ["a", "b"]) {
        const info = f.info(name);
        const out = new Uint8Array(info.byteLength);
        const seen: number[] = [];
        await f.readRaw(
          name,
          (b, at) => {
            seen.push(at);
            out.set(b, at);
          },
          40,
        );
        expect(seen).toEqual(Array.from({ length: Math.ceil(info.byteLength / 40) }, (_, i) => i * 40));
        expect(Array.from(new Float32Array(out.buffer))).toEqual(Array.from(tensors.get(name)!.data));
      }
      await expect(f.readRaw("a", () => {}, 0)).rejects.toThrow(InputError);
      await expect(f.readRaw("nope", () => {})).rejects.toThrow(/no tensor "nope"/);
      await f.close();
      await expect(f.readRaw("a", () => {})).rejects.toThrow(/readRaw\("a"\) after close\(\)/);
    });
  }

  it("a reader that comes up short: SafetensorsError naming the tensor and the offset", async () => {
    // a reader over the bytes whose readInto stops 4 bytes early (a file that shrank since it was opened)
    const reader = {
      size: bytes.length,
      read: async (o: number, n: number) => bytes.slice(o, o + n),
      readInto: async (o: number, dst: Uint8Array) => {
        const n = Math.max(0, Math.min(dst.length, bytes.length - 4 - o));
        dst.set(bytes.subarray(o, o + n));
        return n;
      },
    };
    const f = await openSafetensors(reader);
    const last = f.infos().reduce((a, b) => (a.byteOffset > b.byteOffset ? a : b));
    const e = await f.readRaw(last.name, () => {}).catch((x) => x);
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.message).toMatch(/file ended while reading/);
    expect(e.message).toContain(last.name);
  });
});
