// Recurrent layers on the threaded build: the steps of a layer split over the threads by hidden
// units (core's rnnSteps) give the bits of one thread, and the oracle's values, for every mode,
// both directions, one and two rows (the split path) and three rows (the batched path).
import { createRuntime, init, releaseRuntime, terminateThreads, threadsInfo } from "@wasmformer/core";
import { afterAll, describe, expect, it } from "vitest";
import { GRU, LSTM, RNN, type RNNBase } from "../src/rnn.js";
import { loadModule, tensorSource } from "../src/state-dict.js";
import { closeTo, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { DictBuilder } from "./weights.js";

afterAll(async () => {
  terminateThreads();
  await init({ threads: 1 });
});

type Mode = "rnn_tanh" | "lstm" | "gru";
const G: Record<Mode, number> = { rnn_tanh: 1, lstm: 4, gru: 3 };
const [I, H, L, T] = [9, 200, 2, 12];

async function run(mode: Mode, threads: number, B: number) {
  await init({ backend: "wasm-relaxed", threads });
  const rt = createRuntime();
  const wb = new DictBuilder(7).rnn(G[mode], I, H, L, 2, true);
  const opts = { inputSize: I, hiddenSize: H, numLayers: L, bidirectional: true };
  const net = loadModule(
    tensorSource(wb.map),
    (s): RNNBase => (mode === "lstm" ? new LSTM(s, opts) : mode === "gru" ? new GRU(s, opts) : new RNN(s, opts)),
    { runtime: rt },
  );
  const x = rng(3).tensor([B, T, I]);
  const before = threadsInfo().splitCalls;
  const got = net instanceof LSTM ? net.forward(x) : (net as RNN | GRU).forward(x);
  const split = threadsInfo().splitCalls - before;
  releaseRuntime(rt);
  return { got, split, want: O.rnn(mode, wb.record(), x.data, B, T, I, H, L, true, true) };
}

describe("recurrent layers on 2 threads", () => {
  for (const mode of ["rnn_tanh", "lstm", "gru"] as Mode[]) {
    it(`${mode}: 2 layers, bidirectional, H ${H}: same bits as 1 thread, B ∈ {1, 2, 3}`, async () => {
      for (const B of [1, 2, 3]) {
        const one = await run(mode, 1, B);
        const two = await run(mode, 2, B);
        expect(two.split, `B${B}: calls split`).toBeGreaterThan(0);
        for (const k of ["output", "h", "c"] as const) {
          const a = one.got[k];
          const b = two.got[k];
          if (!a || !b) continue;
          expect(Buffer.from(b.data.buffer).equals(Buffer.from(a.data.buffer)), `B${B} ${k}`).toBe(true);
        }
        expect(closeTo(two.got.output, two.want.output, [B, T, 2 * H]), `B${B}`).toBeUndefined();
      }
    });
  }
});
