/**
 * @wasmformer/text — text preprocessing: the Keras `Tokenizer` and `padSequences`, subword
 * tokenizers (byte-level BPE as in GPT-2, WordPiece as in BERT) and word embeddings.
 */

export * from "./bpe.js";
export * from "./bpe-trainer.js";
export * from "./byte-level.js";
export * from "./chat-template.js";
export * from "./hf-components.js";
export * from "./hf-regex.js";
export * from "./json.js";
export * from "./keras-tokenizer.js";
export * from "./normalizers.js";
export * from "./pad-sequences.js";
export * from "./pre-tokenizers.js";
export * from "./subword-tokenizer.js";
export * from "./tiktoken.js";
export * from "./word-vectors.js";
export * from "./word2vec.js";
export * from "./wordpiece.js";
