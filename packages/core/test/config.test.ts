import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, expectTypeOf, test } from "vitest";
import { type ConfigOf, divisibleBy, field, parseConfigJson, readConfig, unknownKeys } from "../src/config.js";
import { ConfigError } from "../src/errors.js";

const vitSchema = {
  hidden_size: field.int({ positive: true }),
  num_hidden_layers: field.int({ positive: true }),
  num_attention_heads: field.int({ positive: true }),
  intermediate_size: field.int({ positive: true }),
  hidden_act: field.enumOf(["gelu", "gelu_new", "relu", "silu"], { default: "gelu" }),
  layer_norm_eps: field.number({ positive: true, default: 1e-12 }),
  image_size: field.int({ positive: true, default: 224 }),
  patch_size: field.int({ positive: true, default: 16 }),
  num_channels: field.int({ positive: true, default: 3 }),
  qkv_bias: field.bool({ default: true }),
  id2label: field.optional(field.mapOf(field.string(), { keyPattern: /^\d+$/ })),
  architectures: field.optional(field.arrayOf(field.string())),
};
const vitRules = [divisibleBy("hidden_size", "num_attention_heads"), divisibleBy("image_size", "patch_size")];

const base = {
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 128,
  image_size: 32,
  patch_size: 8,
  model_type: "vit",
  torch_dtype: "float32",
};

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("readConfig", () => {
  test("fills defaults, keeps unknown keys, returns a typed object", () => {
    const cfg = readConfig(base, vitSchema, { rules: vitRules });
    expect(cfg.hidden_size).toBe(64);
    expect(cfg.hidden_act).toBe("gelu");
    expect(cfg.layer_norm_eps).toBe(1e-12);
    expect(cfg.qkv_bias).toBe(true);
    expect(cfg.id2label).toBeUndefined();
    expect(cfg.model_type).toBe("vit"); // unknown, preserved
    expect(unknownKeys(cfg, vitSchema).sort()).toEqual(["model_type", "torch_dtype"]);
    expectTypeOf(cfg.hidden_size).toEqualTypeOf<number>();
    expectTypeOf(cfg.hidden_act).toEqualTypeOf<"gelu" | "gelu_new" | "relu" | "silu">();
    expectTypeOf(cfg.id2label).toEqualTypeOf<Record<string, string> | undefined>();
    expectTypeOf(cfg.architectures).toEqualTypeOf<string[] | undefined>();
  });

  test("ill-typed or missing fields name the field and show the value", () => {
    expect(configError(() => readConfig({ ...base, hidden_size: "abc" }, vitSchema)).message).toBe(
      'config: hidden_size: expected a positive integer, got "abc"',
    );
    const e = configError(() => readConfig({ ...base, hidden_size: -3 }, vitSchema, { name: "ViT config.json" }));
    expect(e.field).toBe("hidden_size");
    expect(e.message).toBe("config: hidden_size: expected a positive integer, got -3 (in ViT config.json)");
    expect(configError(() => readConfig({ ...base, hidden_size: 64.5 }, vitSchema)).message).toMatch(/got 64\.5/);
    expect(configError(() => readConfig({ ...base, hidden_size: null }, vitSchema)).message).toMatch(/got null/);
    const { num_hidden_layers: _, ...missing } = base;
    expect(configError(() => readConfig(missing, vitSchema)).message).toBe(
      "config: num_hidden_layers: required field is missing; expected a positive integer",
    );
    expect(configError(() => readConfig({ ...base, hidden_act: "gelu2" }, vitSchema)).message).toBe(
      'config: hidden_act: expected one of "gelu", "gelu_new", "relu", "silu", got "gelu2"',
    );
    expect(configError(() => readConfig({ ...base, qkv_bias: 1 }, vitSchema)).message).toMatch(
      /qkv_bias: expected a boolean, got 1/,
    );
    expect(configError(() => readConfig({ ...base, layer_norm_eps: 0 }, vitSchema)).message).toMatch(
      /layer_norm_eps: expected a positive number, got 0/,
    );
    expect(configError(() => readConfig({ ...base, id2label: { x: "a" } }, vitSchema)).field).toBe("id2label.x");
    expect(configError(() => readConfig({ ...base, id2label: { 0: 1 } }, vitSchema)).message).toMatch(
      /id2label\.0: expected a string, got 1/,
    );
    expect(configError(() => readConfig({ ...base, architectures: ["a", 2] }, vitSchema)).field).toBe(
      "architectures[1]",
    );
    expect(configError(() => readConfig([], vitSchema)).message).toMatch(/expected a JSON object, got \[\]/);
    expect(configError(() => readConfig(null, vitSchema)).message).toMatch(/got null/);
  });

  test("cross-field rules (divisible-by)", () => {
    const e = configError(() => readConfig({ ...base, num_attention_heads: 5 }, vitSchema, { rules: vitRules }));
    expect(e.field).toBe("hidden_size");
    expect(e.message).toBe("config: hidden_size: 64 is not divisible by num_attention_heads (5)");
    expect(configError(() => readConfig({ ...base, patch_size: 5 }, vitSchema, { rules: vitRules })).field).toBe(
      "image_size",
    );
    const whole = configError(() =>
      readConfig(base, vitSchema, {
        rules: [
          (c) => (c.intermediate_size < c.hidden_size ? "intermediate_size < hidden_size" : undefined),
          () => "nope",
        ],
      }),
    );
    expect(whole.message).toBe("config: (config): nope");
  });

  test("custom per-field checks and ranges", () => {
    const s = {
      n: field.int({ min: 2, max: 8, check: (v) => (v % 2 ? "must be even" : undefined) }),
      p: field.number({ min: 0, max: 1, default: 0.5 }),
      k: field.int({ nonNegative: true, default: 0 }),
      s: field.string({ nonEmpty: true, default: "x" }),
      re: field.string({ pattern: /^[a-z]+$/, default: "abc" }),
    };
    expect(readConfig({ n: 4 }, s)).toMatchObject({ n: 4, p: 0.5, k: 0, s: "x", re: "abc" });
    expect(configError(() => readConfig({ n: 9 }, s)).message).toBe("config: n: expected an integer in [2, 8], got 9");
    expect(configError(() => readConfig({ n: 3 }, s)).message).toBe("config: n: must be even");
    expect(configError(() => readConfig({ n: 4, p: 1.5 }, s)).message).toMatch(
      /p: expected a number in \[0, 1\], got 1\.5/,
    );
    expect(configError(() => readConfig({ n: 4, k: -1 }, s)).message).toMatch(
      /k: expected a non-negative integer, got -1/,
    );
    expect(configError(() => readConfig({ n: 4, s: "" }, s)).message).toMatch(/s: expected a non-empty string, got ""/);
    expect(configError(() => readConfig({ n: 4, re: "A" }, s)).message).toMatch(/re: expected a string matching/);
    expect(configError(() => readConfig({ n: 2 ** 60 }, s)).message).toMatch(/got 1152921504606847000/);
    // a default that violates its own field is caught when the schema is built
    expect(() => field.int({ positive: true, default: 0 })).toThrow(ConfigError);
  });

  test("nullable, optional, defaults of objects are not shared", () => {
    const s = {
      n_inner: field.nullable(field.int({ positive: true }), { default: null }),
      summary_activation: field.nullable(field.string()),
      tags: field.arrayOf(field.string(), { default: ["a"] }),
      maybe: field.optional(field.number()),
    };
    const a = readConfig({ summary_activation: null }, s);
    expect(a).toMatchObject({ n_inner: null, summary_activation: null, tags: ["a"], maybe: undefined });
    expect(readConfig({ n_inner: 12, summary_activation: "tanh", maybe: 2 }, s)).toMatchObject({
      n_inner: 12,
      maybe: 2,
    });
    expect(configError(() => readConfig({ n_inner: 0, summary_activation: null }, s)).message).toMatch(
      /n_inner: expected a positive integer, got 0/,
    );
    expect(configError(() => readConfig({}, s)).message).toMatch(/summary_activation: required field is missing/);
    a.tags.push("b");
    expect(readConfig({ summary_activation: null }, s).tags).toEqual(["a"]);
    expectTypeOf(a.n_inner).toEqualTypeOf<number | null>();
    expectTypeOf(a.maybe).toEqualTypeOf<number | undefined>();
  });

  test("aliases (HF attribute_map)", () => {
    const s = {
      hidden_size: field.int({ positive: true, aliases: ["n_embd"] }),
      num_attention_heads: field.int({ positive: true, aliases: ["n_head"] }),
    };
    const c = readConfig({ n_embd: 48, n_head: 4 }, s, { onUnknown: "error" });
    expect(c.hidden_size).toBe(48);
    expect(c.n_embd).toBe(48);
    expect(configError(() => readConfig({ n_embd: "x", n_head: 4 }, s)).message).toBe(
      'config: n_embd (alias of hidden_size): expected a positive integer, got "x"',
    );
    expect(configError(() => readConfig({ n_head: 4 }, s)).message).toMatch(
      /hidden_size: required field is missing \(or "n_embd"\)/,
    );
  });

  test("unknown keys: ignore, warn, error", () => {
    const warnings: string[] = [];
    const c = readConfig(base, vitSchema, { name: "vit", onUnknown: "warn", warn: (m) => warnings.push(m) });
    expect(c.torch_dtype).toBe("float32");
    expect(warnings).toEqual(["vit: 2 unknown field(s) kept as-is: model_type, torch_dtype"]);
    const e = configError(() => readConfig(base, vitSchema, { onUnknown: "error" }));
    expect(e.field).toBe("model_type");
    expect(e.message).toMatch(/unknown field/);
    readConfig(base, vitSchema, { onUnknown: "ignore", warn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
  });

  test("nested configs report full paths and run their own rules", () => {
    const s = {
      vision_config: field.object(
        { hidden_size: field.int({ positive: true }), num_attention_heads: field.int({ positive: true }) },
        { rules: [divisibleBy("hidden_size", "num_attention_heads")] },
      ),
      num_query_tokens: field.int({ positive: true }),
    };
    const ok = readConfig(
      { vision_config: { hidden_size: 32, num_attention_heads: 4, extra: 1 }, num_query_tokens: 4 },
      s,
    );
    expect(ok.vision_config.hidden_size).toBe(32);
    expect(ok.vision_config.extra).toBe(1);
    expectTypeOf(ok.vision_config.num_attention_heads).toEqualTypeOf<number>();
    expect(
      configError(() =>
        readConfig({ vision_config: { hidden_size: "a", num_attention_heads: 4 }, num_query_tokens: 4 }, s),
      ).field,
    ).toBe("vision_config.hidden_size");
    expect(
      configError(() =>
        readConfig({ vision_config: { hidden_size: 30, num_attention_heads: 4 }, num_query_tokens: 4 }, s),
      ).message,
    ).toBe("config: vision_config.hidden_size: 30 is not divisible by num_attention_heads (4)");
    expect(configError(() => readConfig({ vision_config: 3, num_query_tokens: 4 }, s)).message).toMatch(
      /vision_config: expected an object, got 3/,
    );
    const warnings: string[] = [];
    readConfig({ vision_config: { hidden_size: 32, num_attention_heads: 4, extra: 1 }, num_query_tokens: 4 }, s, {
      onUnknown: "warn",
      warn: (m) => warnings.push(m),
    });
    expect(warnings[0]).toMatch(/vision_config\.extra/);
  });

  test('"__proto__" keys are ordinary data', () => {
    const json = parseConfigJson('{"hidden_size": 8, "__proto__": {"polluted": true}}');
    const c = readConfig(json, { hidden_size: field.int() });
    expect(Object.getPrototypeOf(c)).toBe(Object.prototype);
    expect((c as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(c, "__proto__")).toBe(true);
  });

  test("ConfigOf gives the schema's type", () => {
    type Vit = ConfigOf<typeof vitSchema>;
    expectTypeOf<Vit["patch_size"]>().toEqualTypeOf<number>();
    expectTypeOf<Vit["qkv_bias"]>().toEqualTypeOf<boolean>();
  });
});

describe("parseConfigJson", () => {
  test("parses objects, strips a BOM, accepts bytes", () => {
    expect(parseConfigJson('{"a": [1, 2.5e-3, true, null, "x\\u00e9"]}')).toEqual({ a: [1, 2.5e-3, true, null, "xé"] });
    expect(parseConfigJson(new TextEncoder().encode('\uFEFF{"b": {}}'))).toEqual({ b: {} });
  });

  test("invalid JSON → ConfigError with line, column and offset", () => {
    const text = '{\n  "hidden_size": 64,\n  "num_heads": 4,\n}';
    const e = configError(() => parseConfigJson(text, { name: "config.json" }));
    expect(e.message).toBe(
      "config: invalid JSON in config.json at line 4, column 1 (offset 41): unexpected '}' in object, expected a key string",
    );
    expect(configError(() => parseConfigJson('{"a": 1,\n "a": 2}')).message).toMatch(
      /line 2, column 2 .*duplicate key "a"/,
    );
    expect(configError(() => parseConfigJson('{"a": NaN}')).message).toMatch(/line 1, column 7/);
    expect(configError(() => parseConfigJson('{"a": 1')).message).toMatch(/unexpected end of input/);
    expect(configError(() => parseConfigJson("")).message).toMatch(/line 1, column 1/);
    expect(configError(() => parseConfigJson("[1]")).message).toMatch(
      /expected a JSON object at the top level, got \[1\]/,
    );
    expect(configError(() => parseConfigJson(Uint8Array.from([0x7b, 0xff, 0x7d]))).message).toMatch(/invalid UTF-8/);
    expect(configError(() => parseConfigJson(`{"a":${"[".repeat(5000)}`)).message).toMatch(/nesting deeper than 256/);
  });
});

const FIXTURES = "/work/shared/fixtures";

describe.runIf(existsSync(FIXTURES))("shared fixtures", () => {
  test("every config.json parses and equals case.json config; ViT configs pass the ViT schema", () => {
    let n = 0;
    for (const d of readdirSync(FIXTURES)) {
      const p = join(FIXTURES, d, "config.json");
      if (!existsSync(p)) continue;
      const cfg = parseConfigJson(readFileSync(p), { name: `${d}/config.json` });
      const c = JSON.parse(readFileSync(join(FIXTURES, d, "case.json"), "utf8"));
      expect(cfg).toEqual(c.config);
      if (d.startsWith("vit-")) {
        const read = () => readConfig(cfg, vitSchema, { name: d, rules: vitRules });
        if (c.expect_error === "config") {
          expect(read).toThrow(ConfigError);
        } else {
          expect(read().hidden_size).toBeGreaterThan(0);
        }
      }
      n++;
    }
    expect(n).toBeGreaterThan(5);
  });
});
