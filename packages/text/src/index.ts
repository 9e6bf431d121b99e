/**
 * @wasmformer/text — text preprocessing: the Keras `Tokenizer` and `padSequences`, subword
 * tokenizers (byte-level BPE as in GPT-2, WordPiece as in BERT) and word embeddings.
 */
export * from "./json.js";
export * from "./keras-tokenizer.js";
export * from "./pad-sequences.js";
