// The fixture error cases fail with the documented typed error naming the fault.
import { join } from "node:path";
import { SafetensorsError, ShapeError, WeightsError } from "@wasmformer/core";
import { caseFromFolder } from "@wasmformer/core/parity";
import { expect, it } from "vitest";
import { kinds } from "../src/parity.js";
import { FIXTURES, fixtureNames } from "./helpers.js";

const has = (n: string) => fixtureNames(["gru", "lstm", "mha"]).includes(n);

it.runIf(has("gru-err_input_size_mismatch"))("gru-err_input_size_mismatch: ShapeError naming input x", async () => {
  const e = await kinds.gru(caseFromFolder(join(FIXTURES, "gru-err_input_size_mismatch"))).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ShapeError);
  expect(String((e as Error).message)).toMatch(/input x .*input_size 4/);
});

it.runIf(has("lstm-err_header_len_beyond_file"))("lstm-err_header_len_beyond_file: SafetensorsError", async () => {
  const e = await kinds
    .lstm(caseFromFolder(join(FIXTURES, "lstm-err_header_len_beyond_file")))
    .catch((x: unknown) => x);
  expect(e).toBeInstanceOf(SafetensorsError);
  expect((e as SafetensorsError).offset).toBeTypeOf("number");
});

it.runIf(has("mha-err_offsets_overlap"))("mha-err_offsets_overlap: SafetensorsError naming a tensor", async () => {
  const e = await kinds.mha(caseFromFolder(join(FIXTURES, "mha-err_offsets_overlap"))).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(SafetensorsError);
  expect((e as SafetensorsError).tensor).toBeTypeOf("string");
  expect(e).not.toBeInstanceOf(WeightsError);
});
