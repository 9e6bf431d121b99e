/**
 * The GGUF reader: files written here (header, metadata of every value type, tensors of every
 * decodable type at aligned offsets), dequantization against an element-by-element oracle of the
 * ggml block layouts, lazy reads from a path and a Blob, and hostile files (seeded mutations and
 * targeted lies), which must parse or fail with a GgufError — never anything else.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { mulberry32 } from "../../../tools/test-utils/src/prng.js";
import { GgufError } from "../src/errors.js";
import { f16ToF32, f32ToF16 } from "../src/float16.js";
import { dequantize, GGML_TYPES, openGguf } from "../src/gguf.js";

const enc = new TextEncoder();
const TYPE_ID = Object.fromEntries(Object.entries(GGML_TYPES).map(([id, [name]]) => [name, Number(id)]));

// ---- a small GGUF writer (test only)
type Meta = [key: string, type: number, value: unknown, elemType?: number];

class Bytes {
  parts: number[] = [];
  u8(v: number) {
    this.parts.push(v & 0xff);
  }
  u32(v: number) {
    for (let i = 0; i < 4; i++) this.u8(v >>> (8 * i));
  }
  u64(v: number | bigint) {
    const b = BigInt(v);
    for (let i = 0n; i < 8n; i++) this.u8(Number((b >> (8n * i)) & 0xffn));
  }
  str(s: string) {
    const e = enc.encode(s);
    this.u64(e.length);
    for (const c of e) this.u8(c);
  }
  value(type: number, v: unknown, elemType?: number) {
    const dv = new DataView(new ArrayBuffer(8));
    switch (type) {
      case 0:
      case 1:
      case 7:
        return this.u8(Number(v));
      case 2:
      case 3:
        this.u8(Number(v));
        return this.u8(Number(v) >> 8);
      case 4:
      case 5:
        return this.u32(Number(v));
      case 6:
        dv.setFloat32(0, Number(v), true);
        for (let i = 0; i < 4; i++) this.u8(dv.getUint8(i));
        return;
      case 8:
        return this.str(String(v));
      case 9: {
        // an array of arrays is written as arrays of UINT32
        const a = v as unknown[];
        this.u32(elemType as number);
        this.u64(a.length);
        for (const x of a) this.value(elemType as number, x, elemType === 9 ? 4 : undefined);
        return;
      }
      case 10:
      case 11:
        return this.u64(BigInt.asUintN(64, BigInt(v as number)));
      default:
        dv.setFloat64(0, Number(v), true);
        for (let i = 0; i < 8; i++) this.u8(dv.getUint8(i));
    }
  }
}

interface TensorSpec {
  name: string;
  type: string;
  ne: number[];
  data: Uint8Array;
}

function writeGguf(meta: Meta[], tensors: TensorSpec[], opts: { version?: number; alignment?: number } = {}) {
  const al = opts.alignment ?? 32;
  const w = new Bytes();
  w.u32(0x46554747);
  w.u32(opts.version ?? 3);
  w.u64(tensors.length);
  w.u64(meta.length);
  for (const [k, t, v, et] of meta) {
    w.str(k);
    w.u32(t);
    w.value(t, v, et);
  }
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(TYPE_ID[t.type]);
    w.u64(off);
    offsets.push(off);
    off += Math.ceil(t.data.length / al) * al;
  }
  const start = Math.ceil(w.parts.length / al) * al;
  const out = new Uint8Array(start + off);
  out.set(w.parts);
  tensors.forEach((t, i) => {
    out.set(t.data, start + offsets[i]);
  });
  return out;
}

// ---- random blocks and an element-wise oracle of ggml's block layouts
const f = Math.fround;

function randomBlocks(type: string, nValues: number, seed: number): Uint8Array {
  const [, blk, bsz] = GGML_TYPES[TYPE_ID[type]];
  const r = mulberry32(seed);
  const b = new Uint8Array((nValues / blk) * bsz);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
  const dv = new DataView(b.buffer);
  // keep the f16 scales finite and of a sane size (a random f16 may be NaN/Inf)
  const half = (o: number) => dv.setUint16(o, f32ToF16((r() - 0.5) * 0.1), true);
  for (let i = 0; i < b.length / bsz; i++) {
    const o = i * bsz;
    if (type === "F32") dv.setFloat32(o, (r() - 0.5) * 8, true);
    else if (type === "F16") half(o);
    else if (type === "BF16") dv.setUint16(o, new Uint16Array(new Float32Array([(r() - 0.5) * 8]).buffer)[1], true);
    else if (type === "Q8_0" || type === "Q4_0") half(o);
    else if (type === "Q4_1" || type === "Q4_K" || type === "Q5_K") {
      half(o);
      half(o + 2);
    } else if (type === "Q6_K") half(o + 208);
  }
  return b;
}

/** Value `e` (0-based, within the whole tensor) by the layout rules, without the decoder's loops. */
function oracle(type: string, b: Uint8Array, e: number): number {
  const dv = new DataView(b.buffer, b.byteOffset);
  const h = (o: number) => f16ToF32(dv.getUint16(o, true));
  const [, blk, bsz] = GGML_TYPES[TYPE_ID[type]];
  const o = Math.floor(e / blk) * bsz; // block start
  const j = e % blk; // index in the block
  switch (type) {
    case "F32":
      return dv.getFloat32(o, true);
    case "F16":
      return h(o);
    case "BF16":
      return new Float32Array(new Uint32Array([dv.getUint16(o, true) << 16]).buffer)[0];
    case "Q8_0":
      return f(dv.getInt8(o + 2 + j) * h(o));
    case "Q4_0": {
      const q = j < 16 ? b[o + 2 + j] & 15 : b[o + 2 + j - 16] >> 4;
      return f((q - 8) * h(o));
    }
    case "Q4_1": {
      const q = j < 16 ? b[o + 4 + j] & 15 : b[o + 4 + j - 16] >> 4;
      return f(f(q * h(o)) + h(o + 2));
    }
    case "Q4_K":
    case "Q5_K": {
      const sub = j >> 5; // sub-block 0..7 of 32 values; pairs share 32 bytes of nibbles
      const s = o + 4; // 12 bytes: 6-bit scales and mins of 8 sub-blocks
      const sc = sub < 4 ? b[s + sub] & 63 : (b[s + sub + 4] & 15) | ((b[s + sub - 4] >> 6) << 4);
      const mn = sub < 4 ? b[s + sub + 4] & 63 : (b[s + sub + 4] >> 4) | ((b[s + sub] >> 6) << 4);
      const qs = o + (type === "Q5_K" ? 48 : 16) + (sub >> 1) * 32 + (j & 31);
      let q = sub & 1 ? b[qs] >> 4 : b[qs] & 15;
      if (type === "Q5_K" && b[o + 16 + (j & 31)] & (1 << sub)) q += 16; // bit `sub` of qh[l]
      return f(f(f(h(o) * sc) * q) - f(h(o + 2) * mn));
    }
    case "Q6_K": {
      const half = j >> 7; // 128-value halves
      const k = j & 127;
      const quarter = k >> 5; // which of the 4 groups of 32
      const l = k & 31;
      const ql = b[o + half * 64 + l + (quarter & 1 ? 32 : 0)];
      const lo = quarter < 2 ? ql & 15 : ql >> 4;
      const hi = (b[o + 128 + half * 32 + l] >> (2 * quarter)) & 3;
      const scale = dv.getInt8(o + 192 + half * 8 + (l >> 4) + 2 * quarter);
      return f(f(h(o + 208) * scale) * ((lo | (hi << 4)) - 32));
    }
  }
  throw new Error(type);
}

const DECODABLE = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"];

describe("dequantize", () => {
  for (const type of DECODABLE) {
    test(`${type}: every value of several blocks equals the layout oracle bit for bit`, () => {
      const blk = GGML_TYPES[TYPE_ID[type]][1];
      const n = blk * (blk === 1 ? 37 : 5);
      const raw = randomBlocks(type, n, TYPE_ID[type] + 1);
      const y = dequantize(type, raw, n);
      for (let e = 0; e < n; e++) {
        const want = oracle(type, raw, e);
        if (!Object.is(y[e], Math.fround(want)))
          expect(`${type} value ${e}: ${y[e]}`).toBe(`${type} value ${e}: ${want}`);
      }
    });
  }

  test("known values: Q8_0 and Q4_0 blocks built by hand", () => {
    const q8 = new Uint8Array(34);
    new DataView(q8.buffer).setUint16(0, f32ToF16(0.5), true);
    q8[2] = 4;
    q8[3] = 0xfe; // −2
    const y8 = dequantize("Q8_0", q8, 32);
    expect([y8[0], y8[1], y8[2]]).toEqual([2, -1, 0]);
    const q4 = new Uint8Array(18);
    new DataView(q4.buffer).setUint16(0, f32ToF16(0.25), true);
    q4[2] = 0x9f; // low nibble 15 → value 0, high nibble 9 → value 16
    const y4 = dequantize("Q4_0", q4, 32);
    expect([y4[0], y4[16], y4[1]]).toEqual([(15 - 8) * 0.25, (9 - 8) * 0.25, -2]);
  });

  test("too few bytes or an unsupported type is a GgufError", () => {
    expect(() => dequantize("Q8_0", new Uint8Array(33), 32)).toThrow(GgufError);
    expect(() => dequantize("Q8_0", new Uint8Array(34), 31)).toThrow(/do not hold 31 values/);
    expect(() => dequantize("Q2_K", new Uint8Array(84), 256)).toThrow(/cannot be dequantized/);
  });
});

function sampleFile(version = 3, alignment?: number) {
  const tensors: TensorSpec[] = DECODABLE.map((type, i) => {
    const blk = GGML_TYPES[TYPE_ID[type]][1];
    const ne = blk === 1 ? [3, 5] : [blk * 2, 3];
    return { name: `t.${type.toLowerCase()}`, type, ne, data: randomBlocks(type, ne[0] * ne[1], 100 + i) };
  });
  tensors.push({ name: "empty", type: "F32", ne: [0, 4], data: new Uint8Array(0) });
  const meta: Meta[] = [
    ["general.architecture", 8, "llama"],
    ["general.name", 8, "tiny ✓"],
    ["llama.block_count", 4, 2],
    ["llama.rope.freq_base", 6, 10000],
    ["x.i8", 1, -5],
    ["x.u16", 2, 65535],
    ["x.i16", 3, -300],
    ["x.i32", 5, -70000],
    ["x.bool", 7, 1],
    ["x.u64", 10, 2 ** 40],
    ["x.i64", 11, -(2 ** 40)],
    ["x.big", 10, 2n ** 60n],
    ["x.f64", 12, 0.1],
    ["tokenizer.ggml.tokens", 9, ["<s>", "a", "▁b"], 8],
    ["tokenizer.ggml.scores", 9, [0, -1.5, 2], 6],
    ["tokenizer.ggml.token_type", 9, [3, 1, 1], 5],
    ["x.nested", 9, [[1, 2], [3]], 9],
  ];
  if (alignment) meta.push(["general.alignment", 4, alignment]);
  return { bytes: writeGguf(meta, tensors, { version, alignment }), tensors };
}

describe("openGguf", () => {
  test("reads metadata of every type and every tensor (v2, v3, alignment 32 and 64)", async () => {
    for (const [version, alignment] of [
      [3, undefined],
      [2, undefined],
      [3, 64],
    ] as const) {
      const { bytes, tensors } = sampleFile(version, alignment);
      const g = await openGguf(bytes);
      expect(g.version).toBe(version);
      expect(g.alignment).toBe(alignment ?? 32);
      expect(g.dataOffset % g.alignment).toBe(0);
      const m = g.metadata;
      expect(m.get("general.architecture")).toBe("llama");
      expect(m.get("general.name")).toBe("tiny ✓");
      expect(m.get("llama.block_count")).toBe(2);
      expect(m.get("x.i8")).toBe(-5);
      expect(m.get("x.u16")).toBe(65535);
      expect(m.get("x.i16")).toBe(-300);
      expect(m.get("x.i32")).toBe(-70000);
      expect(m.get("x.bool")).toBe(true);
      expect(m.get("x.u64")).toBe(2 ** 40);
      expect(m.get("x.i64")).toBe(-(2 ** 40));
      expect(m.get("x.big")).toBe(2n ** 60n);
      expect(m.get("x.f64")).toBe(0.1);
      expect(m.get("tokenizer.ggml.tokens")).toEqual(["<s>", "a", "▁b"]);
      expect(Array.from(m.get("tokenizer.ggml.scores") as Float32Array)).toEqual([0, -1.5, 2]);
      expect(m.get("tokenizer.ggml.token_type")).toBeInstanceOf(Int32Array);
      expect((m.get("x.nested") as Uint32Array[]).map((a) => Array.from(a))).toEqual([[1, 2], [3]]);
      for (const t of tensors) {
        const info = g.info(t.name);
        expect(info.shape).toEqual(t.ne.slice().reverse());
        expect(info.typeName).toBe(t.type);
        expect(Array.from(await g.raw(t.name))).toEqual(Array.from(t.data));
        const x = await g.get(t.name);
        expect(x.shape).toEqual(info.shape);
        const n = t.ne[0] * t.ne[1];
        const want = dequantize(t.type, t.data, n);
        expect(Array.from(x.data as Float32Array)).toEqual(Array.from(want));
      }
      await expect(g.get("nope")).rejects.toThrow(/no tensor "nope"/);
      await g.close();
      await expect(g.raw("t.f32")).rejects.toThrow(/after close/);
    }
  });

  test("reads lazily from a path and from a Blob", async () => {
    const { bytes } = sampleFile();
    const path = join(mkdtempSync(join(tmpdir(), "gguf-")), "m.gguf");
    writeFileSync(path, bytes);
    for (const src of [path, new Blob([bytes])]) {
      const g = await openGguf(src);
      expect(Array.from((await g.get("t.q4_k")).data as Float32Array).slice(0, 4)).toEqual(
        Array.from(dequantize("Q4_K", (await g.raw("t.q4_k")).slice(0, 144), 256).slice(0, 4)),
      );
      await g.close();
    }
  });

  const lies: [string, (b: Uint8Array, dv: DataView) => void, RegExp][] = [
    ["bad magic", (b) => (b[0] = 0), /not a GGUF file/],
    ["version 1", (_b, dv) => dv.setUint32(4, 1, true), /version 1 is not supported/],
    ["big-endian", (_b, dv) => dv.setUint32(4, 0x03000000, true), /big-endian/],
    ["version 9", (_b, dv) => dv.setUint32(4, 9, true), /unsupported GGUF version 9/],
    ["tensor count 2^40", (_b, dv) => dv.setBigUint64(8, 2n ** 40n, true), /tensor count .* exceeds/],
    ["tensor count 2^63", (_b, dv) => dv.setBigUint64(8, 2n ** 63n, true), /tensor count .* exceeds/],
    ["kv count 2^50", (_b, dv) => dv.setBigUint64(16, 2n ** 50n, true), /metadata count .* exceeds/],
    ["first key length 2^62", (_b, dv) => dv.setBigUint64(24, 2n ** 62n, true), /runs past the end|exceeds/],
    ["truncated header", (b) => b.fill(0, 0, 0), /exceeds what the file can hold|file ends/],
  ];
  for (const [what, lie, msg] of lies) {
    test(`hostile header: ${what} → GgufError`, async () => {
      const { bytes } = sampleFile();
      const b = what === "truncated header" ? bytes.slice(0, 60) : bytes.slice();
      lie(b, new DataView(b.buffer));
      const p = openGguf(b);
      await expect(p).rejects.toThrow(GgufError);
      await expect(p).rejects.toThrow(msg);
    });
  }

  test("hostile tensor infos: type, dims, alignment, range, overlap, duplicates", async () => {
    const t = (name: string, ne: number[], type = "F32", n = ne.reduce((a, x) => a * x, 1) * 4) => ({
      name,
      type,
      ne,
      data: new Uint8Array(n),
    });
    const bad = async (file: Uint8Array, msg: RegExp) => {
      await expect(openGguf(file)).rejects.toThrow(GgufError);
      await expect(openGguf(file)).rejects.toThrow(msg);
    };
    await bad(writeGguf([], [t("a", [2]), t("a", [2])]), /duplicate tensor name "a"/);
    await bad(writeGguf([], [t("", [2])]), /tensor name #0 is empty/);
    await bad(writeGguf([], [t("x".repeat(64), [2])]), /exceeds 63 bytes/);
    await bad(writeGguf([], [t("a", [33, 1], "Q8_0", 34)]), /not a multiple of the Q8_0 block size 32/);
    await bad(writeGguf([], [t("a", [1, 1, 1, 1, 1])]), /n_dims 5/);
    await bad(
      writeGguf(
        [
          ["k", 8, "x"],
          ["k", 8, "y"],
        ],
        [],
      ),
      /duplicate metadata key "k"/,
    );
    await bad(writeGguf([["general.alignment", 4, 24]], []), /power of two/);
    // a tensor type the reader does not know, and data beyond the end of the file
    const f1 = writeGguf([], [t("a", [4])]);
    const at = f1.indexOf(0x61) + 1 + 4 + 8; // after name "a", n_dims, ne[0]
    new DataView(f1.buffer).setUint32(at, 99, true);
    await bad(f1, /unsupported ggml type 99/);
    const f2 = writeGguf([], [t("a", [8])]);
    await bad(f2.slice(0, f2.length - 4), /runs past the end of the file/);
    // two tensors whose data overlap
    const f3 = writeGguf([], [t("a", [16]), t("b", [16])]);
    const bAt = f3.lastIndexOf(0x62) + 1 + 4 + 8 + 4; // offset field of "b"
    new DataView(f3.buffer).setBigUint64(bAt, 32n, true);
    await bad(f3, /overlap/);
    // misaligned offset
    new DataView(f3.buffer).setBigUint64(bAt, 36n, true);
    await bad(f3, /not a multiple of the alignment/);
    // an invalid UTF-8 key
    const f4 = writeGguf([["ab", 8, "x"]], []);
    f4[24 + 8] = 0xff;
    await bad(f4, /not valid UTF-8/);
    // a header larger than the limit
    await expect(openGguf(sampleFile().bytes, { maxHeaderBytes: 100 })).rejects.toThrow(/maxHeaderBytes/);
  });

  test("3,000 seeded mutations: parse (and read every tensor) or GgufError, nothing else", async () => {
    const base = [sampleFile().bytes, sampleFile(2, 64).bytes];
    const r = mulberry32(42);
    const int = (n: number) => Math.floor(r() * n);
    let ok = 0;
    let rejected = 0;
    const t0 = performance.now();
    for (let k = 0; k < 3000; k++) {
      const src = base[k % 2];
      let b = src.slice();
      const kind = int(4);
      if (kind === 0) for (let j = 0, n = 1 + int(4); j < n; j++) b[int(Math.min(b.length, 600))] ^= 1 << int(8);
      else if (kind === 1) b = b.slice(0, int(b.length));
      else if (kind === 2) {
        // a u64 somewhere in the header replaced by a large value
        const at = int(Math.min(b.length, 600) - 8);
        new DataView(b.buffer).setBigUint64(at, BigInt(int(2 ** 31)) * 2n ** BigInt(int(33)), true);
      } else b[int(b.length)] = int(256);
      try {
        const g = await openGguf(b);
        for (const name of g.names()) {
          try {
            await g.get(name);
          } catch (e) {
            if (!(e instanceof GgufError)) throw e;
          }
        }
        ok++;
      } catch (e) {
        if (!(e instanceof GgufError)) throw new Error(`mutation ${k} (kind ${kind}): ${(e as Error).stack}`);
        rejected++;
      }
    }
    expect(ok + rejected).toBe(3000);
    expect(rejected).toBeGreaterThan(300);
    expect(performance.now() - t0).toBeLessThan(30_000);
  });
});
