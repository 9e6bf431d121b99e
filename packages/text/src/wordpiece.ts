/**
 * The WordPiece model (BERT; google-research/bert `tokenization.py` `WordpieceTokenizer`, HF
 * tokenizers `models/wordpiece`): greedy longest-match-first over the vocabulary, pieces after the
 * first carry the `##` prefix; a word longer than `maxInputCharsPerWord` characters, or one that
 * cannot be covered, becomes the unknown token.
 */
import { ParseError } from "@wasmformer/core";
import type { Piece } from "./bpe.js";

export interface WordPieceOptions {
  unkToken?: string;
  continuingSubwordPrefix?: string;
  maxInputCharsPerWord?: number;
}

/**
 * Parse a BERT `vocab.txt`: one token per line, the id is the line index (0-based). Trailing `\r`
 * is dropped; a blank line (other than the final newline) is an error.
 */
export function parseVocabTxt(text: string, file = "vocab.txt"): Map<string, number> {
  const vocab = new Map<string, number>();
  const rows = text.split("\n");
  if (rows.length > 0 && rows[rows.length - 1] === "") rows.pop(); // final newline
  rows.forEach((raw, i) => {
    const tok = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (tok === "") throw new ParseError("empty token (blank line) in the vocabulary", { file, line: i + 1 });
    vocab.set(tok, i); // a repeated token takes its later id, as in HF tokenizers
  });
  if (vocab.size === 0) throw new ParseError("empty vocabulary", { file, line: 1 });
  return vocab;
}

export class WordPiece {
  readonly vocab: Map<string, number>;
  readonly vocabR: Map<number, string>;
  readonly unkToken: string;
  readonly unkId: number;
  readonly prefix: string;
  readonly maxInputCharsPerWord: number;

  constructor(vocab: Map<string, number>, opts: WordPieceOptions = {}, file = "vocab") {
    this.vocab = vocab;
    this.vocabR = new Map();
    for (const [t, i] of vocab) this.vocabR.set(i, t);
    this.unkToken = opts.unkToken ?? "[UNK]";
    this.prefix = opts.continuingSubwordPrefix ?? "##";
    this.maxInputCharsPerWord = opts.maxInputCharsPerWord ?? 100;
    const unk = vocab.get(this.unkToken);
    if (unk === undefined)
      throw new ParseError(`unk_token ${JSON.stringify(this.unkToken)} is not in the vocabulary`, { file });
    this.unkId = unk;
  }

  /** Split one word into pieces (offsets in the word's UTF-16 units). Never throws. */
  tokenize(word: string): Piece[] {
    const cps = Array.from(word);
    if (cps.length === 0) return [];
    if (cps.length > this.maxInputCharsPerWord) return [{ id: this.unkId, start: 0, end: word.length }];
    // UTF-16 offset of each code point boundary
    const at = new Int32Array(cps.length + 1);
    for (let i = 0; i < cps.length; i++) at[i + 1] = at[i] + cps[i].length;
    const out: Piece[] = [];
    let start = 0;
    while (start < cps.length) {
      let end = cps.length;
      let found = -1;
      while (start < end) {
        let sub = word.slice(at[start], at[end]);
        if (start > 0) sub = this.prefix + sub;
        const id = this.vocab.get(sub);
        if (id !== undefined) {
          found = id;
          break;
        }
        end--;
      }
      if (found < 0) return [{ id: this.unkId, start: 0, end: word.length }];
      out.push({ id: found, start: at[start], end: at[end] });
      start = end;
    }
    return out;
  }
}
