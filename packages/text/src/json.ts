/**
 * JSON helpers for the file formats of this package:
 * - `parseJson`: `JSON.parse` with a `ParseError` that names the file, line and column on failure;
 * - `parseOrderedJson`: a small recursive-descent parser whose objects are `Map`s, so that key
 *   order survives (JS objects move integer-like keys such as `"1"` to the front, which would
 *   reorder Keras `word_counts`);
 * - `pyJsonDumps`: Python's `json.dumps` output (default separators `", "`/`": "`, `ensure_ascii`),
 *   so that `Tokenizer.toJSON()` is byte-identical to Keras's `tokenizer.to_json()`.
 */
import { ParseError } from "@wasmformer/core";

/** A parsed JSON value whose objects keep their key order. */
export type OrderedJson = null | boolean | number | string | OrderedJson[] | Map<string, OrderedJson>;

/** Line and column (both 1-based, column in UTF-16 units) of offset `pos` in `text`. */
export function lineCol(text: string, pos: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  const end = Math.min(pos, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: end - start + 1 };
}

class Parser {
  pos = 0;
  constructor(
    readonly text: string,
    readonly file: string,
  ) {}

  fail(msg: string, at = this.pos): never {
    const { line, column } = lineCol(this.text, at);
    throw new ParseError(msg, { file: this.file, line, column });
  }

  ws(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.pos++;
      else break;
    }
  }

  value(depth: number): OrderedJson {
    if (depth > 512) this.fail("JSON nested deeper than 512 levels");
    this.ws();
    const t = this.text;
    if (this.pos >= t.length) this.fail("unexpected end of JSON input");
    const c = t[this.pos];
    if (c === "{") return this.object(depth);
    if (c === "[") return this.array(depth);
    if (c === '"') return this.string();
    if (c === "-" || (c >= "0" && c <= "9")) return this.number();
    if (t.startsWith("true", this.pos)) {
      this.pos += 4;
      return true;
    }
    if (t.startsWith("false", this.pos)) {
      this.pos += 5;
      return false;
    }
    if (t.startsWith("null", this.pos)) {
      this.pos += 4;
      return null;
    }
    // Python's json.dumps writes NaN/Infinity for non-finite floats; they are not JSON
    return this.fail(`unexpected character ${JSON.stringify(c)}`);
  }

  object(depth: number): Map<string, OrderedJson> {
    const m = new Map<string, OrderedJson>();
    this.pos++; // {
    this.ws();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return m;
    }
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') this.fail("expected a string key");
      const k = this.string();
      this.ws();
      if (this.text[this.pos] !== ":") this.fail("expected ':' after an object key");
      this.pos++;
      m.set(k, this.value(depth + 1));
      this.ws();
      const c = this.text[this.pos];
      if (c === ",") {
        this.pos++;
        continue;
      }
      if (c === "}") {
        this.pos++;
        return m;
      }
      this.fail(c === undefined ? "unexpected end of JSON input in an object" : "expected ',' or '}' in an object");
    }
  }

  array(depth: number): OrderedJson[] {
    const a: OrderedJson[] = [];
    this.pos++; // [
    this.ws();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return a;
    }
    for (;;) {
      a.push(this.value(depth + 1));
      this.ws();
      const c = this.text[this.pos];
      if (c === ",") {
        this.pos++;
        continue;
      }
      if (c === "]") {
        this.pos++;
        return a;
      }
      this.fail(c === undefined ? "unexpected end of JSON input in an array" : "expected ',' or ']' in an array");
    }
  }

  string(): string {
    const t = this.text;
    const start = this.pos;
    this.pos++; // opening quote
    let out = "";
    let run = this.pos;
    for (;;) {
      if (this.pos >= t.length) this.fail("unterminated string", start);
      const c = t.charCodeAt(this.pos);
      if (c === 34) {
        out += t.slice(run, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail("control character in a string");
      if (c === 92) {
        out += t.slice(run, this.pos);
        const e = t[this.pos + 1];
        const simple: Record<string, string> = {
          '"': '"',
          "\\": "\\",
          "/": "/",
          b: "\b",
          f: "\f",
          n: "\n",
          r: "\r",
          t: "\t",
        };
        if (e !== undefined && e in simple) {
          out += simple[e];
          this.pos += 2;
        } else if (e === "u") {
          const hex = t.slice(this.pos + 2, this.pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("bad \\u escape");
          out += String.fromCharCode(Number.parseInt(hex, 16));
          this.pos += 6;
        } else {
          this.fail("bad escape in a string");
        }
        run = this.pos;
        continue;
      }
      this.pos++;
    }
  }

  number(): number {
    const re = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    if (!m) this.fail("malformed number");
    this.pos += m[0].length;
    return Number(m[0]);
  }
}

/** Parse JSON keeping object key order (objects become `Map`s). Errors name `file`:line:column. */
export function parseOrderedJson(text: string, file = "<json>"): OrderedJson {
  const p = new Parser(text, file);
  const v = p.value(0);
  p.ws();
  if (p.pos !== text.length) p.fail("unexpected data after the JSON value");
  return v;
}

/**
 * `JSON.parse` (fast path) with a positioned `ParseError` on failure: the error position is found
 * by re-parsing with the ordered parser.
 */
export function parseJson(text: string, file = "<json>"): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    parseOrderedJson(text, file); // throws the positioned error
    throw new ParseError(`invalid JSON (${(e as Error).message})`, { file }); // not reached in practice
  }
}

/** Python `json.dumps` string escaping with `ensure_ascii=True` (lower-case `\uXXXX`). */
export function pyJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) out += '\\"';
    else if (c === 92) out += "\\\\";
    else if (c === 10) out += "\\n";
    else if (c === 13) out += "\\r";
    else if (c === 9) out += "\\t";
    else if (c === 8) out += "\\b";
    else if (c === 12) out += "\\f";
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += s[i];
  }
  return `${out}"`;
}

/**
 * Python `json.dumps(value)` with default settings. `Map` and plain objects are written in their
 * iteration order (keys converted with `String`, as Python does for int keys).
 */
export function pyJsonDumps(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "NaN";
    if (!Number.isFinite(v)) return v > 0 ? "Infinity" : "-Infinity";
    return String(v);
  }
  if (typeof v === "string") return pyJsonString(v);
  if (Array.isArray(v)) return `[${v.map(pyJsonDumps).join(", ")}]`;
  const entries = v instanceof Map ? [...v.entries()] : Object.entries(v as object);
  return `{${entries.map(([k, x]) => `${pyJsonString(String(k))}: ${pyJsonDumps(x)}`).join(", ")}}`;
}

/** A plain object from entries, safe for any key (a `"__proto__"` word becomes an own property). */
export function objectFromEntries(entries: Iterable<readonly [string, unknown]>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries)
    Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}
