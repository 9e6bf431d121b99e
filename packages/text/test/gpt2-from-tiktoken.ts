// Test helper: GPT-2's vocab.json + merges.txt derived from js-tiktoken's r50k_base ranks (the GPT-2
// encoding). A rank table is equivalent to a merge list: the token of rank r > 255 is the merge of
// the two parts that byte-pair merging with only the ranks below r leaves of its bytes.
import r50k from "js-tiktoken/ranks/r50k_base";
import { BYTE_TO_CHAR } from "../src/byte-level.js";

function decodeBase64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64"));
}

/** tiktoken-style merging of `bytes` using only ranks < maxRank; returns the part boundaries. */
function mergeParts(bytes: Uint8Array, rankOf: Map<string, number>, maxRank: number): Uint8Array[] {
  let parts: Uint8Array[] = Array.from(bytes, (b) => Uint8Array.of(b));
  for (;;) {
    let best = -1;
    let bestRank = maxRank;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = rankOf.get(key(concat(parts[i], parts[i + 1])));
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) return parts;
    parts = [...parts.slice(0, best), concat(parts[best], parts[best + 1]), ...parts.slice(best + 2)];
  }
}

const key = (b: Uint8Array) => Buffer.from(b).toString("latin1");
const concat = (a: Uint8Array, b: Uint8Array) => {
  const c = new Uint8Array(a.length + b.length);
  c.set(a);
  c.set(b, a.length);
  return c;
};
const chars = (b: Uint8Array) => Array.from(b, (x) => BYTE_TO_CHAR[x]).join("");

export interface Gpt2Files {
  vocabJson: string;
  mergesTxt: string;
  vocab: Record<string, number>;
  merges: string[];
}

let cached: Gpt2Files | undefined;

/** The GPT-2 vocabulary (50257 tokens) and its 50000 merges, in rank order. */
export function gpt2Files(): Gpt2Files {
  if (cached) return cached;
  const lines = (r50k as { bpe_ranks: string }).bpe_ranks.split("\n").filter(Boolean);
  const byRank: Uint8Array[] = [];
  for (const line of lines) {
    const [, offset, ...toks] = line.split(" ");
    toks.forEach((t, i) => {
      byRank[Number(offset) + i] = decodeBase64(t);
    });
  }
  const rankOf = new Map<string, number>();
  for (let r = 0; r < byRank.length; r++) rankOf.set(key(byRank[r]), r);
  const vocab: Record<string, number> = {};
  byRank.forEach((b, r) => {
    vocab[chars(b)] = r;
  });
  for (const [tok, id] of Object.entries((r50k as { special_tokens: Record<string, number> }).special_tokens))
    vocab[tok] = id;
  const merges: string[] = [];
  for (let r = 256; r < byRank.length; r++) {
    const parts = mergeParts(byRank[r], rankOf, r);
    if (parts.length !== 2) throw new Error(`rank ${r} does not split into two lower-ranked tokens`);
    merges.push(`${chars(parts[0])} ${chars(parts[1])}`);
  }
  cached = { vocab, merges, vocabJson: JSON.stringify(vocab), mergesTxt: `#version: 0.2\n${merges.join("\n")}\n` };
  return cached;
}
