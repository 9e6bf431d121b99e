/**
 * Pre-tokenizers (HF tokenizers `pre_tokenizers`): split normalized text into words, as `[start,
 * end)` spans; the model then tokenizes each word on its own.
 */
import { ConfigError } from "@wasmformer/core";
import { GPT2_PATTERN } from "./byte-level.js";
import { compileSplitRegex } from "./split-regex.js";

export type Span = [number, number];
/** Split each span of `text` further. */
export type PreTokenizer = (text: string, spans: Span[]) => Span[];

/** Split by the matches of a global regex; `isolated`: matches are words, gaps are words too; `removed`: gaps only. */
function regexSplit(re: RegExp, behavior: "matches" | "isolated" | "removed"): PreTokenizer {
  return (text, spans) => {
    const out: Span[] = [];
    for (const [s, e] of spans) {
      const piece = text.slice(s, e);
      re.lastIndex = 0;
      let prev = 0;
      for (let m = re.exec(piece); m !== null; m = re.exec(piece)) {
        if (m[0].length === 0) {
          re.lastIndex++;
          continue;
        }
        if (behavior !== "matches" && m.index > prev) out.push([s + prev, s + m.index]);
        if (behavior !== "removed") out.push([s + m.index, s + m.index + m[0].length]);
        prev = m.index + m[0].length;
      }
      if (behavior !== "matches" && prev < piece.length) out.push([s + prev, e]);
    }
    return out;
  };
}

/** GPT-2's regex split (ByteLevel `use_regex`): every character lands in exactly one match. */
export const gpt2Split: PreTokenizer = regexSplit(new RegExp(GPT2_PATTERN, "gu"), "matches");

const isBertPunct = (c: string) => {
  const cp = c.codePointAt(0)!;
  return (
    (cp >= 33 && cp <= 47) ||
    (cp >= 58 && cp <= 64) ||
    (cp >= 91 && cp <= 96) ||
    (cp >= 123 && cp <= 126) ||
    /^\p{P}$/u.test(c)
  );
};

/** BERT: split on whitespace (dropped) and isolate every punctuation character. */
export const bertPreTokenizer: PreTokenizer = (text, spans) => {
  const out: Span[] = [];
  for (const [s, e] of spans) {
    let w = -1;
    for (let i = s; i < e; ) {
      const cp = text.codePointAt(i)!;
      const n = cp > 0xffff ? 2 : 1;
      const c = text.slice(i, i + n);
      if (/^\p{White_Space}$/u.test(c)) {
        if (w >= 0) out.push([w, i]);
        w = -1;
      } else if (isBertPunct(c)) {
        if (w >= 0) out.push([w, i]);
        out.push([i, i + n]);
        w = -1;
      } else if (w < 0) {
        w = i;
      }
      i += n;
    }
    if (w >= 0) out.push([w, e]);
  }
  return out;
};

/** HF `Whitespace`: `\w+|[^\w\s]+`. */
export const whitespace: PreTokenizer = regexSplit(/[\p{L}\p{N}\p{M}_]+|[^\p{L}\p{N}\p{M}_\s]+/gu, "matches");
/** HF `WhitespaceSplit`: split on whitespace. */
export const whitespaceSplit: PreTokenizer = regexSplit(/\S+/gu, "matches");

export interface PreTokenizerSpec {
  pre: PreTokenizer;
  /** The ByteLevel pre-tokenizer is present: words are mapped to byte characters. */
  byteLevel: boolean;
  /** ByteLevel `add_prefix_space`. */
  addPrefixSpace: boolean;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A pre-tokenizer from its HF `tokenizer.json` description. */
export function preTokenizerFromJson(j: unknown, path = "pre_tokenizer"): PreTokenizerSpec {
  if (j === null || j === undefined) return { pre: (_t, s) => s, byteLevel: false, addPrefixSpace: false };
  const o = j as Record<string, unknown>;
  switch (o.type) {
    case "ByteLevel":
      return {
        pre: o.use_regex === false ? (_t, s) => s : gpt2Split,
        byteLevel: true,
        addPrefixSpace: (o.add_prefix_space as boolean) ?? true,
      };
    case "BertPreTokenizer":
      return { pre: bertPreTokenizer, byteLevel: false, addPrefixSpace: false };
    case "Whitespace":
      return { pre: whitespace, byteLevel: false, addPrefixSpace: false };
    case "WhitespaceSplit":
      return { pre: whitespaceSplit, byteLevel: false, addPrefixSpace: false };
    case "Split": {
      const pat = o.pattern as Record<string, unknown> | undefined;
      let re: RegExp;
      // a Regex is vetted for exponential backtracking first (a running regex cannot be interrupted)
      if (pat && typeof pat.Regex === "string") re = compileSplitRegex(pat.Regex, `${path}.pattern.Regex`);
      else if (pat && typeof pat.String === "string") re = new RegExp(escapeRe(pat.String), "gu");
      else throw new ConfigError("cannot use this pattern: expected {Regex} or {String}", `${path}.pattern`);
      const b = o.behavior;
      if (o.invert === true) return { pre: regexSplit(re, "matches"), byteLevel: false, addPrefixSpace: false };
      if (b === "Isolated") return { pre: regexSplit(re, "isolated"), byteLevel: false, addPrefixSpace: false };
      if (b === "Removed") return { pre: regexSplit(re, "removed"), byteLevel: false, addPrefixSpace: false };
      throw new ConfigError(
        `unsupported Split behavior ${JSON.stringify(b)} (Isolated, Removed, or invert)`,
        `${path}.behavior`,
      );
    }
    case "Sequence": {
      if (!Array.isArray(o.pretokenizers)) throw new ConfigError("expected a list", `${path}.pretokenizers`);
      const parts = o.pretokenizers.map((p, i) => preTokenizerFromJson(p, `${path}.pretokenizers[${i}]`));
      return {
        pre: (t, s) => parts.reduce((acc, p) => p.pre(t, acc), s),
        byteLevel: parts.some((p) => p.byteLevel),
        addPrefixSpace: parts.some((p) => p.byteLevel && p.addPrefixSpace),
      };
    }
    default:
      throw new ConfigError(`unsupported pre_tokenizer type ${JSON.stringify(o.type)}`, `${path}.type`);
  }
}
