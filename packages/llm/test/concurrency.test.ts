/**
 * One model used from several places at once: every generation runs in a KV context of its own,
 * so interleaved generations, and `forward()`/`prefill()` between two steps of one, compute exactly
 * what they compute one after another. And `dispose()`: the memory goes back at once, later calls
 * are `DisposedError`s.
 */
import { createRuntime, DisposedError, InputError, init, type Runtime } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import type { GenerateOptions, GenerationResult } from "../src/generate.js";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { Rng } from "../src/sampler.js";
import { makeTiny, source } from "./tiny-gpt2.js";

const tiny = makeTiny({ seed: 21, P: 48, V: 50 });
const load = (runtime?: Runtime) =>
  GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), { maxBatch: 2, ...(runtime ? { runtime } : {}) });

/** Two different jobs: a padded batch of two prompts, and a single prompt. */
const jobs: [number[] | number[][], GenerateOptions][] = [
  [
    [
      [1, 2, 3, 4, 5],
      [7, 8],
    ],
    { maxNewTokens: 12, stopIds: [] },
  ],
  [[9, 10, 11], { maxNewTokens: 15, stopIds: [] }],
];
const sampled = (o: GenerateOptions, seed: number): GenerateOptions => ({ ...o, temperature: 1.3, topP: 0.9, seed });

beforeAll(async () => {
  await init();
});

describe("concurrent use of one GPT2LMHeadModel", () => {
  for (const mode of ["greedy", "sampled"] as const) {
    const opts = (i: number) => (mode === "greedy" ? jobs[i][1] : sampled(jobs[i][1], 100 + i));

    test(`Promise.all of two generateAll = one after another (${mode})`, async () => {
      const model = await load();
      const seq = [await model.generateAll(jobs[0][0], opts(0)), await model.generateAll(jobs[1][0], opts(1))];
      const par = await Promise.all([model.generateAll(jobs[0][0], opts(0)), model.generateAll(jobs[1][0], opts(1))]);
      expect(par).toEqual(seq);
      // and three at once, one of them a repeat
      const three = await Promise.all([
        model.generateAll(jobs[1][0], opts(1)),
        model.generateAll(jobs[0][0], opts(0)),
        model.generateAll(jobs[1][0], opts(1)),
      ]);
      expect(three).toEqual([seq[1], seq[0], seq[1]]);
    });

    test(`two generate() iterators stepped alternately = one after another (${mode})`, async () => {
      const model = await load();
      const seq = [await model.generateAll(jobs[0][0], opts(0)), await model.generateAll(jobs[1][0], opts(1))];
      const a = model.generate(jobs[0][0], opts(0));
      const b = model.generate(jobs[1][0], opts(1));
      const tokens: number[][] = [[], []];
      const results: (GenerationResult | undefined)[] = [undefined, undefined];
      while (!results[0] || !results[1]) {
        for (const [i, it] of [a, b].entries()) {
          if (results[i]) continue;
          const r = await it.next();
          if (r.done) results[i] = r.value;
          else tokens[i].push(r.value.token);
        }
      }
      expect(results).toEqual(seq);
      expect(tokens[1]).toEqual(seq[1].ids[0]);
    });
  }

  test("seeded random schedules of three generations and the model's own sequence = one after another", async () => {
    const model = await load();
    const rng = new Rng(7);
    const prompts: [number[] | number[][], GenerateOptions][] = [
      jobs[0],
      [jobs[1][0], sampled(jobs[1][1], 5)],
      [
        [
          [4, 4],
          [2, 9, 9, 1],
        ],
        sampled({ maxNewTokens: 9, stopIds: [], repetitionPenalty: 1.3 }, 6),
      ],
    ];
    const seq: GenerationResult[] = [];
    for (const [p, o] of prompts) seq.push(await model.generateAll(p, o));
    // the model's own sequence: prefill then a decode per turn, logits recorded
    const ownIds = [12, 13, 14, 15, 16, 17, 18, 19];
    model.prefill([[3, 3, 3]]);
    const ownWant = ownIds.map((t) => model.decode([t]).logits!.data.slice());
    for (let trial = 0; trial < 4; trial++) {
      const its = prompts.map(([p, o]) => model.generate(p, o));
      const results: (GenerationResult | undefined)[] = its.map(() => undefined);
      model.prefill([[3, 3, 3]]);
      let own = 0;
      while (results.some((r) => !r)) {
        const pick = Math.floor(rng.random() * (its.length + 1));
        if (pick === its.length) {
          if (own < ownIds.length) expect(model.decode([ownIds[own]]).logits!.data).toEqual(ownWant[own++]);
          continue;
        }
        if (results[pick]) continue;
        const r = await its[pick].next();
        if (r.done) results[pick] = r.value;
      }
      expect(results).toEqual(seq);
    }
  });

  test("forward(), prefill() and decode() between two steps of a generate() leave both intact", async () => {
    const model = await load();
    const want = await model.generateAll([3, 1, 4, 1, 5], { maxNewTokens: 10, stopIds: [] });
    const wantLogits = model.forward([[2, 7, 1, 8]]).data.slice();
    model.prefill([[6, 6]]);
    const wantDecode = model.decode([2]).logits!.data.slice();

    const it = model.generate([3, 1, 4, 1, 5], { maxNewTokens: 10, stopIds: [] });
    const got: number[] = [];
    let step = 0;
    let result: GenerationResult | undefined;
    model.prefill([[6, 6]]); // the model's own sequence, continued between the generation's steps
    while (!result) {
      const r = await it.next();
      if (r.done) {
        result = r.value;
        break;
      }
      got.push(r.value.token);
      if (step === 2) expect(model.forward([[2, 7, 1, 8]]).data).toEqual(wantLogits);
      if (step === 4) {
        model.prefill([[6, 6]]);
        expect(model.decode([2]).logits!.data).toEqual(wantDecode);
        expect(model.cacheLength).toBe(3);
      }
      step++;
    }
    expect(result).toEqual(want);
    expect(got).toEqual(want.ids[0]);
    // the model's own sequence is where forward()/decode() left it
    expect(model.cacheLength).toBe(3);
    expect(model.batchSize).toBe(1);
  });

  test("the model's own sequence survives a generation run in between", async () => {
    const model = await load();
    model.prefill([[5, 4, 3]]);
    const a = model.decode([2]).logits!.data.slice();
    const b = model.decode([1]).logits!.data.slice();
    model.prefill([[5, 4, 3]]);
    expect(model.decode([2]).logits!.data).toEqual(a);
    await model.generateAll(
      [
        [9, 9, 9, 9],
        [1, 2, 3, 4],
      ],
      { maxNewTokens: 5 },
    );
    expect(model.cacheLength).toBe(4);
    expect(model.decode([1]).logits!.data).toEqual(b);
  });

  test("explicit contexts: interleaved sequences = separate runs; released or foreign contexts are typed errors", async () => {
    const model = await load();
    const other = await load();
    const run = (ids: number[][], next: number[]) => {
      model.prefill(ids);
      return next.map((t) => model.decode(ids.map(() => t)).logits!.data.slice());
    };
    const wantA = run([[1, 2, 3]], [4, 5, 6]);
    const wantB = run(
      [
        [7, 8],
        [9, 10],
      ],
      [11, 12, 13],
    );
    const ca = model.createContext();
    const cb = model.createContext();
    model.prefill([[1, 2, 3]], { context: ca });
    model.prefill(
      [
        [7, 8],
        [9, 10],
      ],
      { context: cb },
    );
    for (let i = 0; i < 3; i++) {
      const [ta, tb] = [[4, 5, 6][i], [11, 12, 13][i]];
      expect(model.decode([ta], { context: ca }).logits!.data).toEqual(wantA[i]);
      expect(model.decode([tb, tb], { context: cb }).logits!.data).toEqual(wantB[i]);
    }
    expect(() => model.checkCapacity(100, ca)).toThrow(/6 cached \+ 100 new/);
    model.releaseContext(ca);
    expect(() => model.decode([1], { context: ca })).toThrow(DisposedError);
    expect(() => other.decode([1], { context: cb })).toThrow(/created by this model/);
    expect(() => model.decode([1], { context: {} as never })).toThrow(InputError);
  });
});

describe("dispose", () => {
  test("gives the memory back at once; every later call is a DisposedError", async () => {
    const model = await load();
    const rt = model.runtime;
    model.prefill([[1, 2]]);
    model.dispose();
    model.dispose(); // twice is fine
    expect(model.disposed).toBe(true);
    // the next runtime reuses the model's memory: a model loaded now takes it over
    const next = await load();
    expect(next.runtime).toBe(rt);
    const D = DisposedError;
    expect(() => model.prefill([[1]])).toThrow(D);
    expect(() => model.decode([1])).toThrow(D);
    expect(() => model.extend([[1]])).toThrow(D);
    expect(() => model.forward([[1]])).toThrow(/GPT2LMHeadModel has been disposed/);
    expect(() => model.embedTokens([[1]])).toThrow(D);
    expect(() => model.reset()).toThrow(D);
    expect(() => model.createContext()).toThrow(D);
    expect(() => model.generate([1])).toThrow(D);
    await expect(model.generateAll([1])).rejects.toThrow(D);
    // the new model is unaffected
    const fresh = await load(createRuntime());
    expect(next.forward([[1, 2, 3]]).data).toEqual(fresh.forward([[1, 2, 3]]).data);
  });

  test("a runtime passed in is not released, only dropped", async () => {
    const rt = createRuntime();
    const model = await load(rt);
    model.dispose();
    expect(createRuntime()).not.toBe(rt);
    expect(() => model.forward([[1]])).toThrow(DisposedError);
  });

  test("dispose during a running generate(): the generator ends with a DisposedError at its next step", async () => {
    const model = await load();
    const it = model.generate([1, 2, 3], { maxNewTokens: 10, stopIds: [] });
    const other = model.generate([4, 5], { maxNewTokens: 10, stopIds: [] });
    expect((await it.next()).done).toBe(false);
    expect((await other.next()).done).toBe(false);
    model.dispose();
    await expect(it.next()).rejects.toThrow(DisposedError);
    await expect(other.next()).rejects.toThrow(DisposedError);
    expect((await it.next()).done).toBe(true); // finished, no crash
  });
});
