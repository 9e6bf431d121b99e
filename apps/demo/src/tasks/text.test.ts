import { describe, expect, it } from "vitest";
import { preprocess, textTransferables } from "./text.js";

const lecture = {
  fitTexts: ["I love Algeria", "machine learning", "Artificial intelligence", "AI"],
  encodeTexts: ["Algeria love AI"],
  decodeSequences: [[3, 4, 7, 2, 8, 1, 3]],
  oovToken: null,
  numWords: null,
  matrixTexts: ["blue car and blue window", "black crow in the window", "i see my reflection in the window"],
  padSequences: [[1, 2, 3, 4], [1, 2, 3], [1]],
  maxlen: 4,
  truncating: "pre" as const,
  value: 0,
};

describe("text task (worker side)", () => {
  it("computes the lecture's results", () => {
    const r = preprocess(lecture);
    expect(r.wordIndex.slice(0, 3)).toEqual([
      ["i", 1],
      ["love", 2],
      ["algeria", 3],
    ]);
    expect(r.sequences).toEqual([[3, 2, 8]]);
    expect(r.decoded).toEqual(["algeria machine intelligence love ai i algeria"]);
    expect(r.matrixVocab.slice(0, 3)).toEqual(["(0)", "window", "blue"]);
    expect(r.matrices.count.rows).toBe(3);
    expect(r.matrices.count.cols).toBe(13);
    expect([...r.matrices.count.data.subarray(0, 4)]).toEqual([0, 1, 2, 0]);
    expect([...r.padded.post.data]).toEqual([1, 2, 3, 4, 1, 2, 3, 0, 1, 0, 0, 0]);
  });

  it("lists one distinct buffer per output matrix for transfer", () => {
    const bufs = textTransferables(preprocess(lecture));
    expect(bufs).toHaveLength(6);
    expect(new Set(bufs).size).toBe(6);
  });
});
