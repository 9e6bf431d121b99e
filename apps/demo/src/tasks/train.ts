/**
 * Train page in the worker: fine-tune the digits ViT (or train a fresh one of the same shape) on
 * labelled digits with nn's `fit` and AdamW, one epoch per `fit` call so that every epoch can see new
 * random shifts of the digits (±`shift` px; augmentation helps a fine-tuned model generalise, but
 * a model learning a few dozen digits from scratch fits them much more slowly with it). Training stops between two
 * steps (`stopTrainingVit`) and resumes where it stopped: the model and the optimizer's moments are
 * kept. `useTrainedVit` hands a copy of the trained model, in inference mode, to the ViT page.
 */
import { AbortError, BusyError, ConfigError, InputError, mulberry32, tensorSource } from "@wasmformer/core";
import { AdamW, evaluate, fit } from "@wasmformer/nn";
import { initViTParameters, parseViTConfig, type ViTExample, ViTForImageClassification } from "@wasmformer/vit";
import { digitPixels, MNIST_SIZE, mnistDigit } from "./digit.js";
import { type FolderSource, type ProgressFn, readFolder, readJson } from "./folder.js";
import { useVitModel, type VitInfo } from "./vit.js";

/** A labelled drawing: `gray` `[h, w]`, 0 = background, 255 = ink. */
export interface LabelledDigit {
  gray: Uint8Array;
  width: number;
  height: number;
  label: number;
}

export interface TrainSetup {
  /** "fine-tune": start from the checkpoint's weights; "scratch": the same shape, random weights. */
  start: "fine-tune" | "scratch";
  checkpoint: FolderSource;
  lr: number;
  seed: number;
}

export interface TrainStep {
  step: number;
  loss: number;
}

export interface TrainEpoch {
  epoch: number;
  step: number;
  /** mean training loss over the epoch (shifted digits) */
  loss: number;
  /** accuracy on the digits as given (not shifted) */
  accuracy: number;
}

export interface TrainRunResult {
  /** why the run ended */
  stopped: "epochs" | "stop";
  epoch: number;
  step: number;
}

interface Session {
  model: ViTForImageClassification;
  opt: AdamW;
  preprocessor: unknown;
  epoch: number;
  rand: () => number;
}

let session: Session | undefined;
let controller: AbortController | undefined;

/** Load the checkpoint and prepare a training session (any previous one is dropped). */
export async function setupTraining(
  req: TrainSetup,
  onProgress: ProgressFn,
): Promise<{ params: number; labels: number; imageSize: number }> {
  if (controller) throw new BusyError("training is running: stop it first");
  if (!(req.lr > 0 && req.lr < 1)) throw new InputError(`learning rate must be in (0, 1), got ${req.lr}`);
  session?.model.dispose();
  session = undefined;
  const files = await readFolder(
    req.checkpoint,
    ["config.json", "model.safetensors"],
    ["preprocessor_config.json"],
    onProgress,
  );
  const config = await readJson(files["config.json"], "config.json");
  const preprocessor = files["preprocessor_config.json"]
    ? await readJson(files["preprocessor_config.json"], "preprocessor_config.json")
    : undefined;
  // from scratch: HF's initialisation (seeded), with the checkpoint's preprocessing
  const weights =
    req.start === "scratch"
      ? tensorSource(initViTParameters(parseViTConfig(config), req.seed))
      : new Uint8Array(await files["model.safetensors"].arrayBuffer());
  const model = await ViTForImageClassification.fromPretrained({ config, weights, preprocessor });
  if (model.config.num_labels < 10) {
    model.dispose();
    throw new ConfigError(`a digits model needs 10 labels, the checkpoint has ${model.config.num_labels}`, "id2label");
  }
  model.train({ maxBatch: 32 });
  const opt = new AdamW(model.runtime, model.parameters(), { lr: req.lr, weightDecay: 0.01 });
  session = { model, opt, preprocessor, epoch: 0, rand: mulberry32(req.seed) };
  const params = model.parameters().reduce((n, p) => n + p.size, 0);
  return { params, labels: model.config.num_labels, imageSize: model.config.image_size[0] };
}

/** `digit` (28 × 28) moved by (dx, dy) pixels, the uncovered border left as background. */
function shifted(digit: Uint8Array, dx: number, dy: number): Uint8Array {
  const S = MNIST_SIZE;
  const out = new Uint8Array(S * S);
  for (let y = 0; y < S; y++) {
    const sy = y - dy;
    if (sy < 0 || sy >= S) continue;
    for (let x = 0; x < S; x++) {
      const sx = x - dx;
      if (sx >= 0 && sx < S) out[y * S + x] = digit[sy * S + sx];
    }
  }
  return out;
}

/**
 * Train for `epochs` more epochs on `digits` (MNIST-normalised here), reporting every step and
 * every epoch; ends early, keeping the last step, when `stopTrainingVit()` is called.
 */
export async function runTraining(
  digits: readonly LabelledDigit[],
  epochs: number,
  shift: number,
  onStep: (s: TrainStep) => void,
  onEpoch: (e: TrainEpoch) => void | Promise<void>,
): Promise<TrainRunResult> {
  const s = session;
  if (!s) throw new ConfigError("no training session: set one up first");
  if (controller) throw new BusyError("training is already running");
  if (!Number.isInteger(epochs) || epochs < 1) throw new InputError(`epochs must be a positive integer, got ${epochs}`);
  if (digits.length === 0) throw new InputError("no digits to train on: add some first");
  if (!Number.isInteger(shift) || shift < 0 || shift > 4)
    throw new InputError(`shift must be 0…4 pixels, got ${shift}`);
  const m = s.model;
  const size = m.config.image_size[0];
  const C = m.config.num_channels;
  const pp = m.processor.config;
  const norm = digits.map((d, i) => {
    if (!Number.isInteger(d.label) || d.label < 0 || d.label >= m.config.num_labels) {
      throw new InputError(`digit ${i}: label must be an integer in [0, ${m.config.num_labels}), got ${d.label}`);
    }
    return { digit: mnistDigit(d.gray, d.width, d.height), label: d.label };
  });
  const asExample = (digit: Uint8Array, label: number): ViTExample => ({
    pixelValues: digitPixels(digit, size, C, pp),
    label,
  });
  const clean = norm.map((d) => asExample(d.digit, d.label));
  const jitter = () => Math.floor(s.rand() * (2 * shift + 1)) - shift;
  // small batches: a few dozen digits still make several steps per epoch
  const batchSize = Math.min(16, digits.length);
  controller = new AbortController();
  const signal = controller.signal;
  m.train();
  try {
    for (let e = 0; e < epochs; e++) {
      const examples = shift ? norm.map((d) => asExample(shifted(d.digit, jitter(), jitter()), d.label)) : clean;
      let sum = 0;
      let n = 0;
      try {
        await fit(m, examples, {
          optimizer: s.opt,
          epochs: 1,
          batchSize,
          seed: s.epoch,
          clipGradNorm: 1,
          signal,
          onBatchEnd: (b) => {
            sum += b.loss;
            n++;
            onStep({ step: s.opt.steps, loss: b.loss });
            return undefined;
          },
        });
      } catch (err) {
        if (err instanceof AbortError) return { stopped: "stop", epoch: s.epoch, step: s.opt.steps };
        throw err;
      }
      s.epoch++;
      const r = evaluate(m, clean, batchSize);
      await onEpoch({
        epoch: s.epoch,
        step: s.opt.steps,
        loss: sum / Math.max(1, n),
        accuracy: (r.correct ?? 0) / r.count,
      });
      if (signal.aborted) return { stopped: "stop", epoch: s.epoch, step: s.opt.steps };
    }
    return { stopped: "epochs", epoch: s.epoch, step: s.opt.steps };
  } finally {
    controller = undefined;
  }
}

/** Ask the running training to stop after its current step; false when none runs. */
export function stopTrainingVit(): boolean {
  if (!controller) return false;
  controller.abort();
  return true;
}

/** A copy of the trained model, in inference mode, becomes the ViT page's model. */
export async function useTrainedVit(): Promise<VitInfo> {
  const s = session;
  if (!s) throw new ConfigError("nothing trained yet");
  if (controller) throw new BusyError("training is running: stop it first");
  const saved = s.model.save();
  const copy = await ViTForImageClassification.fromPretrained({ ...saved, preprocessor: s.preprocessor });
  return useVitModel(copy);
}
