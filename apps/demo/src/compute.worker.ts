/**
 * The demo's compute worker: owns the wasm instances and the loaded models; the page only sends
 * inputs and receives results (comlink; buffers transferred both ways, tokens streamed through
 * proxied callbacks). Cancelling terminates this worker; the client restarts it lazily.
 */
import { backendName, init, matmul, Tensor, threadsInfo } from "@wasmformer/core";
import type { Word2VecProgress } from "@wasmformer/text";
import { expose, releaseProxy, transfer } from "comlink";
import type { TrainRequest } from "./tasks/embeddings.js";
import { type FolderSource, type ProgressFn, readFolder } from "./tasks/folder.js";
import type { GenerateRequest } from "./tasks/gpt2.js";
import { loadSlots } from "./tasks/slots.js";
import type { TextRequest } from "./tasks/text.js";
import type { LabelledDigit, TrainEpoch, TrainSetup, TrainStep } from "./tasks/train.js";
import type { AskRequest, DigitImage } from "./tasks/vlm.js";

/**
 * Each page's task code is a chunk of its own, loaded on first use (and then cached by the module
 * system): opening the demo on the ViT page parses core, vit and the ViT task only.
 */
const tasks = {
  embeddings: () => import("./tasks/embeddings.js"),
  gpt2: () => import("./tasks/gpt2.js"),
  seq2seq: () => import("./tasks/seq2seq.js"),
  text: () => import("./tasks/text.js"),
  train: () => import("./tasks/train.js"),
  vit: () => import("./tasks/vit.js"),
  vlm: () => import("./tasks/vlm.js"),
};

let ready: Promise<string> | undefined;

/** The files of a ViT folder (required, optional). */
const VIT_FILES = ["config.json", "model.safetensors"];
const VIT_OPTIONAL = ["preprocessor_config.json"];

/**
 * Kernel threads when the page asks for none: every core but one, which stays with the page (its
 * rendering and input), at most 8 — on a 2-core machine that is 1, as onnxruntime-web's ⌈cores/2⌉.
 */
const defaultThreads = () => Math.max(1, Math.min(8, (navigator.hardwareConcurrency || 1) - 1));

/** Load the kernels once; resolves to the backend name ("wasm-relaxed", "wasm-simd" or "ref"). */
function ensureInit(threads = defaultThreads()): Promise<string> {
  ready ??= init({ threads }).then(() => backendName());
  return ready;
}

/** Run `f`, then release the page's proxied callback (its MessagePort) whatever happens. */
async function withCallback<C, R>(cb: C, f: (cb: C) => Promise<R>): Promise<R> {
  try {
    return await f(cb);
  } finally {
    const release = (cb as { [releaseProxy]?: () => void })[releaseProxy];
    if (typeof release === "function") release.call(cb);
  }
}

const api = {
  /**
   * Load the kernels with `threads` kernel threads (default: every core but one); returns the
   * backend, what the engine supports and the threads it got (a pool of workers started from this
   * worker when the page is cross-origin isolated, else 1 and why).
   */
  async init(
    threads?: number,
  ): Promise<{ backend: string; crossOriginIsolated: boolean; threads: number; threadsReason?: string }> {
    const backend = await ensureInit(threads);
    // another call may have loaded the kernels first, with the default count
    if (threads !== undefined && threadsInfo().requested !== threads) await init({ threads });
    const t = threadsInfo();
    return { backend, crossOriginIsolated: self.crossOriginIsolated, threads: t.threads, threadsReason: t.reason };
  },

  /**
   * Kernel calls split over the threads so far and the tiles the pool's workers ran, after one
   * 512×512 matrix product (`probe`: its first entry, and the same dot product in float64).
   */
  async threadStats(): Promise<{ threads: number; splitCalls: number; workerTiles: number; probe: number[] }> {
    await ensureInit();
    const n = 512;
    const a = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    const b = new Float32Array(n * n).map((_, i) => ((i * 104729) % 997) / 997 - 0.5);
    const c = matmul(new Tensor(a, [n, n]), new Tensor(b, [n, n])).data as Float32Array;
    let want = 0;
    for (let p = 0; p < n; p++) want += a[p] * b[p * n];
    const { threads, splitCalls, workerTiles } = threadsInfo();
    return { threads, splitCalls, workerTiles, probe: [c[0], want] };
  },

  /** Keras Tokenizer + padSequences on the given texts. */
  async textPreprocess(req: TextRequest) {
    await ensureInit();
    const { preprocess, textTransferables } = await tasks.text();
    const r = preprocess(req);
    return transfer(r, textTransferables(r));
  },

  /** Train Word2Vec; progress (loss, words/s) through a proxied callback. */
  async trainWord2Vec(req: TrainRequest, onProgress: (p: Word2VecProgress) => void) {
    await ensureInit();
    const { trainWord2Vec } = await tasks.embeddings();
    return withCallback(onProgress, (cb) => trainWord2Vec(req, cb));
  },

  async stopTraining() {
    return (await tasks.embeddings()).stopTraining();
  },

  /** Load word vectors (vectors.bin / vectors.txt) from a folder. */
  async loadWordVectors(src: FolderSource, onProgress: ProgressFn) {
    const latest = loadSlots.vectors.begin();
    await ensureInit();
    const { loadWordVectors } = await tasks.embeddings();
    return withCallback(onProgress, (cb) => loadWordVectors(src, cb, latest));
  },

  async neighbours(word: string, k: number) {
    return (await tasks.embeddings()).neighbours(word, k);
  },

  async analogy(a: string, b: string, c: string, k: number) {
    return (await tasks.embeddings()).analogy(a, b, c, k);
  },

  /** 2-D PCA of the given words' vectors (all words when empty); coordinates transferred. */
  async project(words: string[]) {
    const r = (await tasks.embeddings()).project(words);
    return transfer(r, [r.coords.buffer as ArrayBuffer]);
  },

  /** Load a GPT-2 folder (files or URL); progress through a proxied callback. */
  async loadGpt2(src: FolderSource, onProgress: ProgressFn) {
    const latest = loadSlots.gpt2.begin();
    await ensureInit();
    const { loadGpt2 } = await tasks.gpt2();
    return withCallback(onProgress, (cb) => loadGpt2(src, cb, latest));
  },

  /** Stream tokens through the proxied `onToken`; ends early on `stopGeneration()`. */
  async generate(req: GenerateRequest, onToken: (text: string, tokensPerSecond: number) => Promise<void> | void) {
    const { generateText } = await tasks.gpt2();
    return withCallback(onToken, (cb) => generateText(req, cb));
  },

  async stopGeneration() {
    return (await tasks.gpt2()).stopGeneration();
  },

  /** Self-attention of the loaded GPT-2 over a sentence: `[layers, heads, T, T]`, transferred. */
  async gpt2Attention(sentence: string) {
    const r = (await tasks.gpt2()).gpt2Attention(sentence);
    return transfer(r, [r.weights.buffer as ArrayBuffer]);
  },

  /** Load a ViT folder (files or URL). */
  async loadVit(src: FolderSource, onProgress: ProgressFn) {
    const latest = loadSlots.vit.begin();
    // the page opens on this model: the files download while the kernels and the task's code load
    const kernels = ensureInit();
    const files = readFolder(src, VIT_FILES, VIT_OPTIONAL, onProgress);
    // both awaited (and reported) by loadVit
    kernels.catch(() => {});
    files.catch(() => {});
    const { loadVit } = await tasks.vit();
    return withCallback(onProgress, (cb) => loadVit(files, cb, kernels, latest));
  },

  /** Load a vision-language folder (files or URL). */
  async loadVlm(src: FolderSource, onProgress: ProgressFn) {
    const latest = loadSlots.vlm.begin();
    await ensureInit();
    const { loadVlm } = await tasks.vlm();
    return withCallback(onProgress, (cb) => loadVlm(src, cb, latest));
  },

  /** Answer a question about an image (a file or a drawn digit); the answer streams through the proxied `onToken`. */
  async askVlm(
    image: Blob | DigitImage,
    imageKey: string,
    req: AskRequest,
    onToken: (text: string, tokensPerSecond: number) => Promise<void> | void,
  ) {
    const { askVlm } = await tasks.vlm();
    return withCallback(onToken, (cb) => askVlm(image, imageKey, req, cb));
  },

  async stopVlm() {
    return (await tasks.vlm()).stopVlm();
  },

  /** Classify an image file; CLS attention maps and mean attention distances come back transferred. */
  async classifyImage(image: Blob) {
    const { classifyImage, vitTransferables } = await tasks.vit();
    const r = await classifyImage(image);
    return transfer(r, vitTransferables(r));
  },

  /** Classify a drawing (`[h, w]` grey, 0 = background), made MNIST-like first; results transferred. */
  async classifyDigit(gray: Uint8Array, width: number, height: number) {
    const { classifyDigit, vitTransferables } = await tasks.vit();
    const r = classifyDigit(gray, width, height);
    return transfer(r, vitTransferables(r));
  },

  /** Load the digits checkpoint for training (fine-tune or from scratch); progress proxied. */
  async setupTraining(req: TrainSetup, onProgress: ProgressFn) {
    await ensureInit();
    const { setupTraining } = await tasks.train();
    return withCallback(onProgress, (cb) => setupTraining(req, cb));
  },

  /** Train `epochs` more epochs on `digits`; steps and epochs reported through proxied callbacks. */
  async runTraining(
    digits: LabelledDigit[],
    epochs: number,
    shift: number,
    onStep: (s: TrainStep) => void,
    onEpoch: (e: TrainEpoch) => Promise<void> | void,
  ) {
    const { runTraining } = await tasks.train();
    return withCallback(onStep, (step) =>
      withCallback(onEpoch, (epoch) => runTraining(digits, epochs, shift, step, epoch)),
    );
  },

  async stopTrainingVit() {
    return (await tasks.train()).stopTrainingVit();
  },

  /** A copy of the trained model becomes the ViT page's model. */
  async useTrainedVit() {
    return (await tasks.train()).useTrainedVit();
  },

  /** Load a seq2seq folder (files or URL). */
  async loadSeq2Seq(src: FolderSource, onProgress: ProgressFn) {
    const latest = loadSlots.seq2seq.begin();
    await ensureInit();
    const { loadSeq2Seq } = await tasks.seq2seq();
    return withCallback(onProgress, (cb) => loadSeq2Seq(src, cb, latest));
  },

  /** Greedy translation and its cross-attention weights (transferred). */
  async translate(text: string) {
    const r = (await tasks.seq2seq()).translate(text);
    return transfer(r, [r.attention.buffer as ArrayBuffer]);
  },
};

export type ComputeApi = typeof api;
expose(api);
