/**
 * safetensors reading and writing (https://github.com/huggingface/safetensors, format in
 * `../shared/fixtures/FORMAT.md` §3):
 *
 * ```
 * [0, 8)        N: u64 little-endian, byte length of the header
 * [8, 8+N)      header: UTF-8 JSON object {name: {dtype, shape, data_offsets: [BEGIN, END]}, "__metadata__"?: {str: str}}
 * [8+N, end)    data buffer; data_offsets are relative to its start; tensors cover it exactly
 * ```
 *
 * Validation is strict and happens before any tensor byte is touched, so a hostile file cannot make
 * us allocate more than about its own size: every fault is a `SafetensorsError` naming the tensor
 * and/or the byte offset (from the start of the file).
 *
 * - `parseSafetensors(bytes)`: whole file in memory; `get()` returns zero-copy views where the
 *   dtype and alignment allow (`F32`, `I32`, `U8`, `BOOL`), converted copies otherwise.
 * - `openSafetensors(source)`: reads the header only, then each tensor's byte range on demand, from
 *   a `Blob`/`File` (browsers), a path or `file:` URL (Node, through `fs/promises`), bytes, or any
 *   `ByteRangeReader`.
 * - `writeSafetensors(tensors, metadata)`: the canonical layout (space-padded header so the data
 *   start is 8-aligned; tensors by decreasing element size, then name).
 *
 * @example
 * ```ts
 * const f = parseSafetensors(await readFile("model.safetensors"));
 * const w = f.get("encoder.layer.0.attention.attention.query.weight"); // Tensor f32 [64, 64]
 * ```
 */

import { InputError, SafetensorsError, WeightsError } from "./errors.js";
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from "./float16.js";
import type { TensorFile } from "./parity.js";
import { JsonNumber, JsonSyntaxError, parseStrictJson } from "./strict-json.js";
import { Tensor } from "./tensor.js";

// ---------------------------------------------------------------------------------------------
// dtypes

/** dtypes of the safetensors format that this reader decodes (sub-byte float formats are not). */
export type SafetensorsDType =
  | "BOOL"
  | "U8"
  | "I8"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "I64"
  | "U64"
  | "F64"
  | "F8_E4M3"
  | "F8_E5M2";

const DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** Byte size of one element of a safetensors dtype. */
export function safetensorsDtypeBytes(dtype: SafetensorsDType): number {
  return DTYPE_BYTES[dtype];
}

/** What `get()` returns for a file dtype: floats → f32, integers → i32 (range-checked), U8 → u8, BOOL → bool. */
export function tensorDtypeFor(dtype: SafetensorsDType): "f32" | "i32" | "u8" | "bool" {
  switch (dtype) {
    case "BOOL":
      return "bool";
    case "U8":
      return "u8";
    case "I8":
    case "I16":
    case "U16":
    case "I32":
    case "U32":
    case "I64":
    case "U64":
      return "i32";
    default:
      return "f32";
  }
}

const isDtype = (s: string): s is SafetensorsDType => Object.hasOwn(DTYPE_BYTES, s);

// ---------------------------------------------------------------------------------------------
// header

/** One tensor entry of a header. Offsets are validated; `byteOffset` is from the start of the file. */
export interface SafetensorsTensorInfo {
  readonly name: string;
  /** The dtype stored in the file. */
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Element count. */
  readonly size: number;
  /** `[BEGIN, END)` relative to the data buffer, as written in the header. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute offset of the first byte in the file (`8 + N + BEGIN`). */
  readonly byteOffset: number;
  /** `END − BEGIN`. */
  readonly byteLength: number;
}

/** A parsed and validated header. */
export interface SafetensorsHeader {
  /** `N`, the header's byte length. */
  readonly headerLength: number;
  /** `8 + N`: where the data buffer starts in the file. */
  readonly dataStart: number;
  /** Total file length in bytes. */
  readonly fileLength: number;
  readonly metadata: Record<string, string> | undefined;
  /** Tensors by name, in name order. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
}

export interface SafetensorsOptions {
  /** Largest header accepted, in bytes (default 100 MB, like the reference implementation). */
  maxHeaderBytes?: number;
  /** Always copy tensor data out of the file's buffer (default false: zero-copy views where possible). */
  copy?: boolean;
}

const DEFAULT_MAX_HEADER = 100_000_000;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Read and check `N` from the first 8 bytes of a file of `fileLength` bytes. */
export function readHeaderLength(prefix: Uint8Array, fileLength: number, opts: SafetensorsOptions = {}): number {
  if (fileLength < 8 || prefix.length < 8) {
    throw new SafetensorsError(`file is ${fileLength} bytes long, shorter than the 8-byte header length prefix`, {
      offset: 0,
    });
  }
  const dv = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  const exact = hi === 0 ? String(lo) : dv.getBigUint64(0, true).toString();
  const max = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER;
  if (n > fileLength - 8) {
    throw new SafetensorsError(`header length ${exact} goes beyond the end of the file (${fileLength} bytes)`, {
      offset: 0,
    });
  }
  if (n > max) throw new SafetensorsError(`header length ${exact} exceeds the limit of ${max} bytes`, { offset: 0 });
  if (n < 2) throw new SafetensorsError(`header length ${exact} is too small for a JSON object`, { offset: 0 });
  return n;
}

/** Byte offset of the first invalid UTF-8 sequence in `b` (or -1). */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    let need: number;
    let min: number;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else return i;
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const cc = b[i + k];
      if (cc === undefined || (cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

const fmtShape = (s: readonly unknown[]) =>
  `[${s.map((d) => (d instanceof JsonNumber ? d.raw : JSON.stringify(d))).join(", ")}]`;

function describeJson(v: unknown): string {
  if (v instanceof JsonNumber) return v.raw;
  if (Array.isArray(v)) return fmtShape(v);
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return JSON.stringify(v);
}

/** The dtypes by code (the values of `Entries.dtype`); the scan tries them in this order, common ones first. */
const DTYPES = [...new Set(["F32", "F16", "BF16", ...Object.keys(DTYPE_BYTES)])] as SafetensorsDType[];
/** Each dtype followed by its closing quote, to match a dtype string in place. */
const DTYPES_QUOTED = DTYPES.map((d) => `${d}"`);

/** The shortest tensor entry: `"":{"dtype":"U8","shape":[],"data_offsets":[0,0]}`. */
const MIN_ENTRY_CHARS = 49;

/** A copy of `a` with twice the room. */
function grown<A extends Int32Array | Uint8Array | Float64Array>(a: A): A {
  const b = new (a.constructor as new (n: number) => A)(2 * a.length);
  b.set(a);
  return b;
}

/**
 * The tensor entries of a header as columns (struct of arrays), in document order: entry k has
 * dtype `DTYPES[dtype[k]]`, shape `dims[dimStart[k] … dimStart[k + 1])` and data offsets
 * `[begin[k], end[k])`. After the fast scan its name is `text.slice(nameStart[k], nameEnd[k])` (a
 * string without escapes), made only when asked for; the strict parser gives `names` whole. A
 * header of tens of thousands of tensors costs a few typed arrays and nothing per tensor.
 */
class Entries {
  count = 0;
  nameStart: Int32Array;
  nameEnd: Int32Array;
  dtype: Uint8Array;
  /** `count + 1` starts into `dims`. */
  dimStart: Int32Array;
  begin: Float64Array;
  end: Float64Array;
  dims: Float64Array;
  dimCount = 0;
  names: string[] | undefined;
  metadata: Record<string, string> | undefined;

  constructor(
    readonly text: string,
    /** Whether `text` has surrogates (then UTF-16 order is not code point order). */
    readonly surrogates: boolean,
    /** Whether `text` is the header read as latin1, so that its strings must be ASCII. */
    readonly ascii = false,
  ) {
    // room for every entry of a header up to about 6 MB (growing typed arrays costs more than
    // their zero-filled room); a larger one grows the columns by doubling
    const cap = Math.min(Math.ceil(text.length / MIN_ENTRY_CHARS) + 1, 1 << 17);
    this.nameStart = new Int32Array(cap);
    this.nameEnd = new Int32Array(cap);
    this.dtype = new Uint8Array(cap);
    this.dimStart = new Int32Array(cap + 1);
    this.begin = new Float64Array(cap);
    this.end = new Float64Array(cap);
    this.dims = new Float64Array(2 * cap);
  }

  /** Append a dimension to the entry being read. */
  pushDim(v: number): void {
    if (this.dimCount === this.dims.length) this.dims = grown(this.dims);
    this.dims[this.dimCount++] = v;
  }
  /** Close the entry being read: its shape is the dims pushed since the previous entry. */
  add(nameStart: number, nameEnd: number, dtype: number, begin: number, end: number): void {
    const k = this.count++;
    if (k === this.begin.length) {
      this.nameStart = grown(this.nameStart);
      this.nameEnd = grown(this.nameEnd);
      this.dtype = grown(this.dtype);
      this.dimStart = grown(this.dimStart);
      this.begin = grown(this.begin);
      this.end = grown(this.end);
    }
    this.nameStart[k] = nameStart;
    this.nameEnd[k] = nameEnd;
    this.dtype[k] = dtype;
    this.begin[k] = begin;
    this.end[k] = end;
    this.dimStart[k + 1] = this.dimCount;
  }
  name(k: number): string {
    return this.names ? this.names[k] : this.text.slice(this.nameStart[k], this.nameEnd[k]);
  }
  /** Every name, in document order (made once). */
  allNames(): string[] {
    if (!this.names) {
      const names: string[] = [];
      for (let k = 0; k < this.count; k++) names.push(this.name(k));
      this.names = names;
    }
    return this.names;
  }
  /**
   * Order of the names of entries a and b: Unicode code point order (Python's `sorted`). UTF-16
   * order agrees unless a name has a surrogate.
   */
  compareNames(a: number, b: number): number {
    if (this.names) {
      const x = this.names[a];
      const y = this.names[b];
      return this.surrogates ? compareCodePoints(x, y) : x < y ? -1 : x > y ? 1 : 0;
    }
    // the names in place, unit by unit
    const t = this.text;
    let i = this.nameStart[a];
    let j = this.nameStart[b];
    const iEnd = this.nameEnd[a];
    const jEnd = this.nameEnd[b];
    for (; i < iEnd && j < jEnd; i++, j++) {
      const x = t.charCodeAt(i);
      const y = t.charCodeAt(j);
      if (x !== y) return this.surrogates ? codePointRank(x) - codePointRank(y) : x - y;
    }
    return iEnd - i - (jEnd - j);
  }
  /**
   * Entry indices in name order, or undefined when a name is repeated. Names already in order (the
   * usual file) are compared once each, and not sorted.
   */
  nameOrder(): number[] | undefined {
    const order: number[] = [];
    for (let k = 0; k < this.count; k++) order.push(k);
    for (let k = 1; k < this.count; k++) {
      const c = this.compareNames(k - 1, k);
      if (c === 0) return undefined;
      if (c < 0) continue;
      order.sort((a, b) => this.compareNames(a, b));
      for (let j = 1; j < order.length; j++) if (this.compareNames(order[j - 1], order[j]) === 0) return undefined;
      return order;
    }
    return order;
  }
}

/**
 * A parsed header. The per-tensor info objects are made when first asked for (then kept), and so
 * are the names, the name → entry lookup and the `tensors` map.
 */
class ParsedHeader implements SafetensorsHeader {
  readonly metadata: Record<string, string> | undefined;
  private infoCache: (SafetensorsTensorInfo | undefined)[] | undefined;
  private lookup: Map<string, number> | undefined;
  private map: Map<string, SafetensorsTensorInfo> | undefined;

  constructor(
    readonly headerLength: number,
    readonly dataStart: number,
    readonly fileLength: number,
    private readonly entries: Entries,
    /** Entry indices in name order. */
    private readonly order: readonly number[],
    /** Info objects already made (by the strict parser), in document order. */
    infos?: SafetensorsTensorInfo[],
  ) {
    this.metadata = entries.metadata;
    this.infoCache = infos;
  }

  /** Tensors by name, in name order (built at first use). */
  get tensors(): ReadonlyMap<string, SafetensorsTensorInfo> {
    if (!this.map) {
      const m = new Map<string, SafetensorsTensorInfo>();
      for (const k of this.order) m.set(this.entries.name(k), this.infoAt(k));
      this.map = m;
    }
    return this.map;
  }
  /** Tensor names in name order. */
  names(): string[] {
    const names = this.entries.allNames();
    return this.order.map((k) => names[k]);
  }
  /** Every tensor entry, in name order. */
  infos(): SafetensorsTensorInfo[] {
    return this.order.map((k) => this.infoAt(k));
  }
  has(name: string): boolean {
    return this.indexOf(name) >= 0;
  }
  /** The entry `name`, or undefined. */
  info(name: string): SafetensorsTensorInfo | undefined {
    const k = this.indexOf(name);
    return k < 0 ? undefined : this.infoAt(k);
  }

  private indexOf(name: string): number {
    if (!this.lookup) {
      const m = new Map<string, number>();
      const names = this.entries.allNames();
      for (let k = 0; k < names.length; k++) m.set(names[k], k);
      this.lookup = m;
    }
    return this.lookup.get(name) ?? -1;
  }
  private infoAt(k: number): SafetensorsTensorInfo {
    const e = this.entries;
    const cache = (this.infoCache ??= new Array<SafetensorsTensorInfo | undefined>(e.count).fill(undefined));
    const cached = cache[k];
    if (cached) return cached;
    const dtype = DTYPES[e.dtype[k]];
    const begin = e.begin[k];
    const end = e.end[k];
    const shape: number[] = [];
    for (let d = e.dimStart[k]; d < e.dimStart[k + 1]; d++) shape.push(e.dims[d]);
    const info: SafetensorsTensorInfo = {
      name: e.name(k),
      dtype,
      shape: Object.freeze(shape),
      // exact: the entry was checked to hold size × (element bytes) = END − BEGIN bytes
      size: (end - begin) / DTYPE_BYTES[dtype],
      dataOffsets: Object.freeze([begin, end]) as readonly [number, number],
      byteOffset: this.dataStart + begin,
      byteLength: end - begin,
    };
    cache[k] = info;
    return info;
  }
}

/**
 * Parse and validate a header (the `N` bytes after the length prefix) of a file of `fileLength`
 * bytes. Checks every rule of the format; never looks at the data buffer.
 *
 * The usual header is read by `fastEntries` in one scan; anything it does not handle, and every
 * faulty header, is read again by the strict JSON parser (`strictEntries`), which reports the
 * fault. `opts.strictOnly` (tests) skips the fast scan.
 */
export function parseSafetensorsHeader(
  header: Uint8Array,
  fileLength: number,
  opts: { strictOnly?: boolean } = {},
): SafetensorsHeader {
  return parseHeader(header, fileLength, opts.strictOnly ?? false);
}

function parseHeader(header: Uint8Array, fileLength: number, strictOnly: boolean): ParsedHeader {
  const headerLength = header.length;
  const dataStart = 8 + headerLength;
  const dataLength = fileLength - dataStart;
  if (dataLength < 0) throw new SafetensorsError("header goes beyond the end of the file", { offset: 0 });
  if (header[0] !== 0x7b) {
    throw new SafetensorsError(
      `header must start with '{' (0x7b), found 0x${(header[0] ?? 0).toString(16).padStart(2, "0")}`,
      { offset: 8 },
    );
  }
  // the usual header is ASCII: read it as latin1 and let the fast scan insist on ASCII
  const latin1 = strictOnly ? undefined : asciiText(header);
  let entries = latin1 === undefined ? undefined : fastEntries(latin1, false, true, dataLength);
  const text = entries && latin1 !== undefined ? latin1 : decodeUtf8(header);
  // a surrogate comes from a 4-byte UTF-8 sequence: an all-ASCII header (as many UTF-16 units as
  // bytes) has none
  const surrogates = text.length !== headerLength && /[\ud800-\udfff]/.test(text);
  if (!entries && !strictOnly) entries = fastEntries(text, surrogates, false, dataLength);
  // the fast scan does not look for repeated names: the strict parser reports them where they are
  const byName = entries?.nameOrder();
  if (!byName) entries = undefined;
  let infos: SafetensorsTensorInfo[] | undefined;
  if (!entries) ({ entries, infos } = strictEntries(text, surrogates, dataLength, dataStart));
  // ties in the coverage order are broken by name after the fast scan, by document order after
  // the strict parser (as they always were: the pair an overlap names depends on it)
  checkCoverage(entries, byName, dataLength, dataStart);
  // (the strict parser has rejected repeated names)
  const order = byName ?? (entries.nameOrder() as number[]);
  return new ParsedHeader(headerLength, dataStart, fileLength, entries, order, infos);
}

/** The header as text; a `SafetensorsError` at the first byte that is not UTF-8. */
function decodeUtf8(header: Uint8Array): string {
  try {
    return utf8.decode(header);
  } catch {
    const bad = firstInvalidUtf8(header);
    throw new SafetensorsError("header is not valid UTF-8", { offset: 8 + Math.max(bad, 0) });
  }
}

/**
 * The header bytes as a string of one unit per byte (latin1), when that is cheap: Node's
 * `TextDecoder` converts through ICU at several ns a byte, `Buffer`'s latin1 read is a copy. It
 * is the UTF-8 text when every byte is ASCII, which `fastEntries(…, ascii = true)` checks.
 * Undefined where there is no `Buffer` (browsers, whose `TextDecoder` is fast).
 */
function asciiText(header: Uint8Array): string | undefined {
  const B = (globalThis as { Buffer?: typeof Buffer }).Buffer;
  return B ? B.from(header.buffer, header.byteOffset, header.byteLength).toString("latin1") : undefined;
}

/**
 * The layout rule: sorted by `[BEGIN, END)` (ties in `base` order, document order when
 * undefined), each tensor's range starts where the previous one ended, and the last ends at the
 * end of the data buffer.
 */
function checkCoverage(e: Entries, base: readonly number[] | undefined, dataLength: number, dataStart: number) {
  const { begin, end } = e;
  let seq = base;
  if (!seq) {
    const doc: number[] = [];
    for (let k = 0; k < e.count; k++) doc.push(k);
    seq = doc;
  }
  for (let k = 1; k < seq.length; k++) {
    const a = seq[k - 1];
    const b = seq[k];
    if (begin[a] > begin[b] || (begin[a] === begin[b] && end[a] > end[b])) {
      seq = seq.slice().sort((x, y) => begin[x] - begin[y] || end[x] - end[y]);
      break;
    }
  }
  let cursor = 0;
  let prev = -1;
  for (const t of seq) {
    const b = begin[t];
    if (b < cursor) {
      throw new SafetensorsError(
        `data_offsets [${b}, ${end[t]}] overlap those of "${e.name(prev)}" [${begin[prev]}, ${end[prev]}]`,
        { tensor: e.name(t), offset: dataStart + b },
      );
    }
    if (b > cursor) {
      throw new SafetensorsError(
        `hole in the data buffer: bytes [${cursor}, ${b}) belong to no tensor${prev >= 0 ? ` (after "${e.name(prev)}")` : ""}`,
        { tensor: e.name(t), offset: dataStart + cursor },
      );
    }
    cursor = end[t];
    prev = t;
  }
  if (cursor !== dataLength) {
    throw new SafetensorsError(
      `data buffer has ${dataLength - cursor} trailing bytes after the last tensor (tensors end at ${cursor}, buffer is ${dataLength} bytes)`,
      { offset: dataStart + cursor },
    );
  }
}

/** The entries of any header through the strict JSON parser; throws the first fault. */
function strictEntries(
  text: string,
  surrogates: boolean,
  dataLength: number,
  dataStart: number,
): { entries: Entries; infos: SafetensorsTensorInfo[] } {
  // byte offset in the file of a UTF-16 index of `text`: O(pos), so computed only for an error
  const at = (pos: number) => 8 + utf8Encoder.encode(text.slice(0, pos)).length;
  // Each entry is checked as soon as it is parsed and then dropped (a header may list tens of
  // thousands of tensors). The first fault is kept until the whole header has parsed: a JSON syntax
  // error anywhere comes first, then the first faulty entry in document order.
  const entries = new Entries(text, surrogates);
  const names: string[] = [];
  entries.names = names;
  const infos: SafetensorsTensorInfo[] = [];
  let fault: SafetensorsError | undefined;
  const member = (name: string, entry: unknown, keyPos: number) => {
    if (fault) return;
    const where = () => ({ tensor: name, offset: at(keyPos) });
    try {
      if (name === "__metadata__") entries.metadata = validateMetadata(entry, where);
      else {
        const t = validateEntry(name, entry, dataLength, dataStart, where);
        infos.push(t);
        names.push(name);
        for (const d of t.shape) entries.pushDim(d);
        entries.add(-1, -1, DTYPES.indexOf(t.dtype), t.dataOffsets[0], t.dataOffsets[1]);
      }
    } catch (e) {
      if (!(e instanceof SafetensorsError)) throw e;
      fault = e;
    }
  };
  let root: unknown;
  try {
    root = parseStrictJson(text, { numbers: "raw", maxDepth: 16, onMember: member }).value;
  } catch (e) {
    if (e instanceof JsonSyntaxError)
      throw new SafetensorsError(`header is not valid JSON: ${e.message}`, { offset: at(e.pos) });
    throw e;
  }
  if (root === null || typeof root !== "object" || Array.isArray(root)) {
    throw new SafetensorsError("header is not a JSON object", { offset: 8 });
  }
  if (fault) throw fault;
  return { entries, infos };
}

// The fast scan: small helpers over `text` that take a position and return the next one (or -1),
// so that the scan keeps its state in locals.

/** Index of the first non-whitespace character at or after `i`. */
function skipWs(text: string, i: number): number {
  for (let c = text.charCodeAt(i); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = text.charCodeAt(++i));
  return i;
}

/**
 * Index of the closing quote of the string opening at `i`; -1 when there is none or it has
 * escapes, control characters, or (`ascii`) a unit ≥ 0x80.
 */
function stringEnd(text: string, i: number, ascii: boolean): number {
  if (text.charCodeAt(i) !== 0x22) return -1;
  const top = ascii ? 0x80 : 0x10000;
  for (let k = i + 1; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c === 0x22) return k;
    if (c === 0x5c || c < 0x20 || c >= top) return -1;
  }
  return -1;
}

/** Code of the dtype whose name and closing quote are at `i`, or -1. */
function dtypeAt(text: string, i: number): number {
  for (let d = 0; d < DTYPES_QUOTED.length; d++) if (text.startsWith(DTYPES_QUOTED[d], i)) return d;
  return -1;
}

/**
 * `[int, …]` at `i` of plain non-negative integer literals (< 10¹⁵, so exact), pushed to the dims
 * of `e`; returns the index after `]`, or -1.
 */
function intsAt(text: string, i: number, e: Entries): number {
  if (text.charCodeAt(i) !== 0x5b) return -1;
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) === 0x5d) return i + 1;
  for (;;) {
    const start = i;
    let v = 0;
    for (let c = text.charCodeAt(i); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++i)) v = v * 10 + c - 0x30;
    const len = i - start;
    if (len === 0 || len > 15 || (len > 1 && text.charCodeAt(start) === 0x30)) return -1;
    e.pushDim(v);
    i = skipWs(text, i);
    const c = text.charCodeAt(i++);
    if (c === 0x5d) return i;
    if (c !== 0x2c) return -1;
    i = skipWs(text, i);
  }
}

/**
 * Check the entry being read (its dims are those pushed since `d0`) and add it; false when it
 * breaks a rule (then the strict parser reports which).
 */
function closeEntry(
  e: Entries,
  d0: number,
  nameStart: number,
  nameEnd: number,
  dt: number,
  begin: number,
  end: number,
  dataLength: number,
): boolean {
  let size = 1;
  let zero = false;
  for (let k = d0; k < e.dimCount; k++) {
    size *= e.dims[k];
    if (e.dims[k] === 0) zero = true;
  }
  if (zero) size = 0;
  else if (size > Number.MAX_SAFE_INTEGER) return false;
  if (begin > end || end > dataLength || size * DTYPE_BYTES[DTYPES[dt]] !== end - begin) return false;
  e.add(nameStart, nameEnd, dt, begin, end);
  return true;
}

/**
 * The value of the entry named `text[nameStart, nameEnd)` when it is at `i` in the layout that the
 * reference writer (and ours) produces, `:{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}`:
 * matched with a few native string comparisons instead of character by character. Returns the
 * index after it, or -1 when it is laid out otherwise or breaks a rule (the dims it pushed are
 * then the caller's to drop).
 */
function canonicalEntry(
  text: string,
  i: number,
  e: Entries,
  nameStart: number,
  nameEnd: number,
  dataLength: number,
): number {
  if (!text.startsWith(':{"dtype":"', i)) return -1;
  i += 11;
  const dt = dtypeAt(text, i);
  if (dt < 0) return -1;
  i += DTYPES_QUOTED[dt].length;
  if (!text.startsWith(',"shape":', i)) return -1;
  const d0 = e.dimCount;
  i = intsAt(text, i + 9, e);
  if (i < 0 || !text.startsWith(',"data_offsets":', i)) return -1;
  const at = e.dimCount;
  i = intsAt(text, i + 16, e);
  if (i < 0 || e.dimCount !== at + 2 || text.charCodeAt(i) !== 0x7d) return -1;
  e.dimCount = at;
  return closeEntry(e, d0, nameStart, nameEnd, dt, e.dims[at], e.dims[at + 1], dataLength) ? i + 1 : -1;
}

const FIELD_DTYPE = 1;
const FIELD_SHAPE = 2;
const FIELD_OFFSETS = 4;

/**
 * The value of the entry named `text[nameStart, nameEnd)` at `i` (from the `:`), in any layout:
 * the fields `dtype`, `shape`, `data_offsets` in any order, whitespace anywhere. Returns the index
 * after it, or -1.
 */
function entryAt(text: string, i: number, e: Entries, nameStart: number, nameEnd: number, dataLength: number): number {
  i = skipWs(text, i);
  if (text.charCodeAt(i) !== 0x3a) return -1;
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) !== 0x7b) return -1;
  i = skipWs(text, i + 1);
  let dt = -1;
  let seen = 0;
  let begin = 0;
  let end = 0;
  const d0 = e.dimCount;
  for (let f = 0; f < 3; f++) {
    let field: number;
    if (text.charCodeAt(i) !== 0x22) return -1;
    if (text.startsWith('dtype"', i + 1)) field = FIELD_DTYPE;
    else if (text.startsWith('shape"', i + 1)) field = FIELD_SHAPE;
    else if (text.startsWith('data_offsets"', i + 1)) field = FIELD_OFFSETS;
    else return -1;
    if (seen & field) return -1;
    seen |= field;
    i = skipWs(text, i + (field === FIELD_OFFSETS ? 14 : 7));
    if (text.charCodeAt(i) !== 0x3a) return -1;
    i = skipWs(text, i + 1);
    if (field === FIELD_DTYPE) {
      dt = text.charCodeAt(i) === 0x22 ? dtypeAt(text, i + 1) : -1;
      if (dt < 0) return -1;
      i += DTYPES_QUOTED[dt].length + 1;
    } else if (field === FIELD_SHAPE) {
      i = intsAt(text, i, e);
      if (i < 0) return -1;
    } else {
      // read like a shape, then taken back out of the dims
      const at = e.dimCount;
      i = intsAt(text, i, e);
      if (i < 0 || e.dimCount !== at + 2) return -1;
      begin = e.dims[at];
      end = e.dims[at + 1];
      e.dimCount = at;
    }
    i = skipWs(text, i);
    if (text.charCodeAt(i++) !== (f < 2 ? 0x2c : 0x7d)) return -1;
    i = skipWs(text, i);
  }
  return closeEntry(e, d0, nameStart, nameEnd, dt, begin, end, dataLength) ? i : -1;
}

/** The `__metadata__` value at `i` (from the `:`), a flat object of strings, into `e.metadata`; the index after it, or -1. */
function metadataAt(text: string, i: number, e: Entries): number {
  if (e.metadata) return -1; // repeated
  i = skipWs(text, i);
  if (text.charCodeAt(i) !== 0x3a) return -1;
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) !== 0x7b) return -1;
  i = skipWs(text, i + 1);
  const md: Record<string, string> = {};
  let go = text.charCodeAt(i) !== 0x7d;
  if (!go) i++;
  while (go) {
    const kEnd = stringEnd(text, i, e.ascii);
    if (kEnd < 0) return -1;
    const k = text.slice(i + 1, kEnd);
    i = skipWs(text, kEnd + 1);
    if (Object.hasOwn(md, k) || text.charCodeAt(i) !== 0x3a) return -1;
    i = skipWs(text, i + 1);
    const vEnd = stringEnd(text, i, e.ascii);
    if (vEnd < 0) return -1;
    Object.defineProperty(md, k, {
      value: text.slice(i + 1, vEnd),
      writable: true,
      enumerable: true,
      configurable: true,
    });
    i = skipWs(text, vEnd + 1);
    const c = text.charCodeAt(i++);
    if (c !== 0x2c && c !== 0x7d) return -1;
    go = c === 0x2c;
    if (go) i = skipWs(text, i);
  }
  e.metadata = md;
  return i;
}

/**
 * One scan of the usual header straight into `Entries`, with no intermediate JSON values:
 * entries with exactly the fields `dtype`, `shape`, `data_offsets`, strings without escapes,
 * integers as plain literals of at most 15 digits, an optional flat `__metadata__` of strings
 * (with `ascii`, strings of ASCII only: every unit of an accepted header is then ASCII). Returns
 * undefined at the first thing it does not handle or that breaks a rule (then
 * `strictEntries` reads the header and reports the fault): what it returns is what
 * `strictEntries` would return, except that repeated tensor names are left to the caller to find.
 */
function fastEntries(text: string, surrogates: boolean, ascii: boolean, dataLength: number): Entries | undefined {
  const e = new Entries(text, surrogates, ascii);
  // printable ASCII without a backslash (checked natively): a name ends at the next quote
  const plain = ascii && !/[^\x20-\x5b\x5d-\x7e]/.test(text);
  let i = skipWs(text, 0);
  if (text.charCodeAt(i) !== 0x7b) return undefined;
  i = skipWs(text, i + 1);
  let more = text.charCodeAt(i) !== 0x7d;
  if (!more) i++;
  while (more) {
    const nameStart = i + 1;
    const nameEnd = plain
      ? text.charCodeAt(i) === 0x22
        ? text.indexOf('"', nameStart)
        : -1
      : stringEnd(text, i, e.ascii);
    if (nameEnd < 0) return undefined;
    if (nameEnd - nameStart === 12 && text.startsWith("__metadata__", nameStart)) i = metadataAt(text, nameEnd + 1, e);
    else {
      const d0 = e.dimCount;
      i = canonicalEntry(text, nameEnd + 1, e, nameStart, nameEnd, dataLength);
      if (i < 0) {
        e.dimCount = d0;
        i = entryAt(text, nameEnd + 1, e, nameStart, nameEnd, dataLength);
      }
    }
    if (i < 0) return undefined;
    i = skipWs(text, i);
    const c = text.charCodeAt(i++);
    if (c !== 0x2c && c !== 0x7d) return undefined;
    more = c === 0x2c;
    if (more) i = skipWs(text, i);
  }
  return skipWs(text, i) === text.length ? e : undefined;
}

function validateMetadata(entry: unknown, where: () => { tensor: string; offset: number }): Record<string, string> {
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    throw new SafetensorsError(
      `"__metadata__" must be an object of string → string, got ${describeJson(entry)}`,
      where(),
    );
  }
  const md: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
    if (typeof v !== "string") {
      throw new SafetensorsError(
        `"__metadata__" value of ${JSON.stringify(k)} must be a string, got ${describeJson(v)}`,
        where(),
      );
    }
    Object.defineProperty(md, k, { value: v, writable: true, enumerable: true, configurable: true });
  }
  return md;
}

const ENTRY_KEYS = ["dtype", "shape", "data_offsets"];

function validateEntry(
  name: string,
  entry: unknown,
  dataLength: number,
  dataStart: number,
  where: () => { tensor: string; offset: number },
): SafetensorsTensorInfo {
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    throw new SafetensorsError(
      `entry must be an object {dtype, shape, data_offsets}, got ${describeJson(entry)}`,
      where(),
    );
  }
  const e = entry as Record<string, unknown>;
  for (const k of Object.keys(e)) {
    if (!ENTRY_KEYS.includes(k))
      throw new SafetensorsError(`unknown field ${JSON.stringify(k)} in tensor entry`, where());
  }
  for (const k of ENTRY_KEYS) {
    if (!Object.hasOwn(e, k)) throw new SafetensorsError(`missing field "${k}"`, where());
  }
  const dtype = e.dtype;
  if (typeof dtype !== "string")
    throw new SafetensorsError(`dtype must be a string, got ${describeJson(dtype)}`, where());
  if (!isDtype(dtype)) throw new SafetensorsError(`unknown or unsupported dtype ${JSON.stringify(dtype)}`, where());

  const shapeRaw = e.shape;
  if (!Array.isArray(shapeRaw))
    throw new SafetensorsError(`shape must be an array, got ${describeJson(shapeRaw)}`, where());
  const shape: number[] = [];
  for (const d of shapeRaw) {
    if (!(d instanceof JsonNumber) || !d.isUnsignedIntegerLiteral) {
      throw new SafetensorsError(`shape ${fmtShape(shapeRaw)} has an invalid dimension ${describeJson(d)}`, where());
    }
    shape.push(d.value);
  }
  let size = 1;
  if (shape.includes(0)) size = 0;
  else {
    for (const d of shape) {
      size *= d;
      if (size > Number.MAX_SAFE_INTEGER) {
        throw new SafetensorsError(`shape ${fmtShape(shapeRaw)} has too many elements`, where());
      }
    }
  }

  const off = e.data_offsets;
  if (
    !Array.isArray(off) ||
    off.length !== 2 ||
    !off.every((v) => v instanceof JsonNumber && v.isUnsignedIntegerLiteral)
  ) {
    throw new SafetensorsError(
      `data_offsets must be two non-negative integers [BEGIN, END], got ${describeJson(off)}`,
      where(),
    );
  }
  const begin = (off[0] as JsonNumber).value;
  const end = (off[1] as JsonNumber).value;
  if (begin > end) throw new SafetensorsError(`data_offsets [${begin}, ${end}]: BEGIN > END`, where());
  if (end > dataLength) {
    throw new SafetensorsError(
      `data_offsets [${begin}, ${end}] go beyond the end of the data buffer (${dataLength} bytes; file truncated?)`,
      where(),
    );
  }
  const bytes = size * DTYPE_BYTES[dtype];
  if (bytes !== end - begin) {
    throw new SafetensorsError(
      `shape [${shape.join(", ")}] × ${dtype} (${DTYPE_BYTES[dtype]} bytes) = ${bytes} bytes, but data_offsets [${begin}, ${end}] span ${end - begin}`,
      where(),
    );
  }
  return {
    name,
    dtype,
    shape: Object.freeze(shape),
    size,
    dataOffsets: Object.freeze([begin, end]) as readonly [number, number],
    byteOffset: dataStart + begin,
    byteLength: end - begin,
  };
}

/**
 * Order strings by Unicode code point (Python's `sorted`), not by UTF-16 unit. Both orders agree
 * except between a surrogate (part of a code point ≥ U+10000) and a unit in U+E000–U+FFFF, so the
 * first differing units are compared after moving surrogates above U+FFFF's units.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    const x = a.charCodeAt(k);
    const y = b.charCodeAt(k);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

const codePointRank = (u: number) => (u < 0xd800 ? u : u < 0xe000 ? u + 0x2000 : u - 0x800);

// ---------------------------------------------------------------------------------------------
// decoding tensor bytes

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** `bytes` as an `align`-aligned, native-order buffer (a copy when unaligned, big-endian or `copy`). */
function native(bytes: Uint8Array, elem: number, copy: boolean): Uint8Array {
  let b = bytes;
  if (copy || b.byteOffset % elem !== 0 || !LITTLE_ENDIAN) b = bytes.slice();
  if (!LITTLE_ENDIAN && elem > 1) {
    for (let k = 0; k < b.length; k += elem) b.subarray(k, k + elem).reverse();
  }
  return b;
}

let e4m3Table: Float32Array | undefined;
let e5m2Table: Float32Array | undefined;

/** F8_E4M3 (the "fn" variant: bias 7, no infinities, S.1111.111 = NaN) → f32 for all 256 codes. */
function e4m3(): Float32Array {
  if (!e4m3Table) {
    e4m3Table = new Float32Array(256);
    for (let c = 0; c < 256; c++) {
      const s = c & 0x80 ? -1 : 1;
      const e = (c >>> 3) & 0xf;
      const m = c & 7;
      e4m3Table[c] = e === 15 && m === 7 ? Number.NaN : e === 0 ? s * m * 2 ** -9 : s * (1 + m / 8) * 2 ** (e - 7);
    }
  }
  return e4m3Table;
}

/** F8_E5M2 is the top byte of a binary16. */
function e5m2(): Float32Array {
  if (!e5m2Table) e5m2Table = f16ArrayToF32(Uint16Array.from({ length: 256 }, (_, c) => c << 8));
  return e5m2Table;
}

/**
 * Decode the bytes of one tensor (exactly `info.byteLength` of them) into a `Tensor`.
 * Zero-copy for F32/I32/U8/BOOL when aligned and `copy` is false.
 */
export function decodeTensor(info: SafetensorsTensorInfo, bytes: Uint8Array, copy = false): Tensor {
  const { name, dtype, shape, size } = info;
  if (bytes.length !== info.byteLength) {
    throw new SafetensorsError(`expected ${info.byteLength} data bytes, got ${bytes.length}`, {
      tensor: name,
      offset: info.byteOffset,
    });
  }
  const elem = DTYPE_BYTES[dtype];
  const b = native(bytes, elem, copy && (dtype === "F32" || dtype === "I32" || dtype === "U8" || dtype === "BOOL"));
  const int32Fault = (k: number, v: bigint | number) =>
    new SafetensorsError(`${dtype} value ${v} at element ${k} does not fit int32`, {
      tensor: name,
      offset: info.byteOffset + k * elem,
    });
  switch (dtype) {
    case "F32":
      return new Tensor(new Float32Array(b.buffer, b.byteOffset, size), shape, "f32");
    case "F16":
      return new Tensor(f16ArrayToF32(new Uint16Array(b.buffer, b.byteOffset, size)), shape, "f32");
    case "BF16":
      return new Tensor(bf16ArrayToF32(new Uint16Array(b.buffer, b.byteOffset, size)), shape, "f32");
    case "F64":
      return new Tensor(Float32Array.from(new Float64Array(b.buffer, b.byteOffset, size)), shape, "f32");
    case "F8_E4M3":
    case "F8_E5M2": {
      const table = dtype === "F8_E4M3" ? e4m3() : e5m2();
      const out = new Float32Array(size);
      for (let k = 0; k < size; k++) out[k] = table[b[k]];
      return new Tensor(out, shape, "f32");
    }
    case "I32":
      return new Tensor(new Int32Array(b.buffer, b.byteOffset, size), shape, "i32");
    case "U32": {
      const u = new Uint32Array(b.buffer, b.byteOffset, size);
      for (let k = 0; k < size; k++) if (u[k] > 0x7fffffff) throw int32Fault(k, u[k]);
      return new Tensor(Int32Array.from(u), shape, "i32");
    }
    case "I64":
    case "U64": {
      const w = new Int32Array(b.buffer, b.byteOffset, size * 2); // little-endian (lo, hi) pairs
      const out = new Int32Array(size);
      const signed = dtype === "I64";
      for (let k = 0; k < size; k++) {
        const lo = w[2 * k];
        const hi = w[2 * k + 1];
        if (signed ? hi !== lo >> 31 : hi !== 0 || lo < 0) {
          const big = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
          throw int32Fault(k, signed ? BigInt.asIntN(64, big) : big);
        }
        out[k] = lo;
      }
      return new Tensor(out, shape, "i32");
    }
    case "I16":
      return new Tensor(Int32Array.from(new Int16Array(b.buffer, b.byteOffset, size)), shape, "i32");
    case "U16":
      return new Tensor(Int32Array.from(new Uint16Array(b.buffer, b.byteOffset, size)), shape, "i32");
    case "I8":
      return new Tensor(Int32Array.from(new Int8Array(b.buffer, b.byteOffset, size)), shape, "i32");
    case "U8":
      return new Tensor(b, shape, "u8");
    case "BOOL": {
      for (let k = 0; k < size; k++) {
        if (b[k] > 1) {
          throw new SafetensorsError(
            `BOOL byte 0x${b[k].toString(16).padStart(2, "0")} at element ${k} is neither 0 nor 1`,
            {
              tensor: name,
              offset: info.byteOffset + k,
            },
          );
        }
      }
      return new Tensor(b, shape, "bool");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// in-memory file

const toBytes = (b: Uint8Array | ArrayBuffer): Uint8Array => (b instanceof Uint8Array ? b : new Uint8Array(b));

/** A whole safetensors file in memory (see `parseSafetensors`). */
export class SafetensorsFile implements TensorFile {
  private readonly parsed: ParsedHeader;
  private readonly bytes: Uint8Array;
  private readonly copy: boolean;

  constructor(bytes: Uint8Array | ArrayBuffer, opts: SafetensorsOptions = {}) {
    const b = toBytes(bytes);
    const n = readHeaderLength(b, b.length, opts);
    this.parsed = parseHeader(b.subarray(8, 8 + n), b.length, false);
    this.bytes = b;
    this.copy = opts.copy ?? false;
  }

  get header(): SafetensorsHeader {
    return this.parsed;
  }
  get metadata(): Record<string, string> | undefined {
    return this.parsed.metadata;
  }
  /** Tensor names in name order. */
  names(): string[] {
    return this.parsed.names();
  }
  has(name: string): boolean {
    return this.parsed.has(name);
  }
  /** dtype, shape and byte range of a tensor; throws `WeightsError` for an unknown name. */
  info(name: string): SafetensorsTensorInfo {
    return this.parsed.info(name) ?? noTensor(name);
  }
  /** The tensor `name` (f32 / i32 / u8 / bool, see `tensorDtypeFor`); may share the file's memory. */
  get(name: string): Tensor {
    const t = this.info(name);
    return decodeTensor(t, this.bytes.subarray(t.byteOffset, t.byteOffset + t.byteLength), this.copy);
  }
  /** Every tensor entry, in name order. */
  infos(): SafetensorsTensorInfo[] {
    return this.parsed.infos();
  }
  /** `[name, tensor]` pairs in name order, decoded one at a time. */
  *entries(): IterableIterator<[string, Tensor]> {
    for (const name of this.parsed.names()) yield [name, this.get(name)];
  }
}

const noTensor = (name: string): never => {
  throw new WeightsError(`safetensors file has no tensor "${name}"`, [name]);
};

/**
 * Parse a whole safetensors file held in memory. Validates the header and the layout up front;
 * `get()` decodes one tensor (zero-copy for aligned F32/I32/U8/BOOL unless `opts.copy`).
 */
export function parseSafetensors(bytes: Uint8Array | ArrayBuffer, opts: SafetensorsOptions = {}): SafetensorsFile {
  return new SafetensorsFile(bytes, opts);
}

// ---------------------------------------------------------------------------------------------
// lazy file

/** Random access to the bytes of a file. `read` may return fewer bytes only at the end of the file. */
export interface ByteRangeReader {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Read `dst.length` bytes at `offset` into `dst` (fewer only at the end of the file); returns the count. */
  readInto?(offset: number, dst: Uint8Array): Promise<number>;
  close?(): Promise<void> | void;
}

/** Where `openSafetensors` reads from. Strings and `URL`s are file paths / `file:` URLs in Node, fetched elsewhere. */
export type SafetensorsSource = Blob | string | URL | Uint8Array | ArrayBuffer | ByteRangeReader;

/** A safetensors file whose tensors are read on demand (see `openSafetensors`). */
export interface LazySafetensorsFile {
  readonly header: SafetensorsHeader;
  readonly metadata: Record<string, string> | undefined;
  names(): string[];
  has(name: string): boolean;
  info(name: string): SafetensorsTensorInfo;
  infos(): SafetensorsTensorInfo[];
  /** Read and decode one tensor (its own fresh buffer: nothing is shared with other tensors). */
  get(name: string): Promise<Tensor>;
  /**
   * Pass the stored bytes of one tensor (little-endian, its file dtype: see `info`) to `sink` in
   * order, `chunkBytes` at a time (default 4 MiB), through one buffer the file reuses for every
   * call: reading a checkpoint this way allocates nothing per tensor. `sink(bytes, at)` gets the
   * bytes at byte `at` of the tensor and must copy them before returning.
   */
  readRaw(name: string, sink: (bytes: Uint8Array, at: number) => void, chunkBytes?: number): Promise<void>;
  /** Release the file handle (Node); `get` fails afterwards. */
  close(): Promise<void>;
}

const isNode = typeof process !== "undefined" && !!process.versions?.node;

function blobReader(blob: Blob): ByteRangeReader {
  return {
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
  };
}

function bytesReader(bytes: Uint8Array): ByteRangeReader {
  return { size: bytes.length, read: async (offset, length) => bytes.subarray(offset, offset + length) };
}

/** GET `url` (the byte range `range` when given; `expect206`: the server must answer it as a range). */
async function fetchOk(url: string, range?: string, expect206 = false): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, range ? { headers: { Range: range } } : undefined);
  } catch (e) {
    throw new InputError(`openSafetensors: cannot fetch ${url}: ${(e as Error).message}`);
  }
  if (!res.ok || (expect206 && res.status !== 206)) {
    throw new InputError(`openSafetensors: cannot fetch ${url}${range ? ` (${range})` : ""}: HTTP ${res.status}`);
  }
  return res;
}

/** `Content-Range: bytes a-b/total` → [a, b, total] (total NaN when "*"), or undefined. */
function contentRange(res: Response): [number, number, number] | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range")?.trim() ?? "");
  return m ? [Number(m[1]), Number(m[2]), m[3] === "*" ? Number.NaN : Number(m[3])] : undefined;
}

/**
 * http(s): read by byte range (`Range: bytes=a-b`, answered 206) when the server supports it, so a
 * checkpoint is never downloaded as a whole; a server that answers the first probe with 200 (no
 * range support) or without the total size gives the whole body, read from memory.
 */
async function httpReader(url: string): Promise<ByteRangeReader> {
  const probe = await fetchOk(url, "bytes=0-7");
  const cr = probe.status === 206 ? contentRange(probe) : undefined;
  if (!cr || !Number.isFinite(cr[2])) {
    if (probe.status === 206) await probe.body?.cancel();
    const res = probe.status === 206 ? await fetchOk(url) : probe;
    return bytesReader(new Uint8Array(await res.arrayBuffer()));
  }
  const size = cr[2];
  let first: Uint8Array | undefined = new Uint8Array(await probe.arrayBuffer());
  return {
    size,
    async read(offset, length) {
      if (length <= 0 || offset >= size) return new Uint8Array(0);
      if (first && offset === 0 && length <= first.length) return first.subarray(0, length);
      const end = Math.min(offset + length, size) - 1;
      const range = `bytes=${offset}-${end}`;
      const res = await fetchOk(url, range, true);
      const got = contentRange(res);
      if (!got || got[0] !== offset || got[1] !== end || got[2] !== size) {
        await res.body?.cancel();
        throw new SafetensorsError(
          `server answered ${range} with Content-Range "${res.headers.get("content-range")}" (file size ${size}): the file changed or the server is inconsistent`,
          { offset },
        );
      }
      first = undefined;
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

/** @internal A byte-range reader over any source `openSafetensors` accepts (`who` names the caller in errors). */
export async function readerFor(source: SafetensorsSource, who = "openSafetensors"): Promise<ByteRangeReader> {
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) return bytesReader(toBytes(source));
  if (typeof Blob !== "undefined" && source instanceof Blob) return blobReader(source);
  if (typeof source === "string" || source instanceof URL) {
    const s = String(source);
    const remote = /^(https?|blob|data):/i.test(s);
    if (isNode && !remote) {
      const { openFileReader } = await import("./safetensors-node.js");
      return openFileReader(source);
    }
    return /^https?:/i.test(s) ? httpReader(s) : bytesReader(new Uint8Array(await (await fetchOk(s)).arrayBuffer()));
  }
  if (source && typeof (source as ByteRangeReader).read === "function") return source as ByteRangeReader;
  throw new InputError(`${who}: source must be a Blob, a path or URL, bytes, or a ByteRangeReader`);
}

async function readExactly(r: ByteRangeReader, offset: number, length: number, what: { tensor?: string }) {
  const b = await r.read(offset, length);
  if (b.length > length) {
    throw new SafetensorsError(`reader returned ${b.length} bytes for a read of ${length} at ${offset}`, {
      ...what,
      offset,
    });
  }
  if (b.length !== length) {
    throw new SafetensorsError(`file ended while reading ${length} bytes at ${offset} (got ${b.length})`, {
      ...what,
      offset: offset + b.length,
    });
  }
  return b;
}

/**
 * Open a safetensors file for lazy reading: the 8-byte prefix and the header are read and validated
 * now; each tensor is read by byte range when `get(name)` is awaited.
 *
 * - `Blob`/`File`: `blob.slice(a, b).arrayBuffer()` per tensor.
 * - path or `file:` URL (Node): one `fs/promises` file handle; `get` reads just the tensor's range
 *   into a fresh buffer, so the file is never held in memory twice (nor once, as a whole). Call
 *   `close()` when done.
 * - `http(s):` URLs: one `Range` request per tensor when the server answers ranges with 206 (as
 *   the Hugging Face hub and most CDNs do); otherwise the whole file is fetched into memory.
 * - bytes: views on them.
 */
export async function openSafetensors(
  source: SafetensorsSource,
  opts: SafetensorsOptions = {},
): Promise<LazySafetensorsFile> {
  const reader = await readerFor(source);
  let closed = false;
  /** the buffer `readRaw` reads into, reused across calls */
  let scratch: Uint8Array | undefined;
  try {
    const size = reader.size;
    const prefix = await reader.read(0, Math.min(8, size));
    const n = readHeaderLength(prefix, size, opts);
    const header = parseHeader(await readExactly(reader, 8, n, {}), size, false);
    const info = (name: string): SafetensorsTensorInfo => header.info(name) ?? noTensor(name);
    return {
      header,
      metadata: header.metadata,
      names: () => header.names(),
      has: (name) => header.has(name),
      info,
      infos: () => header.infos(),
      async get(name) {
        const t = info(name);
        if (closed) throw new InputError(`openSafetensors: get("${name}") after close()`);
        const bytes = await readExactly(reader, t.byteOffset, t.byteLength, { tensor: name });
        return decodeTensor(t, bytes, opts.copy ?? false);
      },
      async readRaw(name, sink, chunkBytes = 1 << 22) {
        const t = info(name);
        if (closed) throw new InputError(`openSafetensors: readRaw("${name}") after close()`);
        if (!Number.isInteger(chunkBytes) || chunkBytes < 1) {
          throw new InputError(`openSafetensors: readRaw chunkBytes must be a positive integer, got ${chunkBytes}`);
        }
        for (let at = 0; at < t.byteLength; at += chunkBytes) {
          const len = Math.min(chunkBytes, t.byteLength - at);
          const offset = t.byteOffset + at;
          if (reader.readInto) {
            if (!scratch || scratch.length < len) scratch = new Uint8Array(Math.min(chunkBytes, t.byteLength));
            const dst = scratch.subarray(0, len);
            const got = await reader.readInto(offset, dst);
            if (got !== len) {
              throw new SafetensorsError(`file ended while reading ${len} bytes at ${offset} (got ${got})`, {
                tensor: name,
                offset: offset + got,
              });
            }
            sink(dst, at);
          } else {
            sink(await readExactly(reader, offset, len, { tensor: name }), at);
          }
        }
      },
      async close() {
        if (closed) return;
        closed = true;
        scratch = undefined;
        await reader.close?.();
      },
    };
  } catch (e) {
    closed = true;
    await reader.close?.();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// writing

/** dtypes `writeSafetensors` can produce. */
export type SafetensorsWriteDType = "F32" | "F16" | "BF16" | "I32" | "I64" | "U8" | "BOOL";

export interface WriteSafetensorsOptions {
  /** File dtype for f32 tensors (default `"F32"`). */
  floatDtype?: "F32" | "F16" | "BF16";
  /** File dtype for i32 tensors (default `"I32"`; `"I64"` is what PyTorch uses for ids). */
  intDtype?: "I32" | "I64";
  /** Per-tensor file dtype, overriding the two above. */
  dtypes?: Record<string, SafetensorsWriteDType>;
}

const WRITE_FROM: Record<SafetensorsWriteDType, Tensor["dtype"]> = {
  F32: "f32",
  F16: "f32",
  BF16: "f32",
  I32: "i32",
  I64: "i32",
  U8: "u8",
  BOOL: "bool",
};

/**
 * Serialise tensors to safetensors bytes in the canonical layout: header space-padded so that the
 * data buffer starts at a multiple of 8, tensors stored by decreasing element size then by name
 * (every tensor starts at a multiple of its element size). bool data are written as 0/1.
 */
export function writeSafetensors(
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  metadata?: Record<string, string>,
  opts: WriteSafetensorsOptions = {},
): Uint8Array<ArrayBuffer> {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const lone = /[\uD800-\uDFFF]/u; // with the u flag this matches unpaired surrogates only
  const plan = entries.map(([name, t]) => {
    if (name === "__metadata__") throw new InputError('writeSafetensors: "__metadata__" cannot be a tensor name');
    if (lone.test(name))
      throw new InputError(`writeSafetensors: tensor name ${JSON.stringify(name)} is not valid Unicode`);
    if (!(t instanceof Tensor)) throw new InputError(`writeSafetensors: "${name}" is not a Tensor`);
    const dtype: SafetensorsWriteDType =
      opts.dtypes?.[name] ??
      (t.dtype === "f32"
        ? (opts.floatDtype ?? "F32")
        : t.dtype === "i32"
          ? (opts.intDtype ?? "I32")
          : t.dtype === "u8"
            ? "U8"
            : "BOOL");
    if (WRITE_FROM[dtype] !== t.dtype) {
      throw new InputError(`writeSafetensors: cannot write a ${t.dtype} tensor "${name}" as ${dtype}`);
    }
    return { name, t, dtype, bytes: t.size * DTYPE_BYTES[dtype] };
  });
  plan.sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || compareCodePoints(a.name, b.name));

  const parts: string[] = [];
  if (metadata !== undefined) {
    const md: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new InputError(`writeSafetensors: metadata value of "${k}" must be a string`);
      if (lone.test(k) || lone.test(v)) throw new InputError(`writeSafetensors: metadata "${k}" is not valid Unicode`);
      md.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${md.join(",")}}`);
  }
  let offset = 0;
  for (const p of plan) {
    parts.push(
      `${JSON.stringify(p.name)}:{"dtype":"${p.dtype}","shape":[${p.t.shape.join(",")}],"data_offsets":[${offset},${offset + p.bytes}]}`,
    );
    offset += p.bytes;
  }
  const json = utf8Encoder.encode(`{${parts.join(",")}}`);
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  const n = json.length + pad;
  const out = new Uint8Array(8 + n + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, n % 2 ** 32, true);
  dv.setUint32(4, Math.floor(n / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);

  let at = 8 + n;
  for (const { t, dtype, bytes } of plan) {
    const dst = out.subarray(at, at + bytes);
    switch (dtype) {
      case "F32":
      case "I32":
      case "U8":
        dst.set(new Uint8Array(t.data.buffer, t.data.byteOffset, bytes));
        break;
      case "BOOL":
        for (let k = 0; k < t.size; k++) dst[k] = t.data[k] !== 0 ? 1 : 0;
        break;
      case "F16":
      case "BF16": {
        const h = (dtype === "F16" ? f32ArrayToF16 : f32ArrayToBf16)(t.data as Float32Array);
        dst.set(new Uint8Array(h.buffer, h.byteOffset, bytes));
        break;
      }
      case "I64": {
        const w = new Int32Array(out.buffer, at, 2 * t.size); // aligned: 8-byte elements come first
        for (let k = 0; k < t.size; k++) {
          w[2 * k] = t.data[k];
          w[2 * k + 1] = t.data[k] < 0 ? -1 : 0;
        }
        break;
      }
    }
    if (!LITTLE_ENDIAN && DTYPE_BYTES[dtype] > 1) {
      const e = DTYPE_BYTES[dtype];
      for (let k = 0; k < bytes; k += e) dst.subarray(k, k + e).reverse();
    }
    at += bytes;
  }
  return out;
}
