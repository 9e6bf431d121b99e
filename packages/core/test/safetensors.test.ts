import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import { InputError, SafetensorsError, WeightsError } from "../src/errors.js";
import { f32ToBf16, f32ToF16 } from "../src/float16.js";
import {
  openSafetensors,
  parseSafetensors,
  parseSafetensorsHeader,
  type SafetensorsDType,
  safetensorsDtypeBytes,
  writeSafetensors,
} from "../src/safetensors.js";
import { Tensor } from "../src/tensor.js";

// ---------------------------------------------------------------------------------------------
// helpers: build files by hand

const enc = new TextEncoder();

/** A file from raw header text and data bytes; `n` overrides the length prefix. */
function rawFile(header: string, data: Uint8Array | number[] = [], opts: { n?: number | bigint; pad?: boolean } = {}) {
  let h = enc.encode(header);
  if (opts.pad !== false) {
    const pad = (8 - ((8 + h.length) % 8)) % 8;
    const padded = new Uint8Array(h.length + pad).fill(0x20);
    padded.set(h);
    h = padded;
  }
  const d = data instanceof Uint8Array ? data : Uint8Array.from(data);
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(opts.n ?? h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

/** One-tensor header text. */
const one = (entry: string, extra = "") => `{${extra}"t":${entry}}`;

function expectSafetensorsError(fn: () => unknown, message: RegExp, where: { tensor?: string; offset?: number } = {}) {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, "expected a SafetensorsError").toBeInstanceOf(SafetensorsError);
  const se = err as SafetensorsError;
  expect(se.message).toMatch(message);
  expect(se.code).toBe("safetensors");
  if ("tensor" in where) expect(se.tensor).toBe(where.tensor);
  if ("offset" in where) expect(se.offset).toBe(where.offset);
  return se;
}

const f32Bytes = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);

// ---------------------------------------------------------------------------------------------

describe("parseSafetensors: reading", () => {
  test("reads dtype, shape, offsets, metadata; F32 is a zero-copy view", () => {
    const file = rawFile(
      `{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[],"data_offsets":[8,12]}}`,
      f32Bytes(1.5, -2, 3),
    );
    const f = parseSafetensors(file);
    expect(f.names()).toEqual(["a", "b"]);
    expect(f.has("a")).toBe(true);
    expect(f.has("c")).toBe(false);
    expect(f.metadata).toEqual({ format: "pt" });
    const n = f.header.headerLength;
    expect((8 + n) % 8).toBe(0);
    expect(f.info("b")).toMatchObject({
      dtype: "F32",
      shape: [2],
      size: 2,
      dataOffsets: [0, 8],
      byteOffset: 8 + n,
      byteLength: 8,
    });
    const b = f.get("b");
    expect(b.dtype).toBe("f32");
    expect([...b.data]).toEqual([1.5, -2]);
    expect(b.data.buffer).toBe(file.buffer); // view, no copy
    const a = f.get("a");
    expect(a.shape).toEqual([]);
    expect(a.item()).toBe(3);
    expect(f.infos().map((i) => i.name)).toEqual(["a", "b"]);
    expect([...f.entries()].map(([k, t]) => [k, t.size])).toEqual([
      ["a", 1],
      ["b", 2],
    ]);
    // copy option and unaligned input both give independent copies
    expect(parseSafetensors(file, { copy: true }).get("b").data.buffer).not.toBe(file.buffer);
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    const u = parseSafetensors(shifted.subarray(1)).get("b");
    expect([...u.data]).toEqual([1.5, -2]);
    expect(u.data.buffer).not.toBe(shifted.buffer);
    // ArrayBuffer input
    expect([...parseSafetensors(file.slice().buffer).get("b").data]).toEqual([1.5, -2]);
  });

  test("unknown names throw WeightsError naming the tensor", () => {
    const f = parseSafetensors(writeSafetensors({ x: new Tensor(new Float32Array(1), [1]) }));
    expect(() => f.get("y")).toThrow(WeightsError);
    expect(() => f.info("y")).toThrow(/"y"/);
  });

  test("converts every dtype", () => {
    const i64 = new BigInt64Array([0n, -1n, 2147483647n, -2147483648n]);
    const u64 = new BigUint64Array([0n, 7n, 2147483647n]);
    const f16 = new Uint16Array([f32ToF16(1), f32ToF16(-0.5), 0x7c00, 0x0001]);
    const bf16 = new Uint16Array([f32ToBf16(1), f32ToBf16(-3), 0xff80]);
    const f64 = new Float64Array([0.1, -1e300, 2]);
    const parts: [string, SafetensorsDType, number[], Uint8Array][] = [
      ["f64", "F64", [3], new Uint8Array(f64.buffer)],
      ["i64", "I64", [2, 2], new Uint8Array(i64.buffer)],
      ["u64", "U64", [3], new Uint8Array(u64.buffer)],
      ["i32", "I32", [2], new Uint8Array(new Int32Array([-5, 6]).buffer)],
      ["u32", "U32", [1], new Uint8Array(new Uint32Array([42]).buffer)],
      ["f16", "F16", [4], new Uint8Array(f16.buffer)],
      ["bf16", "BF16", [3], new Uint8Array(bf16.buffer)],
      ["i16", "I16", [2], new Uint8Array(new Int16Array([-300, 300]).buffer)],
      ["u16", "U16", [1], new Uint8Array(new Uint16Array([65535]).buffer)],
      ["bool", "BOOL", [3], Uint8Array.from([1, 0, 1])],
      ["e4m3", "F8_E4M3", [4], Uint8Array.from([0x38, 0xb8, 0x7e, 0x01])],
      ["e5m2", "F8_E5M2", [3], Uint8Array.from([0x3c, 0x7c, 0xc0])],
      ["i8", "I8", [2], Uint8Array.from([0xff, 0x7f])],
      ["u8", "U8", [2], Uint8Array.from([200, 3])],
    ];
    let off = 0;
    const entries: string[] = [];
    for (const [name, dt, shape, bytes] of parts) {
      entries.push(`"${name}":{"dtype":"${dt}","shape":[${shape}],"data_offsets":[${off},${off + bytes.length}]}`);
      off += bytes.length;
    }
    const data = new Uint8Array(off);
    off = 0;
    for (const [, , , bytes] of parts) {
      data.set(bytes, off);
      off += bytes.length;
    }
    const f = parseSafetensors(rawFile(`{${entries.join(",")}}`, data));
    const get = (n: string) => f.get(n);
    expect(get("f64").dtype).toBe("f32");
    expect([...get("f64").data]).toEqual([Math.fround(0.1), Number.NEGATIVE_INFINITY, 2]);
    expect(get("i64").dtype).toBe("i32");
    expect(get("i64").shape).toEqual([2, 2]);
    expect([...get("i64").data]).toEqual([0, -1, 2147483647, -2147483648]);
    expect([...get("u64").data]).toEqual([0, 7, 2147483647]);
    expect([...get("i32").data]).toEqual([-5, 6]);
    expect([...get("u32").data]).toEqual([42]);
    expect([...get("f16").data]).toEqual([1, -0.5, Number.POSITIVE_INFINITY, 2 ** -24]);
    expect([...get("bf16").data]).toEqual([1, -3, Number.NEGATIVE_INFINITY]);
    expect([...get("i16").data]).toEqual([-300, 300]);
    expect([...get("u16").data]).toEqual([65535]);
    expect(get("bool").dtype).toBe("bool");
    expect([...get("bool").data]).toEqual([1, 0, 1]);
    const e4 = get("e4m3").data;
    expect([e4[0], e4[1], e4[3]]).toEqual([1, -1, 2 ** -9]);
    expect(e4[2]).toBe(448); // largest finite E4M3FN
    expect([...get("e5m2").data]).toEqual([1, Number.POSITIVE_INFINITY, -2]);
    expect([...get("i8").data]).toEqual([-1, 127]);
    expect(get("u8").dtype).toBe("u8");
    expect([...get("u8").data]).toEqual([200, 3]);
    expect(safetensorsDtypeBytes("BF16")).toBe(2);
  });

  test("I64/U64/U32 values outside int32 and BOOL bytes other than 0/1 are SafetensorsErrors on get()", () => {
    const big = rawFile(
      one(`{"dtype":"I64","shape":[2],"data_offsets":[0,16]}`),
      new Uint8Array(new BigInt64Array([1n, 2147483648n]).buffer),
    );
    const f = parseSafetensors(big);
    const dataStart = f.header.dataStart;
    expectSafetensorsError(() => f.get("t"), /I64 value 2147483648 at element 1 does not fit int32/, {
      tensor: "t",
      offset: dataStart + 8,
    });
    const neg = rawFile(
      one(`{"dtype":"I64","shape":[1],"data_offsets":[0,8]}`),
      new Uint8Array(new BigInt64Array([-2147483649n]).buffer),
    );
    expectSafetensorsError(() => parseSafetensors(neg).get("t"), /-2147483649/);
    const u64 = rawFile(
      one(`{"dtype":"U64","shape":[1],"data_offsets":[0,8]}`),
      new Uint8Array(new BigUint64Array([2n ** 63n]).buffer),
    );
    expectSafetensorsError(() => parseSafetensors(u64).get("t"), /U64 value 9223372036854775808/);
    const u32 = rawFile(
      one(`{"dtype":"U32","shape":[1],"data_offsets":[0,4]}`),
      new Uint8Array(new Uint32Array([2 ** 31]).buffer),
    );
    expectSafetensorsError(() => parseSafetensors(u32).get("t"), /U32 value 2147483648/);
    const bool = rawFile(one(`{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}`), [0, 1, 2]);
    const fb = parseSafetensors(bool);
    expectSafetensorsError(() => fb.get("t"), /BOOL byte 0x02 at element 2/, {
      tensor: "t",
      offset: fb.header.dataStart + 2,
    });
  });

  test("empty tensors and an empty file", () => {
    const f = parseSafetensors(
      rawFile(
        `{"e":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"z":{"dtype":"I64","shape":[0],"data_offsets":[4,4]}}`,
        f32Bytes(7),
      ),
    );
    expect(f.get("e").shape).toEqual([2, 0]);
    expect(f.get("e").size).toBe(0);
    expect(f.get("z").size).toBe(0);
    expect(f.get("x").item()).toBe(7);
    const empty = parseSafetensors(rawFile("{}"));
    expect(empty.names()).toEqual([]);
    expect(empty.metadata).toBeUndefined();
  });

  test("JSON whitespace, escapes and unicode names are handled", () => {
    const f = parseSafetensors(
      rawFile(
        `{ "caf\\u00e9.w" : { "dtype" : "F32", "shape" : [ 1 ], "data_offsets" : [ 0, 4 ] },\n"日本":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}, "__proto__":{"dtype":"U8","shape":[1],"data_offsets":[5,6]}}\n`,
        [...f32Bytes(1), 9, 8],
      ),
    );
    expect(f.names()).toEqual(["__proto__", "café.w", "日本"]);
    expect(f.get("日本").data[0]).toBe(9);
    expect(f.get("__proto__").data[0]).toBe(8);
  });

  test("names are in code point order (a name above U+FFFF sorts after U+FFFF)", () => {
    const entry = (b: number) => `{"dtype":"U8","shape":[1],"data_offsets":[${b},${b + 1}]}`;
    const f = parseSafetensors(
      rawFile(`{"\u{10000}":${entry(0)},"\uffff":${entry(1)},"a":${entry(2)},"ab":${entry(3)}}`, [1, 2, 3, 4]),
    );
    expect(f.names()).toEqual(["a", "ab", "\uffff", "\u{10000}"]);
  });

  test("the fast header scan and the strict parser read every header alike", () => {
    const e = (dtype: string, shape: string, off: string) =>
      `{"dtype":${dtype},"shape":${shape},"data_offsets":${off}}`;
    const headers = [
      `{"a":${e('"F32"', "[1]", "[0,4]")}}`, // the usual
      `{ "a" : { "data_offsets" : [ 0 , 4 ] , "shape" : [ 1 ] , "dtype" : "F32" } }\t\n`, // order, whitespace
      `{"__metadata__":{"format":"pt","0":"x","__proto__":"y"},"a":${e('"F32"', "[1]", "[0,4]")}}`,
      `{"a\\u00e9":${e('"F32"', "[1]", "[0,4]")}}`, // an escape: strict path
      `{"a":${e('"F32"', "[1,1,1,1,1,1,1,1]", "[0,4]")},"b":${e('"U8"', "[0000000000000000]", "[4,4]")}}`,
      `{"a":${e('"F32"', "[1]", "[0,4]")},"b":${e('"U8"', "[1000000000000000]", "[4,4]")}}`,
      `{"a":${e('"F32"', "[1]", "[0,4]")},"a":${e('"F32"', "[1]", "[0,4]")}}`,
      `{"a":${e('"F32"', "[1e0]", "[0,4]")}}`,
      `{"a":${e('"F32"', "[1]", "[0,4]")},"b":${e('"F32"', "[0,2]", "[4,4]")}}`,
      `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"dtype":"F32"}}`,
      `{"__metadata__":{"k":1},"a":${e('"F32"', "[1]", "[0,4]")}}`,
      `{"a":${e('"F32"', "[1]", "[0,4]")}} x`,
    ];
    for (const h of headers) {
      const bytes = rawFile(h, f32Bytes(1));
      const n = bytes.length - 12;
      const read = (strictOnly: boolean) => {
        try {
          const r = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length, { strictOnly });
          return { tensors: [...r.tensors.values()], metadata: r.metadata };
        } catch (err) {
          return `${(err as Error).message}`;
        }
      };
      expect(read(false), h).toEqual(read(true));
    }
  });

  // 16,000 zero-size entries took 5 s (24,000: 13 s) when each entry's error offset was re-encoded
  // up front; linear parsing takes about 0.1 s for 32,000 (the bounds allow for a loaded machine,
  // a quadratic parser would need 20 s and 80 s)
  test("parsing is linear in the number of tensors (32,000 and 64,000 entries)", () => {
    const many = (n: number, last = `{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`) => {
      const parts = [`"é":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`];
      for (let i = 1; i < n - 1; i++) parts.push(`"t${i}":{"dtype":"F32","shape":[${i % 3}, 0],"data_offsets":[0,0]}`);
      parts.push(`"last":${last}`);
      return rawFile(`{${parts.join(",")}}`);
    };
    for (const n of [32_000, 64_000]) {
      const bytes = many(n);
      const t0 = performance.now();
      const f = parseSafetensors(bytes);
      const ms = performance.now() - t0;
      expect(f.names().length).toBe(n);
      expect(f.info("last").shape).toEqual([0]);
      expect(ms, `${n} entries`).toBeLessThan(n === 32_000 ? 3000 : 6000);
    }
    // the byte offset of a fault is still exact after thousands of entries (and a 2-byte character)
    const bad = many(32_000, `{"dtype":"Q4","shape":[0],"data_offsets":[0,0]}`);
    const header = new TextDecoder().decode(bad.subarray(8));
    const t0 = performance.now();
    expectSafetensorsError(() => parseSafetensors(bad), /unknown or unsupported dtype "Q4"/, {
      tensor: "last",
      offset: 8 + enc.encode(header.slice(0, header.indexOf('"last"'))).length,
    });
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});

describe("parseSafetensors: the header table (tensor infos made on demand)", () => {
  const canon = (dtype: string, shape: number[], b: number, e: number) =>
    `{"dtype":"${dtype}","shape":[${shape.join(",")}],"data_offsets":[${b},${e}]}`;
  /** The header read by the fast path (as the default does) and by the strict parser alone. */
  const both = (bytes: Uint8Array) => {
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const read = (strictOnly: boolean) => {
      const h = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length, { strictOnly });
      return { names: [...h.tensors.keys()], tensors: [...h.tensors.values()], metadata: h.metadata };
    };
    return [read(false), read(true)];
  };

  test("canonical, reordered and spaced entries, ASCII or not, metadata: as the strict parser reads them", () => {
    const entries = [
      `"w.1":${canon("F32", [2, 3], 0, 24)}`,
      `"w.10" : { "shape" : [ 4 ] , "data_offsets" : [ 24 , 32 ] , "dtype" : "F16" }`, // reordered, spaces
      `"w.2":${canon("BF16", [], 32, 34)}`,
      `"__metadata__":{"format":"pt","dtype":"F32"}`,
      `"b":${canon("U8", [0, 7], 34, 34)}`,
      `"a.bias":{"data_offsets":[34,42],"dtype":"I64","shape":[1]}`,
    ];
    // ASCII only (read as latin1), a 2-byte character, a character above U+FFFF
    for (const extra of [
      "",
      `,"\u00e9t\u00e9":${canon("BOOL", [2], 42, 44)}`,
      `,"\u{1F600}":${canon("U8", [2], 42, 44)}`,
    ]) {
      const bytes = rawFile(`{${entries.join(",")}${extra}}`, new Uint8Array(extra ? 44 : 42));
      const [fast, strict] = both(bytes);
      expect(fast).toEqual(strict);
      expect(fast.names.slice(0, 5)).toEqual(["a.bias", "b", "w.1", "w.10", "w.2"]);
      expect(fast.metadata).toEqual({ format: "pt", dtype: "F32" });
      const f = parseSafetensors(bytes);
      expect(f.names()).toEqual(fast.names);
      expect(f.infos()).toEqual(fast.tensors);
      // one info object per tensor, whichever way it is asked for
      for (const name of f.names()) {
        expect(f.has(name)).toBe(true);
        expect(f.info(name)).toBe(f.info(name));
        expect(f.header.tensors.get(name)).toBe(f.info(name));
        expect(Object.isFrozen(f.info(name).shape)).toBe(true);
      }
      expect(f.has("w")).toBe(false);
      expect(() => f.info("w")).toThrow(WeightsError);
      expect(f.info("w.10")).toEqual({
        name: "w.10",
        dtype: "F16",
        shape: [4],
        size: 4,
        dataOffsets: [24, 32],
        byteOffset: f.header.dataStart + 24,
        byteLength: 8,
      });
    }
  });

  test("140,000 entries: the columns grow past their first 131,072 rows intact", () => {
    const N = 140_000;
    const parts: string[] = [];
    for (let i = 0; i < N; i++) parts.push(`"t${i}":${canon(i % 2 ? "U8" : "I8", [i % 5, 0], 0, 0)}`);
    const f = parseSafetensors(rawFile(`{${parts.join(",")}}`));
    expect(f.names().length).toBe(N);
    for (const i of [0, 131_071, 131_072, 131_073, N - 1]) {
      expect(f.info(`t${i}`)).toMatchObject({ dtype: i % 2 ? "U8" : "I8", shape: [i % 5, 0], dataOffsets: [0, 0] });
    }
  });

  test("a UTF-8 name is decoded as UTF-8, an invalid byte in a name is reported where it is", () => {
    const f = parseSafetensors(rawFile(`{"caf\u00e9":${canon("U8", [1], 0, 1)}}`, [5]));
    expect(f.names()).toEqual(["caf\u00e9"]);
    expect(f.get("caf\u00e9").data[0]).toBe(5);
    const bad = rawFile(`{"caf!":${canon("U8", [1], 0, 1)}}`, [5]);
    bad[8 + 5] = 0xff; // the "!"
    expectSafetensorsError(() => parseSafetensors(bad), /not valid UTF-8/, { offset: 13 });
  });

  test("a canonical-looking __metadata__ is still metadata (and not a string map)", () => {
    expectSafetensorsError(
      () => parseSafetensors(rawFile(`{"__metadata__":${canon("F32", [1], 0, 4)}}`, f32Bytes(1))),
      /"__metadata__" value of "shape" must be a string/,
      { tensor: "__metadata__", offset: 9 },
    );
  });

  test("20,000 names out of order are sorted; a repeated one is reported at its second occurrence", () => {
    const N = 20_000;
    const names = Array.from({ length: N }, (_, i) => `model.layers.${i}.weight`);
    const entry = (i: number) => canon(i % 3 ? "U8" : "I8", i % 2 ? [1] : [1, 1], i, i + 1);
    const header = (list: string[]) => `{${list.map((n, i) => `"${n}":${entry(i % N)}`).join(",")}}`;
    const data = Uint8Array.from({ length: N }, (_, i) => i % 101);
    const f = parseSafetensors(rawFile(header(names), data));
    expect(f.names()).toEqual([...names].sort());
    for (const i of [0, 1, 4095, 4096, 4097, 8191, 8192, 12_345, N - 1]) {
      const info = f.info(names[i]);
      expect(info.dtype).toBe(i % 3 ? "U8" : "I8");
      expect(info.shape).toEqual(i % 2 ? [1] : [1, 1]);
      expect(info.dataOffsets).toEqual([i, i + 1]);
      expect(f.get(names[i]).data[0]).toBe(i % 101);
    }
    const text = header([...names, "model.layers.7.weight"]);
    expectSafetensorsError(() => parseSafetensors(rawFile(text, data)), /duplicate key "model.layers.7.weight"/, {
      offset: 8 + text.lastIndexOf('"model.layers.7.weight"'),
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe("parseSafetensors: every validation rule", () => {
  const ok = (data = 4) => `{"dtype":"F32","shape":[1],"data_offsets":[0,${data}]}`;

  test("file shorter than 8 bytes", () => {
    for (const len of [0, 1, 7]) {
      expectSafetensorsError(() => parseSafetensors(new Uint8Array(len)), /shorter than the 8-byte/, { offset: 0 });
    }
  });

  test("header length beyond the file, absurd, over the limit, or too small", () => {
    const good = rawFile(one(ok()), f32Bytes(1));
    const n = Number(new DataView(good.buffer).getBigUint64(0, true));
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(ok()), f32Bytes(1), { n: n + 5 })),
      /header length \d+ goes beyond the end of the file/,
      {
        offset: 0,
      },
    );
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(ok()), f32Bytes(1), { n: 2n ** 63n + 5n })),
      /header length 9223372036854775813 goes beyond/,
    );
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(ok()), f32Bytes(1), { n: 2n ** 64n - 1n })),
      /18446744073709551615/,
    );
    expectSafetensorsError(() => parseSafetensors(good, { maxHeaderBytes: 16 }), /exceeds the limit of 16 bytes/);
    expectSafetensorsError(() => parseSafetensors(rawFile("", [], { n: 0 })), /too small/);
    // shorter than declared: the JSON is cut
    expectSafetensorsError(() => parseSafetensors(rawFile(one(ok()), f32Bytes(1), { n: n - 20 })), /not valid JSON/);
  });

  test("header must start with '{'", () => {
    expectSafetensorsError(() => parseSafetensors(rawFile(` ${one(ok())}`, f32Bytes(1))), /must start with '\{'/, {
      offset: 8,
    });
    expectSafetensorsError(() => parseSafetensors(rawFile("[]")), /must start with '\{'/);
    expectSafetensorsError(() => parseSafetensors(rawFile("\uFEFF{}")), /found 0xef/);
  });

  test("header not valid UTF-8 (with the offset of the bad byte)", () => {
    const file = rawFile(`{"__metadata__":{"k":"ab"}}`);
    file[8 + 22] = 0xff; // inside "ab"
    expectSafetensorsError(() => parseSafetensors(file), /not valid UTF-8/, { offset: 30 });
    const overlong = rawFile(`{"__metadata__":{"k":"ab"}}`);
    overlong.set([0xc0, 0xaf], 8 + 22);
    expectSafetensorsError(() => parseSafetensors(overlong), /not valid UTF-8/, { offset: 30 });
  });

  test("invalid JSON reports the byte offset", () => {
    // "é" is 2 bytes: the offset must count bytes, not UTF-16 units
    const se = expectSafetensorsError(() => parseSafetensors(rawFile(`{"__metadata__":{"é":"x",}}`)), /not valid JSON/);
    expect(se.offset).toBe(8 + `{"__metadata__":{"é":"x",`.length + 1);
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"a":1} x`)), /after the JSON value/);
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"a":tru}`)), /not valid JSON/);
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"a":"\\x"}`)), /invalid escape/);
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"\\ud800":1}`)), /surrogate/);
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"a":"\t"}`)), /control character/);
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"a":01}`)), /invalid number/);
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"a":${"[".repeat(100000)}}`)), /nesting deeper/);
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"a":1`)), /not valid JSON/);
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"a":1}\u0000`)), /not valid JSON/);
  });

  test("duplicate names and duplicate fields (JSON.parse would keep the last)", () => {
    const dup = `{"t":${ok()},"t":${ok()}}`;
    expectSafetensorsError(() => parseSafetensors(rawFile(dup, f32Bytes(1))), /duplicate key "t"/, {
      offset: 8 + `{"t":${ok()},`.length,
    });
    expectSafetensorsError(
      () => parseSafetensors(rawFile(`{"t\\u0031":${ok()},"t1":${ok()}}`, f32Bytes(1))),
      /duplicate key "t1"/,
    );
    expectSafetensorsError(
      () =>
        parseSafetensors(rawFile(one(`{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}`), f32Bytes(1))),
      /duplicate key "dtype"/,
    );
    expectSafetensorsError(() => parseSafetensors(rawFile(`{"__metadata__":{"a":"1","a":"2"}}`)), /duplicate key "a"/);
    expectSafetensorsError(
      () => parseSafetensors(rawFile(`{"__metadata__":{},"__metadata__":{}}`)),
      /duplicate key "__metadata__"/,
    );
  });

  test("unknown dtype", () => {
    for (const dt of ['"F33"', '"f32"', '"F4"', '""', "32", "null"]) {
      expectSafetensorsError(
        () => parseSafetensors(rawFile(one(`{"dtype":${dt},"shape":[1],"data_offsets":[0,4]}`), f32Bytes(1))),
        /dtype/,
        { tensor: "t", offset: 8 + 1 },
      );
    }
  });

  test("bad shape", () => {
    for (const s of [
      '"2"',
      "null",
      "{}",
      "[-1]",
      "[1.5]",
      "[1e0]",
      "[1.0]",
      '["1"]',
      "[[1]]",
      "[true]",
      "[-0]",
      "[9007199254740993]",
    ]) {
      expectSafetensorsError(
        () => parseSafetensors(rawFile(one(`{"dtype":"F32","shape":${s},"data_offsets":[0,4]}`), f32Bytes(1))),
        /shape/,
        { tensor: "t" },
      );
    }
    expectSafetensorsError(
      () =>
        parseSafetensors(
          rawFile(one(`{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}`), f32Bytes(1)),
        ),
      /too many elements/,
    );
  });

  test("shape × dtype size ≠ END − BEGIN", () => {
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(`{"dtype":"F32","shape":[2],"data_offsets":[0,4]}`), f32Bytes(1))),
      /shape \[2\] × F32 \(4 bytes\) = 8 bytes, but data_offsets \[0, 4\] span 4/,
      { tensor: "t" },
    );
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(`{"dtype":"I64","shape":[],"data_offsets":[0,4]}`), f32Bytes(1))),
      /= 8 bytes/,
    );
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(`{"dtype":"F32","shape":[0],"data_offsets":[0,4]}`), f32Bytes(1))),
      /= 0 bytes/,
    );
  });

  test("bad data_offsets", () => {
    for (const o of ["[0]", "[0,4,4]", '["0",4]', "[0,4.0]", "[-0,4]", "[0,-4]", "null", "4", "[0,1e1]"]) {
      expectSafetensorsError(
        () => parseSafetensors(rawFile(one(`{"dtype":"F32","shape":[1],"data_offsets":${o}}`), f32Bytes(1))),
        /data_offsets must be two non-negative integers/,
        { tensor: "t" },
      );
    }
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(`{"dtype":"U8","shape":[0],"data_offsets":[4,0]}`), f32Bytes(1))),
      /BEGIN > END/,
    );
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(`{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`), f32Bytes(1))),
      /go beyond the end of the data buffer \(4 bytes/,
      { tensor: "t" },
    );
    expectSafetensorsError(
      () =>
        parseSafetensors(
          rawFile(one(`{"dtype":"F32","shape":[1],"data_offsets":[9007199254740990,9007199254740994]}`), f32Bytes(1)),
        ),
      /data_offsets must be two non-negative integers/,
    );
  });

  test("overlaps, holes and trailing bytes", () => {
    const two = (a: string, b: string, data: number) => rawFile(`{"a":${a},"b":${b}}`, new Uint8Array(data));
    const e = (o: string, n = 1) => `{"dtype":"F32","shape":[${n}],"data_offsets":${o}}`;
    const f1 = two(e("[0,8]", 2), e("[4,8]"), 8);
    const dataStart = 8 + Number(new DataView(f1.buffer).getBigUint64(0, true));
    expectSafetensorsError(() => parseSafetensors(f1), /overlap those of "a" \[0, 8\]/, {
      tensor: "b",
      offset: dataStart + 4,
    });
    expectSafetensorsError(() => parseSafetensors(two(e("[0,4]"), e("[0,4]"), 4)), /overlap/);
    expectSafetensorsError(
      () => parseSafetensors(two(e("[0,4]"), e("[8,12]"), 12)),
      /hole in the data buffer: bytes \[4, 8\)/,
      {
        tensor: "b",
        offset: dataStart + 4,
      },
    );
    expectSafetensorsError(
      () => parseSafetensors(two(e("[4,8]"), e("[8,12]"), 12)),
      /hole in the data buffer: bytes \[0, 4\)/,
    );
    expectSafetensorsError(
      () => parseSafetensors(two(e("[0,4]"), e("[4,8]"), 9)),
      /1 trailing bytes after the last tensor/,
      {
        offset: dataStart + 8,
      },
    );
    expectSafetensorsError(() => parseSafetensors(rawFile("{}", [1, 2])), /2 trailing bytes/);
    // an empty tensor inside another's range is an overlap too (as in the reference implementation)
    expectSafetensorsError(() => parseSafetensors(two(e("[0,8]", 2), e("[4,4]", 0), 8)), /overlap/);
    // the fixture's case: overlap + hole; overlap is reported first (sorted by BEGIN)
    expect(parseSafetensors(two(e("[4,8]"), e("[0,4]"), 8)).names()).toEqual(["a", "b"]);
  });

  test("__metadata__ must be an object of string → string", () => {
    for (const m of ['"pt"', "[]", "null", "1", '{"a":1}', '{"a":null}', '{"a":{"b":"c"}}', '{"a":["x"]}']) {
      expectSafetensorsError(() => parseSafetensors(rawFile(`{"__metadata__":${m}}`)), /__metadata__/, {
        tensor: "__metadata__",
      });
    }
  });

  test("tensor entries: not an object, unknown fields, missing fields", () => {
    expectSafetensorsError(() => parseSafetensors(rawFile(one("[]"))), /entry must be an object/, { tensor: "t" });
    expectSafetensorsError(() => parseSafetensors(rawFile(one('"x"'))), /entry must be an object/);
    expectSafetensorsError(
      () =>
        parseSafetensors(rawFile(one(`{"dtype":"F32","shape":[1],"data_offsets":[0,4],"strides":[1]}`), f32Bytes(1))),
      /unknown field "strides"/,
      { tensor: "t" },
    );
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(`{"dtype":"F32","shape":[1]}`), f32Bytes(1))),
      /missing field "data_offsets"/,
    );
    expectSafetensorsError(
      () => parseSafetensors(rawFile(one(`{"shape":[1],"data_offsets":[0,4]}`), f32Bytes(1))),
      /missing field "dtype"/,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe("writeSafetensors", () => {
  const sample = () => ({
    "w.f32": new Tensor(Float32Array.from([1, -2.5, 3e-8, Number.NEGATIVE_INFINITY, 0.1, 7]), [2, 3], "f32"),
    ids: new Tensor(Int32Array.from([5, -1, 2147483647, -2147483648]), [4], "i32"),
    mask: new Tensor(Uint8Array.from([1, 0, 0, 1]), [2, 2], "bool"),
    bytes: new Tensor(Uint8Array.from([0, 255, 7]), [3], "u8"),
    scalar: new Tensor(Float32Array.from([42]), [], "f32"),
    empty: new Tensor(new Float32Array(0), [0, 5], "f32"),
    é: new Tensor(Int32Array.from([1]), [1], "i32"),
  });

  test("round trip (every dtype, scalars, empty tensors, metadata, unicode names)", () => {
    const t = sample();
    const bytes = writeSafetensors(t, { format: "pt", note: "ünï" });
    const f = parseSafetensors(bytes);
    expect(f.metadata).toEqual({ format: "pt", note: "ünï" });
    expect(f.names()).toEqual(Object.keys(t).sort());
    for (const [name, x] of Object.entries(t)) {
      const y = f.get(name);
      expect(y.dtype).toBe(x.dtype);
      expect(y.shape).toEqual(x.shape);
      expect([...y.data]).toEqual([...x.data]);
    }
    expect(f.info("ids").dtype).toBe("I32");
    expect(f.info("mask").dtype).toBe("BOOL");
    // a Map works the same, and without metadata there is no __metadata__
    const g = parseSafetensors(writeSafetensors(new Map(Object.entries(t))));
    expect(g.metadata).toBeUndefined();
    expect(g.names()).toEqual(f.names());
  });

  test("layout: 8-aligned data start, space padding, decreasing element size then name", () => {
    const bytes = writeSafetensors(sample(), undefined, { intDtype: "I64" });
    const f = parseSafetensors(bytes);
    const n = f.header.headerLength;
    expect((8 + n) % 8).toBe(0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(headerText).toMatch(/} *$/);
    expect(headerText.trimEnd().length).toBeGreaterThan(n - 8);
    const order = f.infos().sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
    const sizes = order.map((i) => safetensorsDtypeBytes(i.dtype));
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
    for (const i of order) expect(i.dataOffsets[0] % safetensorsDtypeBytes(i.dtype)).toBe(0);
    expect(order.map((i) => i.name)).toEqual(["ids", "é", "empty", "scalar", "w.f32", "bytes", "mask"]);
    expect(f.info("ids").dtype).toBe("I64");
    expect([...f.get("ids").data]).toEqual([5, -1, 2147483647, -2147483648]);
  });

  test("F16 / BF16 output rounds like the converters", () => {
    const x = new Tensor(Float32Array.from([1, 0.1, -65520, 1e-8, Math.PI]), [5], "f32");
    const f16 = parseSafetensors(writeSafetensors({ x }, undefined, { floatDtype: "F16" }));
    expect(f16.info("x").dtype).toBe("F16");
    expect([...f16.get("x").data]).toEqual([1, 0.0999755859375, Number.NEGATIVE_INFINITY, 0, 3.140625]);
    const bf = parseSafetensors(writeSafetensors({ x }, undefined, { dtypes: { x: "BF16" } }));
    expect(bf.info("x").dtype).toBe("BF16");
    expect([...bf.get("x").data]).toEqual([1, 0.10009765625, -65536, 1.0011717677116394e-8, 3.140625]);
  });

  test("rewriting a canonical file reproduces it byte for byte", () => {
    const t = sample();
    const first = writeSafetensors(t, { format: "pt" }, { intDtype: "I64" });
    const f = parseSafetensors(first);
    const again = writeSafetensors(Object.fromEntries(f.entries()), f.metadata, { intDtype: "I64" });
    expect(again).toEqual(first);
  });

  test("bad arguments are InputErrors", () => {
    const x = new Tensor(new Float32Array(1), [1], "f32");
    expect(() => writeSafetensors({ __metadata__: x })).toThrow(InputError);
    expect(() => writeSafetensors({ x }, undefined, { dtypes: { x: "I64" } })).toThrow(
      /cannot write a f32 tensor "x" as I64/,
    );
    expect(() => writeSafetensors({ x }, { a: 1 as unknown as string })).toThrow(/must be a string/);
    expect(() => writeSafetensors({ "\ud800": x })).toThrow(/not valid Unicode/);
    expect(() => writeSafetensors({ x: [1] as unknown as Tensor })).toThrow(/not a Tensor/);
  });

  test("bool data are written as 0/1", () => {
    const m = new Tensor(Uint8Array.from([0, 3, 255]), [3], "bool");
    expect([...parseSafetensors(writeSafetensors({ m })).get("m").data]).toEqual([0, 1, 1]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("openSafetensors (lazy)", () => {
  const dir = mkdtempSync(join(tmpdir(), "wasmformer-st-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const t = {
    a: new Tensor(Float32Array.from([1, 2, 3]), [3], "f32"),
    b: new Tensor(Int32Array.from([-7]), [1], "i32"),
    m: new Tensor(Uint8Array.from([1, 0]), [2], "bool"),
  };
  const bytes = writeSafetensors(t, { format: "pt" }, { intDtype: "I64" });

  const check = async (src: Parameters<typeof openSafetensors>[0]) => {
    const f = await openSafetensors(src);
    expect(f.names()).toEqual(["a", "b", "m"]);
    expect(f.metadata).toEqual({ format: "pt" });
    expect(f.info("b").dtype).toBe("I64");
    expect([...(await f.get("a")).data]).toEqual([1, 2, 3]);
    expect([...(await f.get("b")).data]).toEqual([-7]);
    expect((await f.get("m")).dtype).toBe("bool");
    await expect(f.get("zz")).rejects.toThrow(WeightsError);
    await f.close();
    await f.close(); // idempotent
    await expect(f.get("a")).rejects.toThrow(InputError);
  };

  test("from a path, a file: URL, a Blob, bytes", async () => {
    const p = join(dir, "m.safetensors");
    writeFileSync(p, bytes);
    await check(p);
    await check(pathToFileURL(p));
    await check(new Blob([bytes]));
    await check(bytes);
    await check(bytes.slice().buffer);
  });

  test("reads only the header up front and each tensor's range on get()", async () => {
    const reads: [number, number][] = [];
    const f = await openSafetensors({
      size: bytes.length,
      read: async (o, l) => {
        reads.push([o, l]);
        return bytes.slice(o, o + l);
      },
    });
    expect(reads).toEqual([
      [0, 8],
      [8, f.header.headerLength],
    ]);
    await f.get("a");
    expect(reads[2]).toEqual([f.info("a").byteOffset, 12]);
  });

  test("same validation as parseSafetensors; a missing file is an InputError", async () => {
    const bad = bytes.slice(0, bytes.length - 1);
    await expect(openSafetensors(new Blob([bad]))).rejects.toThrow(SafetensorsError);
    const p = join(dir, "bad.safetensors");
    writeFileSync(p, bad);
    await expect(openSafetensors(p)).rejects.toThrow(/go beyond the end of the data buffer|trailing/);
    await expect(openSafetensors(new Uint8Array(3))).rejects.toThrow(/shorter than/);
    await expect(openSafetensors(join(dir, "nope.safetensors"))).rejects.toThrow(InputError);
    await expect(openSafetensors(dir)).rejects.toThrow(InputError);
  });

  test("a file that shrinks after open is a SafetensorsError on get()", async () => {
    const p = join(dir, "shrink.safetensors");
    writeFileSync(p, bytes);
    const f = await openSafetensors(p);
    writeFileSync(p, bytes.subarray(0, f.info("a").byteOffset + 2));
    await expect(f.get("a")).rejects.toThrow(/file ended while reading 12 bytes/);
    await f.close();
  });
});

describe("openSafetensors over http", () => {
  const t = {
    w: new Tensor(
      Float32Array.from({ length: 1000 }, (_, i) => i / 7),
      [10, 100],
      "f32",
    ),
    b: new Tensor(Float32Array.from([0.5, -2]), [2], "f32"),
  };
  const bytes = writeSafetensors(t);
  type Mode = "ranges" | "no-ranges" | "unknown-size" | "lying";
  const servers: Server[] = [];
  afterAll(() => {
    for (const srv of servers) srv.close();
  });

  /** A server for `bytes` that answers Range requests as `mode` says; returns its URL and the Range headers it saw. */
  async function serve(mode: Mode): Promise<{ url: string; ranges: (string | undefined)[] }> {
    const ranges: (string | undefined)[] = [];
    const srv = createServer((req, res) => {
      if (req.url !== "/m.safetensors") {
        res.writeHead(404).end();
        return;
      }
      const range = req.headers.range;
      ranges.push(range);
      const m = range ? /^bytes=(\d+)-(\d+)$/.exec(range) : null;
      if (!m || mode === "no-ranges") {
        res.writeHead(200, { "content-length": bytes.length }).end(Buffer.from(bytes));
        return;
      }
      const a = Number(m[1]);
      const b = Math.min(Number(m[2]), bytes.length - 1);
      const shift = mode === "lying" && ranges.length > 2 ? 1 : 0;
      const total = mode === "unknown-size" ? "*" : String(bytes.length);
      res
        .writeHead(206, { "content-range": `bytes ${a + shift}-${b}/${total}`, "content-length": b - a + 1 })
        .end(Buffer.from(bytes.subarray(a, b + 1)));
    });
    servers.push(srv);
    await new Promise<void>((ok) => srv.listen(0, "127.0.0.1", ok));
    return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/m.safetensors`, ranges };
  }

  test("reads the header, then one range per tensor, when the server answers ranges", async () => {
    const { url, ranges } = await serve("ranges");
    const f = await openSafetensors(url);
    expect(ranges).toEqual(["bytes=0-7", `bytes=8-${7 + f.header.headerLength}`]);
    expect([...(await f.get("b")).data]).toEqual([0.5, -2]);
    const [b, w] = [f.info("b"), f.info("w")];
    expect(ranges[2]).toBe(`bytes=${b.byteOffset}-${b.byteOffset + b.byteLength - 1}`);
    expect((await f.get("w")).data).toEqual(t.w.data);
    expect(ranges[3]).toBe(`bytes=${w.byteOffset}-${w.byteOffset + w.byteLength - 1}`);
    expect(ranges).toHaveLength(4);
    await f.close();
  });

  test("a server without range support, or without the total size, gives the whole file once", async () => {
    for (const mode of ["no-ranges", "unknown-size"] as const) {
      const { url, ranges } = await serve(mode);
      const f = await openSafetensors(new URL(url));
      expect((await f.get("w")).data).toEqual(t.w.data);
      expect([...(await f.get("b")).data]).toEqual([0.5, -2]);
      expect(ranges.filter((r) => r === undefined)).toHaveLength(mode === "no-ranges" ? 0 : 1);
      expect(ranges.length).toBe(mode === "no-ranges" ? 1 : 2);
    }
  });

  test("HTTP errors are InputErrors; a changing answer is a SafetensorsError naming the range", async () => {
    const { url } = await serve("ranges");
    await expect(openSafetensors(url.replace("m.safetensors", "missing"))).rejects.toThrow(/HTTP 404/);
    await expect(openSafetensors(url.replace("m.safetensors", "missing"))).rejects.toBeInstanceOf(InputError);
    const lying = await serve("lying");
    const f = await openSafetensors(lying.url);
    await expect(f.get("w")).rejects.toThrow(SafetensorsError);
    await expect(f.get("w")).rejects.toThrow(/Content-Range/);
  });
});

// ---------------------------------------------------------------------------------------------

const FIXTURES = "/work/shared/fixtures";

describe.runIf(existsSync(FIXTURES))("shared fixtures", () => {
  const cases = existsSync(FIXTURES)
    ? readdirSync(FIXTURES).filter((d) => existsSync(join(FIXTURES, d, "case.json")))
    : [];

  test("every model/io file of a valid case parses, round-trips byte for byte, and decodes", () => {
    let files = 0;
    for (const c of cases) {
      const json = JSON.parse(readFileSync(join(FIXTURES, c, "case.json"), "utf8"));
      for (const fn of ["model.safetensors", "io.safetensors"]) {
        const p = join(FIXTURES, c, fn);
        if (!existsSync(p)) continue;
        if (json.expect_error === "safetensors") continue; // checked below
        const bytes = new Uint8Array(readFileSync(p));
        const f = parseSafetensors(bytes);
        const tensors = Object.fromEntries(f.entries());
        for (const i of f.infos()) {
          expect(["F32", "I64", "BOOL"]).toContain(i.dtype);
          expect(i.dataOffsets[0] % safetensorsDtypeBytes(i.dtype)).toBe(0);
        }
        const again = writeSafetensors(tensors, f.metadata, { intDtype: "I64" });
        expect(Buffer.from(again).equals(Buffer.from(bytes)), `${c}/${fn} rewritten`).toBe(true);
        files++;
      }
    }
    expect(files).toBeGreaterThan(50);
  });

  test('error cases with expect_error "safetensors" are rejected with SafetensorsError', async () => {
    const errCases = cases.filter(
      (c) => JSON.parse(readFileSync(join(FIXTURES, c, "case.json"), "utf8")).expect_error === "safetensors",
    );
    expect(errCases).toEqual(
      expect.arrayContaining(["lstm-err_header_len_beyond_file", "mha-err_offsets_overlap", "ops-err_truncated_io"]),
    );
    for (const c of errCases) {
      const rejected: string[] = [];
      for (const fn of ["model.safetensors", "io.safetensors"]) {
        const p = join(FIXTURES, c, fn);
        if (!existsSync(p)) continue;
        let err: unknown;
        try {
          parseSafetensors(readFileSync(p));
        } catch (e) {
          err = e;
        }
        let lazyErr: unknown;
        try {
          await openSafetensors(p);
        } catch (e) {
          lazyErr = e;
        }
        if (err !== undefined) {
          expect(err).toBeInstanceOf(SafetensorsError);
          expect(lazyErr).toBeInstanceOf(SafetensorsError);
          expect((lazyErr as Error).message).toBe((err as Error).message);
          rejected.push(fn);
        } else {
          expect(lazyErr).toBeUndefined();
        }
      }
      expect(rejected, c).toHaveLength(1); // an error case changes exactly one thing
    }
  });
});
