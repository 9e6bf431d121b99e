// Test helper: GPT-2's vocab.json + merges.txt derived from js-tiktoken's r50k_base ranks (the GPT-2
// encoding, used as a test-only oracle). The texts are then fed to our vocab.json/merges.txt loader.
import r50k from "js-tiktoken/ranks/r50k_base";
import { ranksToVocabMerges } from "../src/tiktoken.js";

/** js-tiktoken's packed rank format: lines of `<first> <offset> <base64 token>...`, rank = offset + i. */
export function unpackJsTiktokenRanks(packed: string): Uint8Array[] {
  const byRank: Uint8Array[] = [];
  for (const line of packed.split("\n").filter(Boolean)) {
    const [, offset, ...toks] = line.split(" ");
    for (let i = 0; i < toks.length; i++) byRank[Number(offset) + i] = new Uint8Array(Buffer.from(toks[i], "base64"));
  }
  return byRank;
}

export interface Gpt2Files {
  vocabJson: string;
  mergesTxt: string;
  vocab: Record<string, number>;
  merges: string[];
}

let cached: Gpt2Files | undefined;

/** The GPT-2 vocabulary (50257 tokens incl. <|endoftext|>) and its 50000 merges, in rank order. */
export function gpt2Files(): Gpt2Files {
  if (cached) return cached;
  const spec = r50k as { bpe_ranks: string; special_tokens: Record<string, number> };
  const { vocab, merges } = ranksToVocabMerges(unpackJsTiktokenRanks(spec.bpe_ranks));
  const v: Record<string, number> = Object.fromEntries(vocab);
  for (const [tok, id] of Object.entries(spec.special_tokens)) v[tok] = id;
  const m = merges.map(([a, b]) => `${a} ${b}`);
  cached = { vocab: v, merges: m, vocabJson: JSON.stringify(v), mergesTxt: `#version: 0.2\n${m.join("\n")}\n` };
  return cached;
}
