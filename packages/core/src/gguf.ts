/**
 * GGUF files (versions 2 and 3), the format of llama.cpp / ggml: a header of typed metadata
 * key/values and tensor infos, then the tensor data, each tensor at an aligned offset.
 * https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 *
 * ```
 * u32 magic "GGUF" · u32 version · u64 tensor_count · u64 metadata_kv_count
 * metadata_kv_count × { string key · u32 value_type · value }
 * tensor_count × { string name · u32 n_dims · u64 ne[n_dims] · u32 ggml_type · u64 offset }
 * padding to general.alignment (default 32) · tensor data (offsets relative to here)
 * string = u64 length + UTF-8 bytes; array = u32 element type · u64 count · elements
 * ```
 * `ne[0]` is the fastest-varying dimension, so a tensor with `ne = [K, N]` is the row-major
 * `[N, K]` matrix: `shape` is `ne` reversed. Quantized types store rows of `ne[0]` values in blocks.
 *
 * `openGguf` reads and validates the header (strictly: every count, length, offset and range is
 * checked against the file before anything is allocated for it) and reads tensors lazily by byte
 * range, from bytes, a `Blob`, a path (Node) or a URL, like `openSafetensors`.
 */
import { GgufError, InputError, WeightsError } from "./errors.js";
import { bf16ToF32, f16ToF32 } from "./float16.js";
import { type ByteRangeReader, readerFor, type SafetensorsSource } from "./safetensors.js";
import { Tensor } from "./tensor.js";

/** A metadata value: numbers (64-bit integers as `bigint` when beyond 2^53), strings, booleans, arrays. */
export type GgufValue =
  | number
  | bigint
  | string
  | boolean
  | GgufValue[]
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint32Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array;

/** ggml tensor types this reader knows: [name, values per block, bytes per block]. */
export const GGML_TYPES: Readonly<Record<number, readonly [string, number, number]>> = {
  0: ["F32", 1, 4],
  1: ["F16", 1, 2],
  2: ["Q4_0", 32, 18],
  3: ["Q4_1", 32, 20],
  6: ["Q5_0", 32, 22],
  7: ["Q5_1", 32, 24],
  8: ["Q8_0", 32, 34],
  9: ["Q8_1", 32, 36],
  10: ["Q2_K", 256, 84],
  11: ["Q3_K", 256, 110],
  12: ["Q4_K", 256, 144],
  13: ["Q5_K", 256, 176],
  14: ["Q6_K", 256, 210],
  15: ["Q8_K", 256, 292],
  20: ["IQ4_NL", 32, 18],
  23: ["IQ4_XS", 256, 136],
  24: ["I8", 1, 1],
  25: ["I16", 1, 2],
  26: ["I32", 1, 4],
  27: ["I64", 1, 8],
  28: ["F64", 1, 8],
  30: ["BF16", 1, 2],
};

/** Types `get()` dequantizes to f32 (bit for bit as ggml's `dequantize_row_*`). */
export const GGUF_DECODABLE = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"] as const;

export interface GgufTensorInfo {
  readonly name: string;
  /** ggml type id and name (`"Q4_K"`). */
  readonly type: number;
  readonly typeName: string;
  /** ggml's `ne` (fastest-varying first). */
  readonly ne: readonly number[];
  /** Row-major shape: `ne` reversed. */
  readonly shape: readonly number[];
  /** Absolute byte offset in the file and byte length of the data. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface GgufFile {
  readonly version: number;
  readonly alignment: number;
  /** Absolute offset of the tensor data section. */
  readonly dataOffset: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): GgufTensorInfo;
  infos(): GgufTensorInfo[];
  /** The tensor dequantized to f32, in row-major `shape`. */
  get(name: string): Promise<Tensor<"f32">>;
  /** The tensor's stored bytes (blocks as in the file), e.g. for kernels that compute on them. */
  raw(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

export interface GgufOptions {
  /** Largest header (metadata + tensor infos) accepted, in bytes. Default 512 MiB. */
  maxHeaderBytes?: number;
}

const MAGIC = 0x46554747; // "GGUF" little-endian
const MAX_DIMS = 4;
const MAX_NAME = 64; // GGML_MAX_NAME, including the terminating 0 in ggml: names up to 63 bytes
const MAX_KEY = 65535;
const MAX_NESTING = 8;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Minimal encoded size of one value of each metadata type (bounds counts before any allocation). */
const VALUE_MIN: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  8: 8,
  9: 12,
  10: 8,
  11: 8,
  12: 8,
};
const TYPE_NAMES = [
  "UINT8",
  "INT8",
  "UINT16",
  "INT16",
  "UINT32",
  "INT32",
  "FLOAT32",
  "BOOL",
  "STRING",
  "ARRAY",
  "UINT64",
  "INT64",
  "FLOAT64",
];

/** Reads the header through a growing window of the file, never past its end. */
class Cursor {
  private buf: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(this.buf.buffer);
  private start = 0; // file offset of buf[0]
  pos = 0; // file offset of the next byte

  constructor(
    private readonly reader: ByteRangeReader,
    private readonly limit: number,
  ) {}

  get size(): number {
    return this.reader.size;
  }
  remaining(): number {
    return this.reader.size - this.pos;
  }

  /** Make bytes [pos, pos + n) available. */
  async need(n: number, what: string): Promise<void> {
    if (n > this.remaining()) {
      throw new GgufError(`file ends inside ${what} (${n} bytes needed, ${this.remaining()} left)`, {
        offset: this.pos,
      });
    }
    const end = this.pos + n;
    if (end > this.limit) {
      throw new GgufError(`header is larger than the ${this.limit}-byte limit (maxHeaderBytes) at ${what}`, {
        offset: this.pos,
      });
    }
    if (this.pos >= this.start && end <= this.start + this.buf.length) return;
    const len = Math.min(Math.max(n, 1 << 20), this.reader.size - this.pos);
    const b = await this.reader.read(this.pos, len);
    if (b.length < n) throw new GgufError(`file ended while reading ${what}`, { offset: this.pos + b.length });
    this.buf = b;
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.start = this.pos;
  }

  private at(n: number): number {
    const o = this.pos - this.start;
    this.pos += n;
    return o;
  }
  u8(): number {
    return this.view.getUint8(this.at(1));
  }
  u32(): number {
    return this.view.getUint32(this.at(4), true);
  }
  /** A u64 as a number; beyond 2^53 it is returned as Infinity (always rejected by the caller's bounds). */
  u64(): number {
    const o = this.at(8);
    const hi = this.view.getUint32(o + 4, true);
    return hi >= 0x200000 ? Number.POSITIVE_INFINITY : hi * 2 ** 32 + this.view.getUint32(o, true);
  }
  bytes(n: number): Uint8Array {
    const o = this.at(n);
    return this.buf.subarray(o, o + n);
  }
  scalar(type: number): number | bigint | boolean {
    const o = this.at(VALUE_MIN[type]);
    const v = this.view;
    switch (type) {
      case 0:
        return v.getUint8(o);
      case 1:
        return v.getInt8(o);
      case 2:
        return v.getUint16(o, true);
      case 3:
        return v.getInt16(o, true);
      case 4:
        return v.getUint32(o, true);
      case 5:
        return v.getInt32(o, true);
      case 6:
        return v.getFloat32(o, true);
      case 7:
        return v.getUint8(o) !== 0;
      case 10: {
        const x = v.getBigUint64(o, true);
        return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
      }
      case 11: {
        const x = v.getBigInt64(o, true);
        return x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(x) : x;
      }
      default:
        return v.getFloat64(o, true);
    }
  }
}

async function readString(c: Cursor, what: string, maxLen = Number.POSITIVE_INFINITY): Promise<string> {
  await c.need(8, `the length of ${what}`);
  const at = c.pos;
  const n = c.u64();
  if (n > c.remaining()) throw new GgufError(`${what}: length ${n} runs past the end of the file`, { offset: at });
  if (n > maxLen) throw new GgufError(`${what}: length ${n} exceeds ${maxLen} bytes`, { offset: at });
  await c.need(n, what);
  try {
    return utf8.decode(c.bytes(n));
  } catch {
    throw new GgufError(`${what} is not valid UTF-8`, { offset: at + 8 });
  }
}

const TYPED: Record<number, (n: number) => GgufValue & ArrayLike<unknown>> = {
  0: (n) => new Uint8Array(n),
  1: (n) => new Int8Array(n),
  2: (n) => new Uint16Array(n),
  3: (n) => new Int16Array(n),
  4: (n) => new Uint32Array(n),
  5: (n) => new Int32Array(n),
  6: (n) => new Float32Array(n),
  12: (n) => new Float64Array(n),
};

async function readValue(c: Cursor, type: number, key: string, depth: number): Promise<GgufValue> {
  if (VALUE_MIN[type] === undefined) {
    throw new GgufError(`metadata "${key}": unknown value type ${type}`, { offset: c.pos - 4, key });
  }
  if (type === 8) return readString(c, `metadata "${key}" string`);
  if (type !== 9) {
    await c.need(VALUE_MIN[type], `metadata "${key}"`);
    return c.scalar(type) as GgufValue;
  }
  if (depth >= MAX_NESTING) throw new GgufError(`metadata "${key}": arrays nested deeper than ${MAX_NESTING}`, { key });
  await c.need(12, `metadata "${key}" array header`);
  const at = c.pos;
  const et = c.u32();
  const n = c.u64();
  if (VALUE_MIN[et] === undefined)
    throw new GgufError(`metadata "${key}": unknown array element type ${et}`, { offset: at, key });
  if (n * VALUE_MIN[et] > c.remaining()) {
    throw new GgufError(`metadata "${key}": array of ${n} ${TYPE_NAMES[et]} runs past the end of the file`, {
      offset: at + 4,
      key,
    });
  }
  const make = TYPED[et];
  if (make) {
    const out = make(n) as unknown as { [i: number]: number };
    await c.need(n * VALUE_MIN[et], `metadata "${key}" array`);
    for (let i = 0; i < n; i++) out[i] = c.scalar(et) as number;
    return out as unknown as GgufValue;
  }
  const out: GgufValue[] = [];
  for (let i = 0; i < n; i++) out.push(await readValue(c, et, key, depth + 1));
  return out;
}

/**
 * Read and validate a GGUF file's header; tensors are read on `get`/`raw`. Sources as for
 * `openSafetensors`: bytes, a `Blob`, a path or `file:` URL (Node), an `http(s)` URL (byte ranges).
 */
export async function openGguf(source: SafetensorsSource, opts: GgufOptions = {}): Promise<GgufFile> {
  const reader = await readerFor(source, "openGguf");
  try {
    return await parse(reader, opts);
  } catch (e) {
    await reader.close?.();
    throw e;
  }
}

async function parse(reader: ByteRangeReader, opts: GgufOptions): Promise<GgufFile> {
  const c = new Cursor(reader, opts.maxHeaderBytes ?? 512 * 2 ** 20);
  await c.need(24, "the file header");
  const magic = c.u32();
  if (magic !== MAGIC)
    throw new GgufError(`not a GGUF file (magic 0x${magic.toString(16).padStart(8, "0")})`, { offset: 0 });
  const version = c.u32();
  if (version === 1) throw new GgufError("GGUF version 1 is not supported (versions 2 and 3 are)", { offset: 4 });
  if (version !== 2 && version !== 3) {
    throw new GgufError(
      version === 0x03000000 || version === 0x02000000
        ? "big-endian GGUF files are not supported"
        : `unsupported GGUF version ${version}`,
      { offset: 4 },
    );
  }
  const nTensors = c.u64();
  const nKv = c.u64();
  if (nKv * 13 > c.remaining())
    throw new GgufError(`metadata count ${nKv} exceeds what the file can hold`, { offset: 16 });
  if (nTensors * 32 > c.remaining()) {
    throw new GgufError(`tensor count ${nTensors} exceeds what the file can hold`, { offset: 8 });
  }

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const at = c.pos;
    const key = await readString(c, `metadata key #${i}`, MAX_KEY);
    if (key.length === 0) throw new GgufError(`metadata key #${i} is empty`, { offset: at });
    if (metadata.has(key)) throw new GgufError(`duplicate metadata key "${key}"`, { offset: at, key });
    await c.need(4, `the type of metadata "${key}"`);
    metadata.set(key, await readValue(c, c.u32(), key, 0));
  }
  let alignment = 32;
  if (metadata.has("general.alignment")) {
    const a = metadata.get("general.alignment");
    if (typeof a !== "number" || !Number.isInteger(a) || a <= 0 || (a & (a - 1)) !== 0) {
      throw new GgufError(`general.alignment must be a power of two, got ${String(a)}`, { key: "general.alignment" });
    }
    alignment = a;
  }

  const raw: { name: string; type: number; ne: number[]; offset: number; bytes: number; at: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const at = c.pos;
    const name = await readString(c, `tensor name #${i}`, MAX_NAME - 1);
    if (name.length === 0) throw new GgufError(`tensor name #${i} is empty`, { offset: at });
    if (names.has(name)) throw new GgufError(`duplicate tensor name "${name}"`, { offset: at, tensor: name });
    names.add(name);
    await c.need(4, `tensor "${name}" n_dims`);
    const nd = c.u32();
    if (nd < 1 || nd > MAX_DIMS) {
      throw new GgufError(`tensor "${name}": n_dims ${nd} is not in 1..${MAX_DIMS}`, {
        offset: c.pos - 4,
        tensor: name,
      });
    }
    await c.need(nd * 8 + 12, `tensor "${name}" info`);
    const ne: number[] = [];
    let count = 1;
    for (let d = 0; d < nd; d++) {
      const v = c.u64();
      count *= v;
      if (!(count <= Number.MAX_SAFE_INTEGER)) {
        throw new GgufError(`tensor "${name}": dimensions overflow`, { offset: c.pos - 8, tensor: name });
      }
      ne.push(v);
    }
    const type = c.u32();
    const offset = c.u64();
    const t = GGML_TYPES[type];
    if (!t)
      throw new GgufError(`tensor "${name}": unsupported ggml type ${type}`, { offset: c.pos - 12, tensor: name });
    const [tn, blk, bsz] = t;
    if (ne[0] % blk !== 0) {
      throw new GgufError(`tensor "${name}": ne[0] = ${ne[0]} is not a multiple of the ${tn} block size ${blk}`, {
        tensor: name,
      });
    }
    if (offset % alignment !== 0) {
      throw new GgufError(`tensor "${name}": offset ${offset} is not a multiple of the alignment ${alignment}`, {
        offset: c.pos - 8,
        tensor: name,
      });
    }
    raw.push({ name, type, ne, offset, bytes: (count / blk) * bsz, at });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const size = c.size;
  const tensors = new Map<string, GgufTensorInfo>();
  for (const r of raw) {
    const byteOffset = dataOffset + r.offset;
    if (!(byteOffset + r.bytes <= size)) {
      throw new GgufError(
        `tensor "${r.name}": data [${byteOffset}, ${byteOffset + r.bytes}) runs past the end of the file (${size} bytes)`,
        {
          offset: r.at,
          tensor: r.name,
        },
      );
    }
    tensors.set(r.name, {
      name: r.name,
      type: r.type,
      typeName: GGML_TYPES[r.type][0],
      ne: r.ne,
      shape: r.ne.slice().reverse(),
      byteOffset,
      byteLength: r.bytes,
    });
  }
  const sorted = [...tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < sorted.length; i++) {
    const [p, q] = [sorted[i - 1], sorted[i]];
    if (q.byteOffset < p.byteOffset + p.byteLength) {
      throw new GgufError(`tensors "${p.name}" and "${q.name}" overlap`, { offset: q.byteOffset, tensor: q.name });
    }
  }

  let closed = false;
  const info = (name: string): GgufTensorInfo => {
    const t = tensors.get(name);
    if (!t) throw new WeightsError(`GGUF file has no tensor "${name}"`, [name]);
    return t;
  };
  const readRaw = async (name: string): Promise<Uint8Array> => {
    const t = info(name);
    if (closed) throw new InputError(`openGguf: read of "${name}" after close()`);
    const b = await reader.read(t.byteOffset, t.byteLength);
    if (b.length !== t.byteLength) {
      throw new GgufError(`file ended while reading tensor "${name}"`, {
        offset: t.byteOffset + b.length,
        tensor: name,
      });
    }
    return b;
  };
  return {
    version,
    alignment,
    dataOffset,
    metadata,
    names: () => [...tensors.keys()],
    has: (n) => tensors.has(n),
    info,
    infos: () => [...tensors.values()],
    raw: readRaw,
    async get(name) {
      const t = info(name);
      const data = dequantize(
        t.typeName,
        await readRaw(name),
        t.byteLength === 0 ? 0 : (t.byteLength / GGML_TYPES[t.type][2]) * GGML_TYPES[t.type][1],
        name,
      );
      return new Tensor(data, t.shape.slice(), "f32");
    },
    async close() {
      if (closed) return;
      closed = true;
      await reader.close?.();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// dequantization, as ggml's dequantize_row_* (float32 arithmetic, no fused multiply-add)

const f = Math.fround;

/** The 6-bit scale and min of sub-block `j` of a K-quant super-block (`get_scale_min_k4`). */
function scaleMinK4(j: number, q: Uint8Array, o: number): [number, number] {
  if (j < 4) return [q[o + j] & 63, q[o + j + 4] & 63];
  return [(q[o + j + 4] & 0xf) | ((q[o + j - 4] >> 6) << 4), (q[o + j + 4] >> 4) | ((q[o + j] >> 6) << 4)];
}

/**
 * Dequantize `n` values of ggml type `typeName` from their stored blocks to f32, bit for bit as
 * ggml does. Types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K.
 */
export function dequantize(typeName: string, b: Uint8Array, n: number, tensor?: string): Float32Array {
  const y = new Float32Array(n);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const h = (o: number) => f16ToF32(dv.getUint16(o, true));
  const need = (blk: number, bsz: number) => {
    if (n % blk !== 0 || b.length < (n / blk) * bsz) {
      throw new GgufError(`${typeName}: ${b.length} bytes do not hold ${n} values`, { tensor });
    }
    return n / blk;
  };
  switch (typeName) {
    case "F32":
      need(1, 4);
      for (let i = 0; i < n; i++) y[i] = dv.getFloat32(i * 4, true);
      return y;
    case "F16":
      need(1, 2);
      for (let i = 0; i < n; i++) y[i] = h(i * 2);
      return y;
    case "BF16":
      need(1, 2);
      for (let i = 0; i < n; i++) y[i] = bf16ToF32(dv.getUint16(i * 2, true));
      return y;
    case "Q8_0": {
      // { f16 d; i8 qs[32] }: y = qs·d
      const nb = need(32, 34);
      for (let i = 0; i < nb; i++) {
        const d = h(i * 34);
        for (let j = 0; j < 32; j++) y[i * 32 + j] = f(dv.getInt8(i * 34 + 2 + j) * d);
      }
      return y;
    }
    case "Q4_0": {
      // { f16 d; u8 qs[16] }: low nibbles are values 0..15, high nibbles 16..31; y = (q − 8)·d
      const nb = need(32, 18);
      for (let i = 0; i < nb; i++) {
        const d = h(i * 18);
        for (let j = 0; j < 16; j++) {
          const q = b[i * 18 + 2 + j];
          y[i * 32 + j] = f(((q & 0xf) - 8) * d);
          y[i * 32 + j + 16] = f(((q >> 4) - 8) * d);
        }
      }
      return y;
    }
    case "Q4_1": {
      // { f16 d, m; u8 qs[16] }: y = q·d + m
      const nb = need(32, 20);
      for (let i = 0; i < nb; i++) {
        const d = h(i * 20);
        const m = h(i * 20 + 2);
        for (let j = 0; j < 16; j++) {
          const q = b[i * 20 + 4 + j];
          y[i * 32 + j] = f(f((q & 0xf) * d) + m);
          y[i * 32 + j + 16] = f(f((q >> 4) * d) + m);
        }
      }
      return y;
    }
    case "Q4_K":
    case "Q5_K": {
      // { f16 d, dmin; u8 scales[12]; (Q5_K: u8 qh[32];) u8 qs[128] }: 8 sub-blocks of 32,
      // y = d·sc·q − dmin·m, the 5th bit of Q5_K's q from qh
      const five = typeName === "Q5_K";
      const bsz = five ? 176 : 144;
      const nb = need(256, bsz);
      for (let i = 0; i < nb; i++) {
        const o = i * bsz;
        const d = h(o);
        const dmin = h(o + 2);
        const qh = o + 16;
        let ql = o + (five ? 48 : 16);
        let out = i * 256;
        let u1 = 1;
        let u2 = 2;
        for (let is = 0; is < 8; is += 2) {
          const [sc1, m1q] = scaleMinK4(is, b, o + 4);
          const [sc2, m2q] = scaleMinK4(is + 1, b, o + 4);
          const d1 = f(d * sc1);
          const m1 = f(dmin * m1q);
          const d2 = f(d * sc2);
          const m2 = f(dmin * m2q);
          for (let l = 0; l < 32; l++) {
            const hi = five && b[qh + l] & u1 ? 16 : 0;
            y[out + l] = f(f(d1 * ((b[ql + l] & 0xf) + hi)) - m1);
          }
          for (let l = 0; l < 32; l++) {
            const hi = five && b[qh + l] & u2 ? 16 : 0;
            y[out + 32 + l] = f(f(d2 * ((b[ql + l] >> 4) + hi)) - m2);
          }
          out += 64;
          ql += 32;
          u1 <<= 2;
          u2 <<= 2;
        }
      }
      return y;
    }
    case "Q6_K": {
      // { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: q = 4 low bits | 2 high bits − 32, y = d·sc·q
      const nb = need(256, 210);
      for (let i = 0; i < nb; i++) {
        const o = i * 210;
        const d = h(o + 208);
        for (let half = 0; half < 2; half++) {
          const ql = o + half * 64;
          const qh = o + 128 + half * 32;
          const sc = o + 192 + half * 8;
          const out = i * 256 + half * 128;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const hb = b[qh + l];
            const q1 = ((b[ql + l] & 0xf) | ((hb & 3) << 4)) - 32;
            const q2 = ((b[ql + l + 32] & 0xf) | (((hb >> 2) & 3) << 4)) - 32;
            const q3 = ((b[ql + l] >> 4) | (((hb >> 4) & 3) << 4)) - 32;
            const q4 = ((b[ql + l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32;
            y[out + l] = f(f(d * dv.getInt8(sc + is)) * q1);
            y[out + l + 32] = f(f(d * dv.getInt8(sc + is + 2)) * q2);
            y[out + l + 64] = f(f(d * dv.getInt8(sc + is + 4)) * q3);
            y[out + l + 96] = f(f(d * dv.getInt8(sc + is + 6)) * q4);
          }
        }
      }
      return y;
    }
    default:
      throw new GgufError(
        `tensors of type ${typeName} cannot be dequantized (supported: ${GGUF_DECODABLE.join(", ")})`,
        { tensor },
      );
  }
}
