/**
 * A small strict JSON parser (RFC 8259) used for safetensors headers and config.json files.
 *
 * Why not `JSON.parse`: it silently keeps the last of two duplicate keys, reports positions in an
 * engine-specific message, and gives no way to see the literal text of a number (`1e2` vs `100`).
 * This parser rejects duplicate keys at every depth, bounds the nesting depth (no stack overflow on
 * `[[[[…`), rejects lone surrogates in `\u` escapes, and can hand numbers back as {@link JsonNumber}
 * so callers can insist on integer literals. Objects are plain objects whose keys are defined as own
 * properties (a `"__proto__"` key is an ordinary key, never a prototype change).
 *
 * @internal
 */

/** A syntax error at `pos` (a UTF-16 index into the parsed text). */
export class JsonSyntaxError extends Error {
  readonly pos: number;
  constructor(message: string, pos: number) {
    super(message);
    this.pos = pos;
    this.name = "JsonSyntaxError";
  }
}

/** A number as written in the text (only with `numbers: "raw"`). */
export class JsonNumber {
  constructor(
    /** The literal text, e.g. `"-1.5e3"`. */
    readonly raw: string,
    /** Its value as a double. */
    readonly value: number,
    /** Index of its first character in the text. */
    readonly pos: number,
  ) {}
  /** True when the literal is a plain non-negative integer (`0` or `[1-9][0-9]*`) within 2^53. */
  get isUnsignedIntegerLiteral(): boolean {
    return /^(0|[1-9][0-9]*)$/.test(this.raw) && Number.isSafeInteger(this.value);
  }
}

export interface StrictJsonOptions {
  /** Maximum nesting of arrays/objects (default 128). */
  maxDepth?: number;
  /** `"value"` (default): numbers as JS numbers. `"raw"`: numbers as {@link JsonNumber}. */
  numbers?: "value" | "raw";
  /** Whitespace allowed after the value: `"json"` (default: space, tab, CR, LF) or `"spaces"` (0x20 only). */
  trailing?: "json" | "spaces";
  /**
   * Stream the members of a top-level object: each `(key, value, keyPos)` goes to this callback as
   * soon as it is parsed, in document order, instead of into the returned object (which stays
   * empty; `topKeyPos` too). Duplicate keys are still rejected. For large objects whose members
   * are checked one by one and then dropped (safetensors headers with thousands of tensors).
   */
  onMember?: (key: string, value: unknown, keyPos: number) => void;
}

export interface StrictJsonResult {
  value: unknown;
  /** For a top-level object: position of each key's opening quote. */
  topKeyPos: Map<string, number>;
  /** Index just past the value (before trailing whitespace). */
  end: number;
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
/** `[0-9.eE+-]`: a character that may not follow a number. */
const isNumberChar = (c: number) => isDigit(c) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;

/**
 * Length of the longest JSON number at `at` (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`),
 * 0 when there is none. A hand-written scan: a sticky regex costs a match array per number.
 */
function numberLength(text: string, at: number): number {
  let k = at;
  if (text.charCodeAt(k) === 0x2d) k++;
  const first = text.charCodeAt(k);
  if (first === 0x30) k++;
  else if (first >= 0x31 && first <= 0x39) while (isDigit(text.charCodeAt(k))) k++;
  else return 0;
  if (text.charCodeAt(k) === 0x2e && isDigit(text.charCodeAt(k + 1))) {
    k += 2;
    while (isDigit(text.charCodeAt(k))) k++;
  }
  const e = text.charCodeAt(k);
  if (e === 0x65 || e === 0x45) {
    const s = text.charCodeAt(k + 1);
    const d = s === 0x2b || s === 0x2d ? k + 2 : k + 1;
    if (isDigit(text.charCodeAt(d))) {
      k = d + 1;
      while (isDigit(text.charCodeAt(k))) k++;
    }
  }
  return k - at;
}

/** Parse `text` strictly; throws {@link JsonSyntaxError} with the position of the fault. */
export function parseStrictJson(text: string, opts: StrictJsonOptions = {}): StrictJsonResult {
  const maxDepth = opts.maxDepth ?? 128;
  const rawNumbers = opts.numbers === "raw";
  const topKeyPos = new Map<string, number>();
  const onMember = opts.onMember;
  const streamed = new Set<string>();
  let i = 0;
  const n = text.length;

  const fail = (msg: string, at = i): never => {
    throw new JsonSyntaxError(msg, at);
  };
  const describe = (at: number): string => {
    if (at >= n) return "end of input";
    const c = text.charCodeAt(at);
    return c < 0x20 || c === 0x7f ? `control character U+${c.toString(16).padStart(4, "0")}` : `'${text[at]}'`;
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };

  const parseString = (): string => {
    // text[i] === '"'
    const start = i;
    i++;
    let out = "";
    let chunk = i;
    for (;;) {
      if (i >= n) fail("unterminated string", start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(chunk, i);
        i++;
        return out;
      }
      if (c < 0x20) fail(`unescaped ${describe(i)} in string`);
      if (c === 0x5c) {
        out += text.slice(chunk, i);
        const e = text[i + 1];
        switch (e) {
          case '"':
            out += '"';
            break;
          case "\\":
            out += "\\";
            break;
          case "/":
            out += "/";
            break;
          case "b":
            out += "\b";
            break;
          case "f":
            out += "\f";
            break;
          case "n":
            out += "\n";
            break;
          case "r":
            out += "\r";
            break;
          case "t":
            out += "\t";
            break;
          case "u": {
            const hi = hex4(i + 2);
            if (hi >= 0xdc00 && hi <= 0xdfff) fail("lone low surrogate in \\u escape");
            if (hi >= 0xd800 && hi <= 0xdbff) {
              if (text[i + 6] !== "\\" || text[i + 7] !== "u") fail("lone high surrogate in \\u escape");
              const lo = hex4(i + 8);
              if (lo < 0xdc00 || lo > 0xdfff) fail("high surrogate not followed by a low surrogate", i + 6);
              out += String.fromCharCode(hi, lo);
              i += 6;
            } else {
              out += String.fromCharCode(hi);
            }
            i += 4;
            break;
          }
          default:
            fail(`invalid escape \\${e === undefined ? "" : e}`);
        }
        i += 2;
        chunk = i;
        continue;
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        // well-formed text only (a decoded UTF-8 string never has lone surrogates)
        const ok = c <= 0xdbff && i + 1 < n && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
        if (!ok) fail("lone surrogate in string");
        i += 2;
        continue;
      }
      i++;
    }
  };
  const hex4 = (at: number): number => {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = text.charCodeAt(at + k);
      const d = c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1;
      if (d < 0 || at + k >= n) fail("invalid \\u escape (expected 4 hex digits)", at + k);
      v = v * 16 + d;
    }
    return v;
  };

  const parseValue = (depth: number): unknown => {
    ws();
    if (i >= n) fail("unexpected end of input, expected a value");
    const c = text[i];
    if (c === "{") return parseObject(depth + 1);
    if (c === "[") return parseArray(depth + 1);
    if (c === '"') return parseString();
    if (c === "t") return literal("true", true);
    if (c === "f") return literal("false", false);
    if (c === "n") return literal("null", null);
    if (c === "-" || (c >= "0" && c <= "9")) {
      const pos = i;
      const len = numberLength(text, pos);
      if (len === 0) fail("invalid number");
      i += len;
      if (i < n && isNumberChar(text.charCodeAt(i))) fail("invalid number");
      const raw = text.slice(pos, i);
      const v = Number(raw);
      return rawNumbers ? new JsonNumber(raw, v, pos) : v;
    }
    return fail(`unexpected ${describe(i)}, expected a value`);
  };
  const literal = (word: string, v: unknown): unknown => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return v;
    }
    return fail(`unexpected ${describe(i)}, expected a value`);
  };
  const parseArray = (depth: number): unknown[] => {
    if (depth > maxDepth) fail(`nesting deeper than ${maxDepth}`);
    i++;
    const out: unknown[] = [];
    ws();
    if (text[i] === "]") {
      i++;
      return out;
    }
    for (;;) {
      out.push(parseValue(depth));
      ws();
      const c = text[i];
      if (c === ",") {
        i++;
        continue;
      }
      if (c === "]") {
        i++;
        return out;
      }
      fail(`unexpected ${describe(i)} in array, expected ',' or ']'`);
    }
  };
  const parseObject = (depth: number): Record<string, unknown> => {
    if (depth > maxDepth) fail(`nesting deeper than ${maxDepth}`);
    i++;
    const out: Record<string, unknown> = {};
    ws();
    if (text[i] === "}") {
      i++;
      return out;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') fail(`unexpected ${describe(i)} in object, expected a key string`);
      const keyPos = i;
      const key = parseString();
      const stream = depth === 1 && onMember !== undefined;
      if (stream ? streamed.has(key) : Object.hasOwn(out, key)) fail(`duplicate key ${JSON.stringify(key)}`, keyPos);
      ws();
      if (text[i] !== ":") fail(`unexpected ${describe(i)} after key ${JSON.stringify(key)}, expected ':'`);
      i++;
      const v = parseValue(depth);
      if (stream) {
        streamed.add(key);
        onMember(key, v, keyPos);
      } else {
        if (depth === 1) topKeyPos.set(key, keyPos);
        // plain assignment is the fast path; only "__proto__" would hit Object.prototype's setter
        if (key === "__proto__") {
          Object.defineProperty(out, key, { value: v, writable: true, enumerable: true, configurable: true });
        } else out[key] = v;
      }
      ws();
      const c = text[i];
      if (c === ",") {
        i++;
        continue;
      }
      if (c === "}") {
        i++;
        return out;
      }
      fail(`unexpected ${describe(i)} in object, expected ',' or '}'`);
    }
  };

  const value = parseValue(0);
  const end = i;
  if (opts.trailing === "spaces") {
    while (i < n && text.charCodeAt(i) === 0x20) i++;
  } else {
    ws();
  }
  if (i < n) fail(`unexpected ${describe(i)} after the JSON value`);
  return { value, topKeyPos, end };
}

/** 1-based line and column of a UTF-16 index in `text`. */
export function lineColumn(text: string, pos: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let k = 0; k < pos && k < text.length; k++) {
    if (text.charCodeAt(k) === 0x0a) {
      line++;
      lineStart = k + 1;
    }
  }
  return { line, column: pos - lineStart + 1 };
}
