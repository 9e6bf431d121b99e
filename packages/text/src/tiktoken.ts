/**
 * tiktoken rank tables → BPE vocabulary + merges. A tiktoken encoding lists byte strings by rank;
 * byte-pair merging picks the adjacent pair whose concatenation has the lowest rank. That is a
 * merge list in disguise: the token of rank r > 255 is the merge of the two parts that merging its
 * bytes with only the ranks below r leaves (the conversion HF uses for tiktoken models).
 */
import { ParseError } from "@wasmformer/core";
import { BYTE_TO_CHAR } from "./byte-level.js";

const keyOf = (b: Uint8Array) => {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
};
const byteChars = (b: Uint8Array) => {
  let s = "";
  for (let i = 0; i < b.length; i++) s += BYTE_TO_CHAR[b[i]];
  return s;
};

/** Parse a `.tiktoken` file: one `base64 rank` per line. Returns the byte strings indexed by rank. */
export function parseTiktokenRanks(text: string, file = "ranks.tiktoken"): Uint8Array[] {
  const out: Uint8Array[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const m = /^([A-Za-z0-9+/]*={0,2}) (\d+)\r?$/.exec(line);
    if (!m) throw new ParseError('expected "<base64> <rank>"', { file, line: i + 1 });
    const rank = Number(m[2]);
    if (out[rank] !== undefined) throw new ParseError(`rank ${rank} appears twice`, { file, line: i + 1 });
    out[rank] = Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0));
  });
  for (let r = 0; r < out.length; r++) if (out[r] === undefined) throw new ParseError(`rank ${r} is missing`, { file });
  return out;
}

/**
 * Vocabulary (GPT-2 byte characters → rank) and merges (in rank order) equivalent to a rank table.
 * Ranks 0..255 must be the single bytes (as in GPT-2's r50k_base).
 */
export function ranksToVocabMerges(byRank: readonly Uint8Array[]): {
  vocab: Map<string, number>;
  merges: [string, string][];
} {
  const rankOf = new Map<string, number>();
  for (let r = 0; r < byRank.length; r++) rankOf.set(keyOf(byRank[r]), r);
  const vocab = new Map<string, number>();
  for (let r = 0; r < byRank.length; r++) vocab.set(byteChars(byRank[r]), r);
  const merges: [string, string][] = [];
  for (let r = 0; r < byRank.length; r++) {
    const bytes = byRank[r];
    if (bytes.length === 1) continue;
    // merge the bytes with ranks < r, lowest rank (leftmost on ties) first
    let parts: Uint8Array[] = Array.from(bytes, (b) => Uint8Array.of(b));
    for (;;) {
      let best = -1;
      let bestRank = r;
      for (let i = 0; i + 1 < parts.length; i++) {
        const q = rankOf.get(keyOf(parts[i]) + keyOf(parts[i + 1]));
        if (q !== undefined && q < bestRank) {
          bestRank = q;
          best = i;
        }
      }
      if (best < 0) break;
      const joined = new Uint8Array(parts[best].length + parts[best + 1].length);
      joined.set(parts[best]);
      joined.set(parts[best + 1], parts[best].length);
      parts = [...parts.slice(0, best), joined, ...parts.slice(best + 2)];
    }
    if (parts.length !== 2)
      throw new ParseError(`the token of rank ${r} is not the merge of two lower-ranked tokens`, { file: "ranks" });
    merges.push([byteChars(parts[0]), byteChars(parts[1])]);
  }
  return { vocab, merges };
}
