/**
 * More of the HF tokenizers pipeline, for the `tokenizer.json` files of Llama-family checkpoints
 * (SmolLM2, Qwen2/3, Llama 3: byte-level BPE behind `Split` regexes; Llama 2, TinyLlama, Mistral:
 * SentencePiece-style BPE with `▁` and byte fallback):
 *
 * - normalizers `Replace` and `Prepend` (others: `normalizerFromJson`);
 * - pre-tokenizers `Split` (Oniguruma patterns, every delimiter behavior, `invert`), `Digits`,
 *   `Punctuation`, `CharDelimiterSplit`, `Metaspace` (others: `preTokenizerFromJson`);
 * - decoders as HF's `decode_chain`: token list → token list, joined at the end (`ByteLevel`,
 *   `Replace`, `ByteFallback`, `Fuse`, `Strip`, `Metaspace`, `WordPiece`, `BPEDecoder`, `Sequence`).
 *
 * Unknown component types throw `ConfigError` naming the JSON path (e.g.
 * `pre_tokenizer.pretokenizers[1].type`); `fromTokenizerJson` turns it into a `ParseError`.
 */
import { ConfigError } from "@wasmformer/core";
import { CHAR_TO_BYTE, GPT2_PATTERN } from "./byte-level.js";
import { onigToJs } from "./hf-regex.js";
import { type Aligned, type Normalizer, normalizerFromJson } from "./normalizers.js";
import { type PreTokenizer, type PreTokenizerSpec, preTokenizerFromJson, type Span } from "./pre-tokenizers.js";
import { compileSplitRegex } from "./split-regex.js";

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A global regex from a HF `pattern` object: `{String}` (literal) or `{Regex}` (Oniguruma). */
export function patternFromJson(pat: unknown, path: string): RegExp {
  const o = pat as Record<string, unknown> | null | undefined;
  // refuse shapes of exponential backtracking (possessive and atomic forms checked as plain ones)
  if (o && typeof o.Regex === "string") compileSplitRegex(backtrackingShape(o.Regex), `${path}.Regex`);
  try {
    if (o && typeof o.String === "string") return new RegExp(escapeRe(o.String), "gu");
    if (o && typeof o.Regex === "string") return new RegExp(onigToJs(o.Regex), "gmu");
  } catch (e) {
    throw new ConfigError(`cannot use this pattern: ${(e as Error).message}`, path);
  }
  throw new ConfigError("expected {String: …} or {Regex: …}", path);
}

/** The pattern for the backtracking check of `compileSplitRegex`: `X*+` → `X*`, `(?>…)` → `(?:…)`. */
function backtrackingShape(p: string): string {
  return p.replace(/(\\.)|([*+?}])\+|\(\?>/g, (_m, esc: string | undefined, q: string | undefined) =>
    esc !== undefined ? esc : q !== undefined ? q : "(?:",
  );
}

// -----------------------------------------------------------------------------------------------
// normalizers

const oStart = (a: Aligned, i: number) => (a.starts ? a.starts[i] : i);
const oEnd = (a: Aligned, i: number) => (a.ends ? a.ends[i] : i + 1);

/** Replace every match of `re` by `content`; replaced units map to the span of the match they came from. */
export function replaceNormalizer(re: RegExp, content: string): Normalizer {
  return (a) => {
    re.lastIndex = 0;
    if (!re.test(a.text)) return a;
    re.lastIndex = 0;
    let text = "";
    const starts: number[] = [];
    const ends: number[] = [];
    const copy = (s: number, e: number) => {
      text += a.text.slice(s, e);
      for (let i = s; i < e; i++) {
        starts.push(oStart(a, i));
        ends.push(oEnd(a, i));
      }
    };
    let prev = 0;
    for (let m = re.exec(a.text); m !== null; m = re.exec(a.text)) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      copy(prev, m.index);
      const s = oStart(a, m.index);
      const e = oEnd(a, m.index + m[0].length - 1);
      if (content.length === 0 && ends.length > 0) ends[ends.length - 1] = e;
      text += content;
      for (let k = 0; k < content.length; k++) {
        starts.push(s);
        ends.push(e);
      }
      prev = m.index + m[0].length;
    }
    copy(prev, a.text.length);
    return { text, starts: Int32Array.from(starts), ends: Int32Array.from(ends) };
  };
}

/** HF `Prepend`: put `prefix` before a non-empty text (aligned to its first character). */
export function prependNormalizer(prefix: string): Normalizer {
  return (a) => {
    if (a.text.length === 0 || prefix.length === 0) return a;
    const n = a.text.length;
    const k = prefix.length;
    const starts = new Int32Array(n + k);
    const ends = new Int32Array(n + k);
    for (let i = 0; i < n; i++) {
      starts[i + k] = oStart(a, i);
      ends[i + k] = oEnd(a, i);
    }
    starts.fill(oStart(a, 0), 0, k);
    ends.fill(oEnd(a, 0), 0, k);
    return { text: prefix + a.text, starts, ends };
  };
}

/** A normalizer from `tokenizer.json`, with `Replace` and `Prepend` (the rest: `normalizerFromJson`). */
export function hfNormalizerFromJson(j: unknown, path = "normalizer"): Normalizer | null {
  if (j === null || j === undefined) return null;
  const o = j as Record<string, unknown>;
  switch (o.type) {
    case "Replace": {
      if (typeof o.content !== "string") throw new ConfigError("expected a string", `${path}.content`);
      return replaceNormalizer(patternFromJson(o.pattern, `${path}.pattern`), o.content);
    }
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD": {
      // fast path: a text already in the form is left as is (the usual case), else per cluster
      const form = o.type;
      const slow = normalizerFromJson(j, path)!;
      return (a) => (a.text.normalize(form) === a.text ? a : slow(a));
    }
    case "Prepend":
      if (typeof o.prepend !== "string") throw new ConfigError("expected a string", `${path}.prepend`);
      return prependNormalizer(o.prepend);
    case "Sequence": {
      if (!Array.isArray(o.normalizers)) throw new ConfigError("expected a list", `${path}.normalizers`);
      const list = o.normalizers
        .map((n, i) => hfNormalizerFromJson(n, `${path}.normalizers[${i}]`))
        .filter((n): n is Normalizer => n !== null);
      return (a) => list.reduce((acc, f) => f(acc), a);
    }
    default:
      return normalizerFromJson(j, path);
  }
}

// -----------------------------------------------------------------------------------------------
// pre-tokenizers

export type SplitBehavior = "Removed" | "Isolated" | "MergedWithPrevious" | "MergedWithNext" | "Contiguous";
const BEHAVIORS = new Set<string>(["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]);

/**
 * HF `NormalizedString::split`: the matches of `re` (and the gaps between them) cut each span;
 * `behavior` says what happens to the matches (with `invert`, the gaps are the delimiters).
 */
export function splitPreTokenizer(re: RegExp, behavior: SplitBehavior, invert = false): PreTokenizer {
  return (text, spans) => {
    const out: Span[] = [];
    for (const [s, e] of spans) {
      const piece = text.slice(s, e);
      const parts: [number, number, boolean][] = [];
      re.lastIndex = 0;
      let prev = 0;
      for (let m = re.exec(piece); m !== null; m = re.exec(piece)) {
        if (m[0].length === 0) {
          re.lastIndex += piece.codePointAt(re.lastIndex)! > 0xffff ? 2 : 1;
          continue;
        }
        if (m.index > prev) parts.push([s + prev, s + m.index, invert]);
        parts.push([s + m.index, s + m.index + m[0].length, !invert]);
        prev = m.index + m[0].length;
      }
      if (prev < piece.length) parts.push([s + prev, e, invert]);
      const acc: [number, number, boolean][] = [];
      let prevMatch = false;
      switch (behavior) {
        case "Removed":
          for (const p of parts) if (!p[2]) out.push([p[0], p[1]]);
          continue;
        case "Isolated":
          for (const p of parts) out.push([p[0], p[1]]);
          continue;
        case "MergedWithPrevious":
          for (const p of parts) {
            if (p[2] && !prevMatch && acc.length > 0) acc[acc.length - 1][1] = p[1];
            else acc.push([p[0], p[1], p[2]]);
            prevMatch = p[2];
          }
          break;
        case "MergedWithNext":
          for (let k = parts.length - 1; k >= 0; k--) {
            const p = parts[k];
            if (p[2] && !prevMatch && acc.length > 0) acc[acc.length - 1][0] = p[0];
            else acc.push([p[0], p[1], p[2]]);
            prevMatch = p[2];
          }
          acc.reverse();
          break;
        case "Contiguous":
          for (const p of parts) {
            if (p[2] === prevMatch && acc.length > 0) acc[acc.length - 1][1] = p[1];
            else acc.push([p[0], p[1], p[2]]);
            prevMatch = p[2];
          }
          break;
      }
      for (const p of acc) out.push([p[0], p[1]]);
    }
    return out;
  };
}

/** HF `Metaspace` as a text rewrite plus a split (see `metaspaceRewrite`). */
export interface MetaspaceSpec {
  replacement: string;
  /** `"always"`: prepend to every segment; `"first"`: only to the one at the start of the input; `"never"`. */
  prependScheme: "always" | "first" | "never";
  split: boolean;
}

/** Metaspace text rewrite of one segment: spaces → `replacement`, then the prepend scheme. */
export function metaspaceRewrite(a: Aligned, m: MetaspaceSpec, atStart: boolean): Aligned {
  let r = replaceNormalizer(/ /g, m.replacement)(a);
  const prepend = m.prependScheme === "always" || (m.prependScheme === "first" && atStart);
  if (prepend && !r.text.startsWith(m.replacement)) r = prependNormalizer(m.replacement)(r);
  return r;
}

export interface HfPreTokenizerSpec extends PreTokenizerSpec {
  /** A `Metaspace` pre-tokenizer (first in the chain): its rewrite runs before the splits. */
  metaspace: MetaspaceSpec | null;
}

const ASCII_PUNCT = "!-/:-@\\[-`{-~";
const BYTE_LEVEL_RE = new RegExp(onigToJs(GPT2_PATTERN), "gmu");

/** A pre-tokenizer from `tokenizer.json`, with the types above (the rest: `preTokenizerFromJson`). */
export function hfPreTokenizerFromJson(j: unknown, path = "pre_tokenizer"): HfPreTokenizerSpec {
  const plain = (pre: PreTokenizer): HfPreTokenizerSpec => ({
    pre,
    byteLevel: false,
    addPrefixSpace: false,
    metaspace: null,
  });
  if (j === null || j === undefined) return plain((_t, s) => s);
  const o = j as Record<string, unknown>;
  const behaviorOf = (v: unknown, dflt: SplitBehavior): SplitBehavior => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "string" || !BEHAVIORS.has(v))
      throw new ConfigError(`unknown behavior ${JSON.stringify(v)} (${[...BEHAVIORS].join(", ")})`, `${path}.behavior`);
    return v as SplitBehavior;
  };
  switch (o.type) {
    case "Split": {
      const re = patternFromJson(o.pattern, `${path}.pattern`);
      if (o.behavior === undefined) throw new ConfigError("missing", `${path}.behavior`);
      return plain(splitPreTokenizer(re, behaviorOf(o.behavior, "Isolated"), o.invert === true));
    }
    case "ByteLevel":
      // GPT-2's pattern with Oniguruma's \s (White_Space: U+0085 in, U+FEFF out), as HF runs it
      return {
        pre: o.use_regex === false ? (_t, s) => s : splitPreTokenizer(BYTE_LEVEL_RE, "Isolated"),
        byteLevel: true,
        addPrefixSpace: (o.add_prefix_space as boolean) ?? true,
        metaspace: null,
      };
    case "Digits":
      return plain(
        o.individual_digits === true
          ? splitPreTokenizer(/\p{N}/gu, "Isolated")
          : splitPreTokenizer(/\p{N}/gu, "Contiguous"),
      );
    case "Punctuation":
      return plain(splitPreTokenizer(new RegExp(`[\\p{P}${ASCII_PUNCT}]`, "gu"), behaviorOf(o.behavior, "Isolated")));
    case "CharDelimiterSplit": {
      if (typeof o.delimiter !== "string" || [...o.delimiter].length !== 1)
        throw new ConfigError("expected one character", `${path}.delimiter`);
      return plain(splitPreTokenizer(new RegExp(escapeRe(o.delimiter), "gu"), "Removed"));
    }
    case "Metaspace": {
      const replacement = (o.replacement as string | undefined) ?? "▁";
      if (typeof replacement !== "string" || [...replacement].length !== 1)
        throw new ConfigError("expected one character", `${path}.replacement`);
      let scheme = o.prepend_scheme as string | undefined;
      if (scheme === undefined) scheme = o.add_prefix_space === false ? "never" : "always";
      if (scheme !== "always" && scheme !== "first" && scheme !== "never")
        throw new ConfigError(`unknown prepend_scheme ${JSON.stringify(scheme)}`, `${path}.prepend_scheme`);
      const split = o.split !== false;
      return {
        pre: split ? splitPreTokenizer(new RegExp(escapeRe(replacement), "gu"), "MergedWithNext") : (_t, s) => s,
        byteLevel: false,
        addPrefixSpace: false,
        metaspace: { replacement, prependScheme: scheme, split },
      };
    }
    case "Sequence": {
      if (!Array.isArray(o.pretokenizers)) throw new ConfigError("expected a list", `${path}.pretokenizers`);
      const parts = o.pretokenizers.map((p, i) => hfPreTokenizerFromJson(p, `${path}.pretokenizers[${i}]`));
      const late = parts.findIndex((p, i) => i > 0 && p.metaspace !== null);
      if (late > 0)
        throw new ConfigError(
          "Metaspace is supported only as the first pre-tokenizer",
          `${path}.pretokenizers[${late}]`,
        );
      return {
        pre: (t, s) => parts.reduce((acc, p) => p.pre(t, acc), s),
        byteLevel: parts.some((p) => p.byteLevel),
        addPrefixSpace: parts.some((p) => p.byteLevel && p.addPrefixSpace),
        metaspace: parts[0]?.metaspace ?? null,
      };
    }
    default:
      return { ...preTokenizerFromJson(j, path), metaspace: null };
  }
}

// -----------------------------------------------------------------------------------------------
// decoders

/** HF `Decoder::decode_chain`: tokens in, tokens out; the tokenizer joins the result. */
export type DecodeChain = (tokens: string[]) => string[];

const utf8Lossy = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Enc = new TextEncoder();
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** `ByteLevel`: every token's characters back to bytes (a token of other characters: its UTF-8), one lossy string. */
export const byteLevelDecode: DecodeChain = (tokens) => {
  const bytes: number[] = [];
  for (const t of tokens) {
    const start = bytes.length;
    let ok = true;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      const b = c < 512 ? CHAR_TO_BYTE[c] : -1;
      if (b < 0) {
        ok = false;
        break;
      }
      bytes.push(b);
    }
    if (!ok) {
      bytes.length = start;
      for (const b of utf8Enc.encode(t)) bytes.push(b);
    }
  }
  return [utf8Lossy.decode(new Uint8Array(bytes))];
};

/** `ByteFallback`: runs of `<0xNN>` tokens become their UTF-8 text, or one U+FFFD per byte when invalid. */
export const byteFallbackDecode: DecodeChain = (tokens) => {
  const out: string[] = [];
  let pending: number[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    try {
      out.push(utf8Strict.decode(new Uint8Array(pending)));
    } catch {
      for (let k = 0; k < pending.length; k++) out.push("\uFFFD");
    }
    pending = [];
  };
  for (const t of tokens) {
    const m = t.length === 6 ? BYTE_TOKEN.exec(t) : null;
    if (m) pending.push(Number.parseInt(m[1], 16));
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
};

/** `Strip`: drop up to `start` leading and `stop` trailing `content` characters of each token. */
export function stripDecode(content: string, start: number, stop: number): DecodeChain {
  return (tokens) =>
    tokens.map((t) => {
      const chars = [...t];
      let a = 0;
      while (a < start && a < chars.length && chars[a] === content) a++;
      let b = chars.length;
      while (chars.length - b < stop && b > a && chars[b - 1] === content) b--;
      return chars.slice(a, b).join("");
    });
}

/** A decoder chain from `tokenizer.json`. */
export function decodeChainFromJson(j: unknown, path = "decoder"): DecodeChain {
  if (j === null || j === undefined) return (t) => [t.join(" ")];
  const o = j as Record<string, unknown>;
  const str = (k: string, dflt?: string): string => {
    const v = o[k] ?? dflt;
    if (typeof v !== "string") throw new ConfigError("expected a string", `${path}.${k}`);
    return v;
  };
  const int = (k: string): number => {
    const v = o[k] ?? 0;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
      throw new ConfigError("expected a non-negative integer", `${path}.${k}`);
    return v;
  };
  switch (o.type) {
    case "ByteLevel":
      return byteLevelDecode;
    case "ByteFallback":
      return byteFallbackDecode;
    case "Fuse":
      return (t) => [t.join("")];
    case "Replace": {
      const re = patternFromJson(o.pattern, `${path}.pattern`);
      const content = str("content");
      return (t) => t.map((x) => x.replace(re, () => content));
    }
    case "Strip":
      return stripDecode(str("content", " "), int("start"), int("stop"));
    case "Metaspace": {
      const rep = str("replacement", "▁");
      let scheme = o.prepend_scheme as string | undefined;
      if (scheme === undefined) scheme = o.add_prefix_space === false ? "never" : "always";
      // the first token loses every replacement character (HF), the others turn them into spaces
      return (t) => t.map((x, i) => x.replaceAll(rep, i === 0 && scheme !== "never" ? "" : " "));
    }
    case "WordPiece": {
      const prefix = str("prefix", "##");
      const cleanup = o.cleanup !== false;
      return (t) =>
        t.map((x, i) => {
          let s = i > 0 ? (x.startsWith(prefix) ? x.slice(prefix.length) : ` ${x}`) : x;
          if (cleanup)
            s = s
              .replaceAll(" .", ".")
              .replaceAll(" ?", "?")
              .replaceAll(" !", "!")
              .replaceAll(" ,", ",")
              .replaceAll(" ' ", "'")
              .replaceAll(" n't", "n't")
              .replaceAll(" 'm", "'m")
              .replaceAll(" 's", "'s")
              .replaceAll(" 've", "'ve")
              .replaceAll(" 're", "'re");
          return s;
        });
    }
    case "BPEDecoder": {
      const suffix = str("suffix", "</w>");
      return (t) => t.map((x, i) => x.replaceAll(suffix, i === t.length - 1 ? "" : " "));
    }
    case "Sequence": {
      if (!Array.isArray(o.decoders)) throw new ConfigError("expected a list", `${path}.decoders`);
      const list = o.decoders.map((d, i) => decodeChainFromJson(d, `${path}.decoders[${i}]`));
      return (t) => list.reduce((acc, f) => f(acc), t);
    }
    default:
      throw new ConfigError(`unsupported decoder type ${JSON.stringify(o.type)}`, `${path}.type`);
  }
}
