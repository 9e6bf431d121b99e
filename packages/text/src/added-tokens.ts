/**
 * Helpers for added tokens and `tokenizer_config.json` special tokens: leftmost-longest matching
 * of a set of added tokens, and the BOS/EOS post-processor transformers builds from
 * `add_bos_token` / `add_eos_token`.
 */
import type { AddedToken } from "./subword-tokenizer.js";

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * One regex matching any of `tokens` (as `contentOf` spells them), longest first at a position,
 * one capture group per token in `order`; honours `single_word`, `lstrip`, `rstrip`.
 */
export function addedTokensRegex(
  tokens: AddedToken[],
  contentOf: (t: AddedToken) => string,
  wordChar: string,
): { re: RegExp | null; order: AddedToken[] } {
  const items = tokens
    .map((t) => ({ t, c: contentOf(t) }))
    .filter((x) => x.c.length > 0)
    .sort((a, b) => b.c.length - a.c.length);
  if (items.length === 0) return { re: null, order: [] };
  const src = items
    .map(({ t, c }) => {
      let s = escapeRe(c);
      if (t.singleWord) s = `(?<!${wordChar})${s}(?!${wordChar})`;
      return `(${t.lstrip ? "\\s*" : ""}${s}${t.rstrip ? "\\s*" : ""})`;
    })
    .join("|");
  return { re: new RegExp(src, "gu"), order: items.map((x) => x.t) };
}

/** Cut `text` into `[start, end, token | null]` around the matches of `re` (from `addedTokensRegex`). */
export function matchAdded(
  re: RegExp | null,
  order: AddedToken[],
  text: string,
): [number, number, AddedToken | null][] {
  if (!re) return [[0, text.length, null]];
  const out: [number, number, AddedToken | null][] = [];
  re.lastIndex = 0;
  let prev = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    let g = 1;
    while (m[g] === undefined) g++;
    if (m.index > prev) out.push([prev, m.index, null]);
    out.push([m.index, m.index + m[0].length, order[g - 1]]);
    prev = m.index + m[0].length;
  }
  if (prev < text.length) out.push([prev, text.length, null]);
  return out;
}

type Special = { ids: number[]; tokens: string[]; typeId: number };
type Item = { seq: 0 | 1; typeId: number } | Special;

/**
 * transformers' `update_post_processor` for `add_bos_token` / `add_eos_token`:
 * single `[bos] $A [eos]`, pair `[bos] $A [eos] [bos] $B:1 [eos]:1` (each only when enabled).
 */
export function bosEosTemplate(
  bos: { token: string; id: number } | null,
  eos: { token: string; id: number } | null,
): { single: Item[]; pair: Item[] } {
  const sp = (t: { token: string; id: number }, typeId: number): Special => ({
    ids: [t.id],
    tokens: [t.token],
    typeId,
  });
  const part = (seq: 0 | 1): Item[] => [
    ...(bos ? [sp(bos, seq)] : []),
    { seq, typeId: seq },
    ...(eos ? [sp(eos, seq)] : []),
  ];
  return { single: part(0), pair: [...part(0), ...part(1)] };
}
