// Train an LSTM text classifier from scratch, the course's Keras pipeline in wasm: Tokenizer →
// texts_to_sequences → pad_sequences → Embedding + LSTM + Dense → fit, printing loss and accuracy
// per epoch. The task is generated (seeded): short movie reviews whose sentiment a bag of words
// cannot tell: "not" flips the adjective after it ("the plot was not good at all"), and after
// "but" only the second clause counts ("the cast was great but the ending felt dull").
//
//   pnpm build
//   node --experimental-wasm-relaxed-simd packages/nn/examples/train-lstm-classifier.mjs
import * as core from "@wasmformer/core";
import { padSequences, Tokenizer } from "@wasmformer/text";
import { AdamW, evaluate, fit, LSTMClassifier } from "../dist/index.js";

const rand = core.mulberry32(7);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const SUBJECTS = ["the movie", "the plot", "the acting", "this film", "the ending", "the soundtrack", "the cast"];
const VERBS = ["was", "is", "felt", "seemed"];
const GOOD = ["good", "great", "wonderful", "brilliant", "moving", "fun", "superb"];
const BAD = ["bad", "boring", "awful", "dull", "terrible", "weak", "clumsy"];
const TAILS = ["", "", "at all", "to me", "honestly", "overall", "i think"];

/** A clause of the given sentiment: "not" before the adjective flips it. */
function clause(positive) {
  const negated = rand() < 0.5;
  const adj = positive !== negated ? pick(GOOD) : pick(BAD);
  return [pick(SUBJECTS), pick(VERBS), negated ? "not" : "", rand() < 0.3 ? "really" : "", adj];
}

/** A review and its label (1 = positive); with "but", the second clause decides. */
function review() {
  const positive = rand() < 0.5;
  const words =
    rand() < 0.4 ? [...clause(rand() < 0.5), "but", ...clause(positive)] : [...clause(positive), pick(TAILS)];
  return { text: words.filter(Boolean).join(" "), label: positive ? 1 : 0 };
}

const train = Array.from({ length: 800 }, review);
const test = Array.from({ length: 400 }, review);

// the Keras preprocessing: fit the vocabulary on the training texts, then ids padded to one length
const tok = new Tokenizer({ oovToken: "<OOV>" });
tok.fitOnTexts(train.map((r) => r.text));
const MAXLEN = 12;
const encode = (rows) => {
  const ids = padSequences(tok.textsToSequences(rows.map((r) => r.text)), { maxlen: MAXLEN });
  return rows.map((r, i) => ({ ids: ids.data.subarray(i * MAXLEN, (i + 1) * MAXLEN), label: r.label }));
};
const trainSet = encode(train);
const testSet = encode(test);
console.log(`vocabulary: ${tok.wordIndex.size} words; ${trainSet.length} training and ${testSet.length} test reviews`);
console.log(`e.g. "${train[0].text}" → [${Array.from(trainSet[0].ids).join(", ")}] (label ${train[0].label})`);

await core.init(); // the wasm SIMD backend
const model = LSTMClassifier.create(
  { vocabSize: tok.wordIndex.size + 1, embeddingDim: 16, hiddenSize: 32, numClasses: 2 },
  { seed: 1 },
);
const optimizer = new AdamW(model.runtime, model.parameters(), { lr: 0.005, weightDecay: 0.01 });

const t0 = performance.now();
await fit(model, trainSet, {
  optimizer,
  epochs: 6,
  batchSize: 32,
  seed: 0,
  clipGradNorm: 1,
  validation: testSet,
  onEpochEnd: (e) => {
    const pct = (v) => `${(100 * v).toFixed(1)}%`;
    console.log(
      `epoch ${e.epoch + 1}: loss ${e.loss.toFixed(4)}, accuracy ${pct(e.accuracy)}; ` +
        `test loss ${e.valLoss.toFixed(4)}, test accuracy ${pct(e.valAccuracy)}`,
    );
  },
});
const secs = ((performance.now() - t0) / 1000).toFixed(1);
const final = evaluate(model, testSet, 128);
console.log(`trained in ${secs} s; held-out accuracy ${((100 * final.correct) / final.count).toFixed(1)}%`);

const examples = [
  "the movie was not good",
  "the ending was not bad at all",
  "the cast was great but the plot felt dull",
];
for (const text of examples) {
  const ids = padSequences(tok.textsToSequences([text]), { maxlen: MAXLEN }).data;
  const logits = model.predict([{ ids }]).data;
  const p = 1 / (1 + Math.exp(logits[0] - logits[1]));
  console.log(`"${text}": positive with probability ${p.toFixed(3)}`);
}
model.dispose();
