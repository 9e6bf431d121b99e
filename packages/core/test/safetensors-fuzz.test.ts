/**
 * Fuzzing the safetensors reader: valid files of many shapes are mutated at random (seeded), and
 * every mutant must either parse — and then decode every tensor — or be rejected with a
 * `SafetensorsError`. Any other exception (a TypeError, a RangeError from a typed-array view, a
 * stack overflow) fails the test, as does running out of the time budget.
 */
import { describe, expect, test } from "vitest";
// the shared test PRNG, by path (a package dependency core → test-utils → core would be a cycle)
import { mulberry32 } from "../../../tools/test-utils/src/prng.js";
import { SafetensorsError } from "../src/errors.js";
import {
  openSafetensors,
  parseSafetensors,
  parseSafetensorsHeader,
  readHeaderLength,
  writeSafetensors,
} from "../src/safetensors.js";
import { Tensor } from "../src/tensor.js";

/** Seeded draws (mulberry32). */
function prng(seed: number) {
  const next = mulberry32(seed);
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  return { next, int, pick };
}

const enc = new TextEncoder();

function rawFile(header: string, data: Uint8Array): Uint8Array {
  const h = enc.encode(header);
  const pad = (8 - ((8 + h.length) % 8)) % 8;
  const out = new Uint8Array(8 + h.length + pad + data.length);
  new DataView(out.buffer).setUint32(0, h.length + pad, true);
  out.set(h, 8);
  out.fill(0x20, 8 + h.length, 8 + h.length + pad);
  out.set(data, 8 + h.length + pad);
  return out;
}

/** The valid seed files. */
function seeds(): Uint8Array[] {
  const r = prng(1);
  const f32 = (n: number) => Float32Array.from({ length: n }, () => r.next() * 4 - 2);
  const out: Uint8Array[] = [];
  out.push(
    writeSafetensors(
      {
        "w.weight": new Tensor(f32(12), [3, 4], "f32"),
        "w.bias": new Tensor(f32(3), [3], "f32"),
        ids: new Tensor(Int32Array.from([1, -2, 3, 2147483647]), [2, 2], "i32"),
        mask: new Tensor(Uint8Array.from([1, 0, 1, 1, 0, 0]), [2, 3], "bool"),
        scalar: new Tensor(Float32Array.from([0.5]), [], "f32"),
        empty: new Tensor(new Float32Array(0), [2, 0, 3], "f32"),
      },
      { format: "pt", kind: "fuzz" },
      { intDtype: "I64" },
    ),
  );
  out.push(
    writeSafetensors(
      {
        a: new Tensor(f32(5), [5], "f32"),
        b: new Tensor(f32(6), [2, 3], "f32"),
        c: new Tensor(Uint8Array.from([0, 9, 255]), [3], "u8"),
      },
      undefined,
      { dtypes: { a: "F16", b: "BF16" } },
    ),
  );
  out.push(writeSafetensors({ only: new Tensor(Int32Array.from([7, 8, 9]), [3, 1], "i32") }, { "": "" }));
  out.push(writeSafetensors({}));
  out.push(writeSafetensors({}, { format: "pt" }));
  out.push(
    writeSafetensors({
      z: new Tensor(new Int32Array(0), [0], "i32"),
      e: new Tensor(new Uint8Array(0), [0, 0], "bool"),
    }),
  );
  // dtypes the writer does not produce
  const data = new Uint8Array(8 + 8 + 4 + 2 + 2 + 1 + 1);
  new DataView(data.buffer).setFloat64(0, 1.25, true);
  new DataView(data.buffer).setBigUint64(8, 12345n, true);
  new DataView(data.buffer).setUint32(16, 99, true);
  new DataView(data.buffer).setInt16(20, -3, true);
  new DataView(data.buffer).setUint16(22, 65535, true);
  data[24] = 0x38;
  data[25] = 0x80;
  out.push(
    rawFile(
      `{"__metadata__":{"k":"v é"},"d":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"u":{"dtype":"U64","shape":[1],"data_offsets":[8,16]},"u32":{"dtype":"U32","shape":[1,1],"data_offsets":[16,20]},"i16":{"dtype":"I16","shape":[1],"data_offsets":[20,22]},"u16":{"dtype":"U16","shape":[1],"data_offsets":[22,24]},"f8":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[24,25]},"i8":{"dtype":"I8","shape":[1],"data_offsets":[25,26]}}`,
      data,
    ),
  );
  return out;
}

type Rng = ReturnType<typeof prng>;

const TOKENS = [
  "{",
  "}",
  "[",
  "]",
  ",",
  ":",
  '"',
  "0",
  "1",
  "9",
  "-",
  ".",
  "e",
  " ",
  "\\",
  "null",
  "true",
  "\u00e9",
  "\u0000",
];
const KEYS = [
  '"dtype"',
  '"shape"',
  '"data_offsets"',
  '"__metadata__"',
  '"w.bias"',
  '"x"',
  '"F32"',
  '"I64"',
  '"BOOL"',
  '"F16"',
  '"Q4"',
];

function headerLength(b: Uint8Array): number {
  return b.length >= 8 ? new DataView(b.buffer, b.byteOffset).getUint32(0, true) : 0;
}

function setN(b: Uint8Array, n: number | bigint) {
  new DataView(b.buffer, b.byteOffset).setBigUint64(0, BigInt(n), true);
}

/** Replace header text [at, at+del) with `ins`; optionally keep N consistent. */
function editHeader(b: Uint8Array, r: Rng, ins: string, del: number): Uint8Array {
  const n = Math.min(headerLength(b), b.length - 8);
  const at = 8 + r.int(Math.max(n, 1));
  const insB = enc.encode(ins);
  const out = new Uint8Array(b.length - Math.min(del, b.length - at) + insB.length);
  out.set(b.subarray(0, at));
  out.set(insB, at);
  out.set(b.subarray(Math.min(at + del, b.length)), at + insB.length);
  if (r.next() < 0.8) setN(out, Math.max(0, n - Math.min(del, b.length - at) + insB.length));
  return out;
}

/** Re-serialise a structurally edited header (N kept consistent, data untouched). */
function structural(b: Uint8Array, r: Rng): Uint8Array {
  const n = headerLength(b);
  if (b.length < 8 + n) return b;
  let h: Record<string, Record<string, unknown>>;
  try {
    h = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
  } catch {
    return b; // already broken by an earlier round
  }
  if (h === null || typeof h !== "object") return b;
  const names = Object.keys(h).filter((k) => k !== "__metadata__");
  const e = names.length ? h[r.pick(names)] : undefined;
  let text: string | undefined;
  const off = e && Array.isArray(e.data_offsets) ? (e.data_offsets as number[]) : undefined;
  const shape = e && Array.isArray(e.shape) ? (e.shape as number[]) : undefined;
  switch (r.int(9)) {
    case 0:
      if (off) off[r.int(2)] += r.pick([-8, -4, -2, -1, 1, 2, 4, 8]);
      break;
    case 1:
      if (off) off.reverse();
      break;
    case 2:
      if (shape) {
        const c = r.int(3);
        if (c === 0) shape.push(r.pick([0, 1, 2]));
        else if (c === 1 && shape.length) shape.pop();
        else if (shape.length) shape[r.int(shape.length)] = r.pick([0, 1, 2, 3, 2 ** 31]);
      }
      break;
    case 3:
      if (e) e.dtype = r.pick(["F32", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F64", "U64", "I8", "F8_E5M2", "F4"]);
      break;
    case 4: {
      // duplicate an entry under the same name (text level: JSON objects cannot hold duplicates)
      if (!names.length) break;
      const name = r.pick(names);
      const inner = JSON.stringify(h).slice(1, -1);
      text = `{${inner},${JSON.stringify(name)}:${JSON.stringify(h[name])}}`;
      break;
    }
    case 5:
      h.__metadata__ = r.pick([{ a: 1 }, { a: null }, [], "pt", { ok: "yes" }] as unknown as Record<string, unknown>[]);
      break;
    case 6:
      if (e) e[r.pick(["strides", "offset", "dtype2"])] = 0;
      break;
    case 7:
      if (e) delete e[r.pick(["dtype", "shape", "data_offsets"])];
      break;
    case 8:
      if (off) {
        // move a tensor into the middle of another's range, or past the end
        off[0] = r.int(b.length - 8 - n + 8);
        off[1] = off[0] + r.pick([0, 1, 4, 8]);
      }
      break;
  }
  const json = enc.encode(text ?? JSON.stringify(h));
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  const out = new Uint8Array(8 + json.length + pad + (b.length - 8 - n));
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + json.length + pad);
  out.set(b.subarray(8 + n), 8 + json.length + pad);
  setN(out, json.length + pad);
  return out;
}

function mutate(src: Uint8Array, r: Rng): Uint8Array {
  let b: Uint8Array = src.slice();
  const rounds = 1 + r.int(3);
  for (let k = 0; k < rounds; k++) {
    const n = headerLength(b);
    switch (r.int(14)) {
      case 10:
      case 11:
      case 12:
      case 13:
        b = structural(b, r);
        break;
      case 0: {
        // byte flips anywhere
        const flips = 1 + r.int(4);
        for (let j = 0; j < flips && b.length; j++) b[r.int(b.length)] ^= 1 << r.int(8);
        break;
      }
      case 1: {
        // random bytes in the data buffer (BOOL bytes > 1, I64 high words, NaN floats)
        if (b.length > 8 + n) b[8 + n + r.int(b.length - 8 - n)] = r.int(256);
        break;
      }
      case 2: {
        // change a digit of the header
        const header = b.subarray(8, 8 + Math.min(n, b.length - 8));
        const digits: number[] = [];
        header.forEach((c, i) => {
          if (c >= 0x30 && c <= 0x39) digits.push(i);
        });
        if (digits.length) header[r.pick(digits)] = 0x30 + r.int(10);
        break;
      }
      case 3:
        b = editHeader(b, r, r.pick(TOKENS), r.int(3));
        break;
      case 4:
        b = editHeader(b, r, r.pick(KEYS), r.int(12));
        break;
      case 5: {
        // digits inserted (bigger numbers, longer shapes)
        b = editHeader(b, r, String(r.pick([0, 1, 2, 7, 8, 64, 4096, 2 ** 31, 2 ** 53, 1e20])), r.int(2));
        break;
      }
      case 6:
        b = b.slice(0, r.int(b.length + 1)); // truncation
        break;
      case 7: {
        // length prefix
        if (b.length < 8) break;
        const choice = r.int(5);
        if (choice === 0) setN(b, Math.max(0, n + r.int(17) - 8));
        else if (choice === 1) setN(b, r.int(2 ** 32));
        else if (choice === 2) setN(b, (BigInt(r.int(2 ** 32)) << 32n) | BigInt(r.int(2 ** 32)));
        else if (choice === 3) setN(b, 0);
        else setN(b, b.length - 8);
        break;
      }
      case 8: {
        // appended bytes
        const extra = Uint8Array.from({ length: 1 + r.int(64) }, () => (r.next() < 0.5 ? 0x20 : r.int(256)));
        const out = new Uint8Array(b.length + extra.length);
        out.set(b);
        out.set(extra, b.length);
        b = out;
        break;
      }
      case 9: {
        // swap two header bytes (brackets, quotes, digits move around)
        const hn = Math.min(n, b.length - 8);
        if (hn > 1) {
          const i = 8 + r.int(hn);
          const j = 8 + r.int(hn);
          [b[i], b[j]] = [b[j], b[i]];
        }
        break;
      }
    }
  }
  return b;
}

/** An error message with names, numbers and the location suffix blanked out. */
const category = (e: Error) =>
  e.message
    .replace(/ \((tensor|byte) [^)]*\)$/, "")
    .replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, "…")
    .replace(/0x[0-9a-f]+|U\+[0-9a-f]{4}|-?\d+(\.\d+)?(e[+-]?\d+)?/gi, "#")
    .replace(/(\[[#, ]*\])|(got|found) .*$/g, (_m, a, g) => (a ? "[#]" : `${g} …`))
    .slice(0, 90);

/** Parse + decode everything; returns "ok" or the error's first words; rethrows anything unexpected. */
function run(b: Uint8Array, what: string): string {
  try {
    const f = parseSafetensors(b);
    let getError: string | undefined;
    for (const name of f.names()) {
      const info = f.info(name);
      if (info.byteOffset + info.byteLength > b.length) throw new Error(`${what}: "${name}" extends beyond the file`);
      try {
        const t = f.get(name);
        if (t.size !== info.size)
          throw new Error(`${what}: "${name}" decoded to ${t.size} elements, header says ${info.size}`);
      } catch (e) {
        if (!(e instanceof SafetensorsError)) throw e;
        getError ??= `ok, then get(): ${category(e)}`;
      }
    }
    return getError ?? "ok";
  } catch (e) {
    if (e instanceof SafetensorsError) return category(e);
    throw new Error(`${what}: unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
  }
}

/** The header read with the fast scan and by the strict parser alone: the same entries, or the same error. */
function fastAgreesWithStrict(b: Uint8Array, what: string): void {
  let n: number;
  try {
    n = readHeaderLength(b, b.length);
  } catch {
    return;
  }
  const outcome = (strictOnly: boolean) => {
    try {
      const h = parseSafetensorsHeader(b.subarray(8, 8 + n), b.length, { strictOnly });
      return { tensors: [...h.tensors.values()], metadata: h.metadata };
    } catch (e) {
      if (!(e instanceof SafetensorsError)) throw e;
      return `${e.message} @${e.offset}`;
    }
  };
  expect(outcome(false), what).toEqual(outcome(true));
}

describe("safetensors fuzz", () => {
  test("12,000 seeded mutations: parse (and decode) or SafetensorsError, nothing else", async () => {
    const base = seeds();
    for (const s of base) expect(run(s, "seed")).toBe("ok");
    const r = prng(0x5eed);
    const outcomes = new Map<string, number>();
    const t0 = performance.now();
    const N = 12_000;
    for (let it = 0; it < N; it++) {
      const si = r.int(base.length);
      const b = mutate(base[si], r);
      const what = `iteration ${it} (seed file ${si})`;
      const res = run(b, what);
      fastAgreesWithStrict(b, what);
      outcomes.set(res, (outcomes.get(res) ?? 0) + 1);
      if (it % 8 === 0) {
        // the lazy reader must agree with the eager one
        let lazy = "ok";
        try {
          const f = await openSafetensors(b);
          for (const name of f.names()) {
            try {
              await f.get(name);
            } catch (e) {
              if (!(e instanceof SafetensorsError)) throw e;
              if (lazy === "ok") lazy = `ok, then get(): ${category(e)}`;
            }
          }
        } catch (e) {
          if (!(e instanceof SafetensorsError))
            throw new Error(`${what} (lazy): unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`);
          lazy = category(e);
        }
        expect(lazy, what).toBe(res);
      }
    }
    const ms = performance.now() - t0;
    const parsed = [...outcomes].reduce((acc, [k, v]) => acc + (k.startsWith("ok") ? v : 0), 0);
    const table = [...outcomes.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `  ${v}\t${k}`)
      .join("\n");
    // one summary line; the per-outcome table with FUZZ_VERBOSE=1
    console.log(
      `fuzz: ${N} mutants in ${ms.toFixed(0)} ms; ${parsed} parsed; ${outcomes.size} distinct outcomes` +
        (process.env.FUZZ_VERBOSE ? `\n${table}` : ""),
    );
    expect(ms).toBeLessThan(30_000);
    // both paths are exercised, and many different rules fire
    expect(parsed).toBeGreaterThan(N / 50);
    expect(N - parsed).toBeGreaterThan(N / 2);
    expect(outcomes.size).toBeGreaterThan(30);
    const hit = (re: RegExp) => [...outcomes.keys()].some((k) => re.test(k));
    for (const re of [
      /header length # goes beyond/,
      /shorter than the #-byte/,
      /must start with/,
      /not valid UTF/,
      /not valid JSON/,
      /duplicate key/,
      /unknown or unsupported dtype/,
      /invalid dimension/,
      /bytes, but data_offsets/,
      /data_offsets must be two/,
      /BEGIN > END/,
      /beyond the end of the data buffer/,
      /overlap those of/,
      /hole in the data buffer/,
      /trailing bytes/,
      /must be an object of string → string/,
      /unknown field/,
      /missing field/,
      /get\(\): .*does not fit int#/,
      /get\(\): .*BOOL byte/,
    ]) {
      expect(hit(re), String(re)).toBe(true);
    }
  }, 60_000);
});
