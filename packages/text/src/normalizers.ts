/**
 * Normalizers (HF tokenizers `normalizers`) that keep the alignment with the original text: each
 * UTF-16 unit of the normalized text remembers the `[start, end)` of the original character it
 * came from, so token offsets point into the caller's string.
 *
 * `BertNormalizer` follows HF `normalizers/bert.rs` in its order: clean text (drop NUL, U+FFFD and
 * control characters; every whitespace becomes a space), pad CJK ideographs with spaces, strip
 * accents (NFD, then drop non-spacing marks, category Mn), lower-case (per character, as Rust's
 * `char::to_lowercase`: no final-sigma rule).
 */
import { ConfigError } from "@wasmformer/core";

/** Text plus, per UTF-16 unit, the original `[start, end)`; `null` arrays mean the identity. */
export interface Aligned {
  text: string;
  starts: Int32Array | null;
  ends: Int32Array | null;
}

export type Normalizer = (a: Aligned) => Aligned;

export const identity = (text: string): Aligned => ({ text, starts: null, ends: null });

function origStart(a: Aligned, i: number): number {
  return a.starts ? a.starts[i] : i;
}
function origEnd(a: Aligned, i: number): number {
  return a.ends ? a.ends[i] : i + 1;
}

/** Original `[start, end)` of the normalized span `[s, e)` (an empty span maps to a point). */
export function alignSpan(a: Aligned, s: number, e: number): [number, number] {
  if (e <= s) {
    const p = s < a.text.length ? origStart(a, s) : a.text.length === 0 ? 0 : origEnd(a, a.text.length - 1);
    return [p, p];
  }
  return [origStart(a, s), origEnd(a, e - 1)];
}

/**
 * Rewrite `a` piece by piece: `pieces` splits the text into units (code points or clusters), `f`
 * maps each to its replacement. Every output unit maps to the span of the piece it came from.
 */
function rewrite(a: Aligned, pieces: RegExp, f: (piece: string) => string): Aligned {
  let text = "";
  const starts: number[] = [];
  const ends: number[] = [];
  let changed = false;
  pieces.lastIndex = 0;
  for (let m = pieces.exec(a.text); m !== null; m = pieces.exec(a.text)) {
    const piece = m[0];
    const r = f(piece);
    if (r !== piece) changed = true;
    const s = origStart(a, m.index);
    const e = origEnd(a, m.index + piece.length - 1);
    text += r;
    // a removed piece widens the previous unit (HF NormalizedString alignments do the same)
    if (r.length === 0 && ends.length > 0) ends[ends.length - 1] = e;
    for (let k = 0; k < r.length; k++) {
      starts.push(s);
      ends.push(e);
    }
  }
  if (!changed) return a;
  return { text, starts: Int32Array.from(starts), ends: Int32Array.from(ends) };
}

const CODE_POINTS = /[\s\S]/gu;
/** A base character with its combining marks (or a run of marks): normalization forms stay inside. */
const CLUSTERS = /\P{M}\p{M}*|\p{M}+/gu;

const isBertWhitespace = (c: string) => c === "\t" || c === "\n" || c === "\r" || /^\p{White_Space}$/u.test(c);
const isBertControl = (c: string) =>
  !(c === "\t" || c === "\n" || c === "\r") && /^[\p{Cc}\p{Cf}\p{Co}\p{Cn}]$/u.test(c);

/** CJK Unified Ideographs blocks used by BERT's `_is_chinese_char`. */
export function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

const stripMarks = (s: string) => s.normalize("NFD").replace(/\p{Mn}/gu, "");

export interface BertNormalizerOptions {
  cleanText?: boolean;
  handleChineseChars?: boolean;
  /** Default (null): follow `lowercase`. */
  stripAccents?: boolean | null;
  lowercase?: boolean;
}

export function bertNormalizer(o: BertNormalizerOptions = {}): Normalizer {
  const clean = o.cleanText ?? true;
  const chinese = o.handleChineseChars ?? true;
  const lower = o.lowercase ?? true;
  const strip = o.stripAccents ?? lower;
  return (a) =>
    rewrite(a, CODE_POINTS, (c) => {
      if (clean) {
        const cp = c.codePointAt(0)!;
        if (cp === 0 || cp === 0xfffd || isBertControl(c)) return "";
        if (isBertWhitespace(c)) return " ";
      }
      let r = c;
      if (chinese && isChineseChar(c.codePointAt(0)!)) r = ` ${c} `;
      if (strip) r = stripMarks(r);
      if (lower) r = r.toLowerCase();
      return r;
    });
}

export const lowercase: Normalizer = (a) => rewrite(a, CODE_POINTS, (c) => c.toLowerCase());
export const stripAccents: Normalizer = (a) => rewrite(a, CODE_POINTS, (c) => c.replace(/\p{Mn}/gu, ""));
export const unicodeForm =
  (form: "NFC" | "NFD" | "NFKC" | "NFKD"): Normalizer =>
  (a) =>
    rewrite(a, CLUSTERS, (c) => c.normalize(form));
export const strip =
  (left: boolean, right: boolean): Normalizer =>
  (a) => {
    let s = 0;
    let e = a.text.length;
    if (left) while (s < e && /\s/u.test(a.text[s])) s++;
    if (right) while (e > s && /\s/u.test(a.text[e - 1])) e--;
    if (s === 0 && e === a.text.length) return a;
    const starts = new Int32Array(e - s);
    const ends = new Int32Array(e - s);
    for (let i = s; i < e; i++) {
      starts[i - s] = origStart(a, i);
      ends[i - s] = origEnd(a, i);
    }
    return { text: a.text.slice(s, e), starts, ends };
  };

/** Prepend a space (HF ByteLevel / Metaspace `add_prefix_space`) unless the text starts with one. */
export const prefixSpace: Normalizer = (a) => {
  if (a.text.length === 0 || a.text[0] === " ") return a;
  const n = a.text.length;
  const starts = new Int32Array(n + 1);
  const ends = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    starts[i + 1] = origStart(a, i);
    ends[i + 1] = origEnd(a, i);
  }
  starts[0] = ends[0] = origStart(a, 0);
  return { text: ` ${a.text}`, starts, ends };
};

export const sequence =
  (list: Normalizer[]): Normalizer =>
  (a) =>
    list.reduce((acc, f) => f(acc), a);

/** A normalizer from its HF `tokenizer.json` description. */
export function normalizerFromJson(j: unknown, path = "normalizer"): Normalizer | null {
  if (j === null || j === undefined) return null;
  const o = j as Record<string, unknown>;
  switch (o.type) {
    case "BertNormalizer":
      return bertNormalizer({
        cleanText: (o.clean_text as boolean) ?? true,
        handleChineseChars: (o.handle_chinese_chars as boolean) ?? true,
        stripAccents: (o.strip_accents as boolean | null) ?? null,
        lowercase: (o.lowercase as boolean) ?? true,
      });
    case "Lowercase":
      return lowercase;
    case "StripAccents":
      return stripAccents;
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD":
      return unicodeForm(o.type);
    case "Strip":
      return strip((o.strip_left as boolean) ?? true, (o.strip_right as boolean) ?? true);
    case "Sequence": {
      if (!Array.isArray(o.normalizers)) throw new ConfigError("expected a list", `${path}.normalizers`);
      const list = o.normalizers
        .map((n, i) => normalizerFromJson(n, `${path}.normalizers[${i}]`))
        .filter((n): n is Normalizer => n !== null);
      return sequence(list);
    }
    default:
      throw new ConfigError(`unsupported normalizer type ${JSON.stringify(o.type)}`, `${path}.type`);
  }
}
