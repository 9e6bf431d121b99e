/**
 * Fuzzing the strict JSON parser and the config reader with seeded mutations of valid documents:
 *
 * - `parseStrictJson` is checked against `JSON.parse`: it must reject (with a `JsonSyntaxError`)
 *   every text `JSON.parse` rejects, accept every text `JSON.parse` accepts unless it has a
 *   duplicate key or a lone-surrogate escape, and then give the same value.
 * - `parseConfigJson` + `readConfig` (a ViT-like schema) must return a config or throw a
 *   `ConfigError`, nothing else.
 */
import { describe, expect, test } from "vitest";
import { mulberry32 } from "../../../tools/test-utils/src/prng.js";
import { divisibleBy, field, parseConfigJson, readConfig } from "../src/config.js";
import { ConfigError } from "../src/errors.js";
import { JsonSyntaxError, parseStrictJson } from "../src/strict-json.js";

const SEEDS = [
  '{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "image_size": 32, "patch_size": 8, "layer_norm_eps": 1e-12, "qkv_bias": true, "hidden_act": "gelu", "id2label": {"0": "cat", "1": "dog"}, "architectures": ["ViTForImageClassification"], "torch_dtype": null}',
  '{"a": [1, -2.5e-3, 0, 1E+2, 0.125, -0], "b": {"c": {"d": [[], {}, [true, false, null]]}}, "s": "caf\\u00e9 \\ud83d\\ude00 \\n\\t\\"\\\\/"}',
  '[{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},{"dtype":"I64","shape":[],"data_offsets":[24,32]}]',
  '{"日本": "語", "__proto__": {"x": 1}, "constructor": 2, "": ""}',
];
const TOKENS = [
  "{",
  "}",
  "[",
  "]",
  ",",
  ":",
  '"',
  "0",
  "1",
  "-",
  "+",
  ".",
  "e",
  "E",
  " ",
  "\\",
  "\\u",
  "d800",
  "null",
  "tru",
  "1e",
  "\u00e9",
  "\n",
  "\t",
  "\u0000",
  '"a":1,',
];

function mutate(text: string, next: () => number): string {
  const int = (n: number) => Math.floor(next() * n);
  let s = text;
  for (let r = 1 + int(3); r > 0; r--) {
    const at = int(s.length + 1);
    switch (int(5)) {
      case 0: // insert a token
        s = s.slice(0, at) + TOKENS[int(TOKENS.length)] + s.slice(at);
        break;
      case 1: // delete a few characters
        s = s.slice(0, at) + s.slice(at + 1 + int(4));
        break;
      case 2: // replace a character
        s = s.slice(0, at) + TOKENS[int(TOKENS.length)] + s.slice(at + 1);
        break;
      case 3: // duplicate a slice (repeated keys, nested brackets)
        s = s.slice(0, at) + s.slice(at, at + int(24)) + s.slice(at);
        break;
      default: // change a digit
        s = s.replace(/[0-9]/g, (d) => (next() < 0.1 ? String(int(10)) : d));
    }
  }
  return s;
}

/**
 * JSON.parse keeps the last of two duplicate keys; check a "duplicate key K" report independently:
 * the literal at the reported position decodes to K, and K is an earlier key of the text.
 */
function confirmsDuplicate(text: string, message: string, pos: number): boolean {
  const key = JSON.parse(/^duplicate key (".*")$/.exec(message)![1]) as string;
  const lit = /^"(?:[^"\\]|\\.)*"/.exec(text.slice(pos));
  if (!lit || JSON.parse(lit[0]) !== key) return false;
  for (const m of text.slice(0, pos).matchAll(/"(?:[^"\\]|\\.)*"(\s*:)?/g))
    if (m[1] && JSON.parse(m[0].slice(0, m[0].lastIndexOf('"') + 1)) === key) return true;
  return false;
}
/** A lone surrogate in any key or string of a value (with the u flag the class matches only unpaired ones). */
const hasLoneSurrogate = (v: unknown): boolean =>
  typeof v === "string"
    ? /[\uD800-\uDFFF]/u.test(v)
    : v !== null &&
      typeof v === "object" &&
      Object.entries(v).some(([k, x]) => hasLoneSurrogate(k) || hasLoneSurrogate(x));

describe("strict JSON and config fuzz", () => {
  test("12,000 seeded mutants: parseStrictJson agrees with JSON.parse (but for duplicates and lone surrogates)", () => {
    const next = mulberry32(0x15);
    const t0 = performance.now();
    let accepted = 0;
    let strictOnly = 0;
    const N = 12_000;
    for (let it = 0; it < N; it++) {
      const text = mutate(SEEDS[it % SEEDS.length], next);
      let want: unknown;
      let ok = true;
      try {
        want = JSON.parse(text);
      } catch {
        ok = false;
      }
      let got: unknown;
      try {
        got = parseStrictJson(text).value;
      } catch (e) {
        if (!(e instanceof JsonSyntaxError))
          throw new Error(`mutant ${it}: ${(e as Error)?.name} on ${JSON.stringify(text)}`);
        const pos = e.pos;
        expect(pos >= 0 && pos <= text.length, `mutant ${it}: position ${pos}`).toBe(true);
        if (ok) {
          // JSON.parse accepted: only a duplicate key or a lone surrogate may be refused
          const why = /duplicate key/.test(e.message) || /surrogate/.test(e.message);
          expect(why, `mutant ${it}: ${e.message} on ${JSON.stringify(text)}`).toBe(true);
          if (/duplicate key/.test(e.message))
            expect(confirmsDuplicate(text, e.message, pos), `mutant ${it}`).toBe(true);
          else expect(hasLoneSurrogate(want), `mutant ${it}: ${e.message} on ${JSON.stringify(text)}`).toBe(true);
          strictOnly++;
        }
        continue;
      }
      expect(ok, `mutant ${it}: strict accepted what JSON.parse rejects: ${JSON.stringify(text)}`).toBe(true);
      expect(got, `mutant ${it}`).toEqual(want);
      accepted++;
    }
    const ms = performance.now() - t0;
    console.log(
      `strict JSON fuzz: ${N} mutants in ${ms.toFixed(0)} ms; ${accepted} accepted; ${strictOnly} refused for duplicates/surrogates only`,
    );
    expect(accepted).toBeGreaterThan(N / 20);
    expect(N - accepted).toBeGreaterThan(N / 2);
    expect(strictOnly).toBeGreaterThan(10);
    expect(ms).toBeLessThan(30_000);
  }, 60_000);

  test("10,000 seeded config.json mutants: a config or a ConfigError, nothing else", () => {
    const schema = {
      hidden_size: field.int({ positive: true }),
      num_hidden_layers: field.int({ positive: true }),
      num_attention_heads: field.int({ positive: true }),
      intermediate_size: field.int({ positive: true }),
      hidden_act: field.enumOf(["gelu", "gelu_new", "relu"], { default: "gelu" }),
      layer_norm_eps: field.number({ positive: true, default: 1e-12 }),
      image_size: field.int({ positive: true, default: 224 }),
      patch_size: field.int({ positive: true, default: 16 }),
      qkv_bias: field.bool({ default: true }),
      id2label: field.optional(field.mapOf(field.string(), { keyPattern: /^\d+$/ })),
      architectures: field.optional(field.arrayOf(field.string())),
    };
    const rules = [divisibleBy("hidden_size", "num_attention_heads"), divisibleBy("image_size", "patch_size")];
    const next = mulberry32(0xc0f);
    const t0 = performance.now();
    const outcomes = new Map<string, number>();
    const N = 10_000;
    for (let it = 0; it < N; it++) {
      const text = mutate(SEEDS[0], next);
      let outcome = "ok";
      try {
        readConfig(parseConfigJson(text, { name: "config.json" }), schema, { rules, onUnknown: "ignore" });
      } catch (e) {
        if (!(e instanceof ConfigError))
          throw new Error(`mutant ${it}: ${(e as Error)?.name}: ${(e as Error)?.message}`);
        outcome = e.field ?? "syntax";
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const ms = performance.now() - t0;
    console.log(
      `config fuzz: ${N} mutants in ${ms.toFixed(0)} ms; ${outcomes.get("ok") ?? 0} read; ${outcomes.size - 1} distinct faulty fields or syntax`,
    );
    expect(outcomes.get("ok")).toBeGreaterThan(N / 20);
    expect(outcomes.size).toBeGreaterThan(6);
    expect(ms).toBeLessThan(30_000);
  }, 60_000);
});
