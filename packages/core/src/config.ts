/**
 * Reading Hugging Face style `config.json` files with validation.
 *
 * A config is described by a schema of typed fields (`field.int`, `field.number`, `field.enumOf`,
 * …) with defaults and constraints; `readConfig` checks a parsed JSON object against it and returns
 * a typed object. A missing or ill-typed field is a `ConfigError` that names the field and shows
 * the offending value (`config: hidden_size: expected a positive integer, got "abc"`). Keys the
 * schema does not know are kept in the result (HF configs carry many informative fields) and can be
 * reported (`onUnknown`). Cross-field rules (`divisibleBy`) run after every field is valid.
 *
 * @example
 * ```ts
 * const ViTConfigSchema = {
 *   hidden_size: field.int({ positive: true }),
 *   num_attention_heads: field.int({ positive: true }),
 *   hidden_act: field.enumOf(["gelu", "gelu_new", "relu"] as const, { default: "gelu" }),
 *   layer_norm_eps: field.number({ positive: true, default: 1e-12 }),
 *   id2label: field.optional(field.mapOf(field.string())),
 * };
 * const cfg = readConfig(parseConfigJson(text), ViTConfigSchema, {
 *   name: "ViT config.json",
 *   rules: [divisibleBy("hidden_size", "num_attention_heads")],
 * });
 * cfg.hidden_size; // number
 * ```
 */
import { ConfigError } from "./errors.js";
import { JsonSyntaxError, lineColumn, parseStrictJson } from "./strict-json.js";

// ---------------------------------------------------------------------------------------------
// fields

/** Context threaded through nested reads. @internal */
interface Ctx {
  readonly name: string | undefined;
  readonly onUnknown: "ignore" | "warn" | "error";
  readonly unknown: string[];
}

/** One field of a schema: how to validate a present value, and what to do when it is absent. */
export interface Field<T> {
  /** What a valid value looks like, for messages ("a positive integer"). */
  readonly expected: string;
  /** Absent → this default (cloned). */
  readonly hasDefault: boolean;
  readonly defaultValue?: T;
  /** Absent → `undefined` instead of an error. */
  readonly optional: boolean;
  /** Other keys read when the field's own key is absent (HF `attribute_map`, e.g. `n_embd` ↔ `hidden_size`). */
  readonly aliases: readonly string[];
  readonly doc: string | undefined;
  /** Validate a present value at `path`; throws `ConfigError`. @internal */
  read(v: unknown, path: string, ctx: Ctx): T;
}

/** Options common to every field. */
export interface FieldOptions<T> {
  /** Value used when the key is absent. Without it (and without `optional`), the field is required. */
  default?: T;
  /** Other key names to accept when the field's key is absent. */
  aliases?: readonly string[];
  /** A custom constraint: return an error message (without the field name) or nothing. */
  check?: (v: T) => string | undefined | null | false;
  doc?: string;
}

/** The value type a field produces. */
export type FieldType<F> = F extends Field<infer T> ? T : never;
/** A schema: config key → field. */
export type Schema = Record<string, Field<unknown>>;
/** The typed object `readConfig` returns for a schema (unknown keys are kept, typed `unknown`). */
export type ConfigOf<S extends Schema> = { -readonly [K in keyof S]: FieldType<S[K]> } & {
  readonly [extra: string]: unknown;
};

/** Short, bounded rendering of a JSON value for messages. */
export function showValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

const fail = (path: string, message: string, ctx: Ctx): never => {
  throw new ConfigError(ctx.name ? `${message} (in ${ctx.name})` : message, path);
};

function makeField<T>(
  expected: string,
  opts: FieldOptions<T>,
  read: (v: unknown, path: string, ctx: Ctx) => T,
  validateDefault = true,
): Field<T> {
  const check = opts.check;
  const f: Field<T> = {
    expected,
    hasDefault: Object.hasOwn(opts, "default") && opts.default !== undefined,
    defaultValue: opts.default,
    optional: false,
    aliases: opts.aliases ?? [],
    doc: opts.doc,
    read(v, path, ctx) {
      const out = read(v, path, ctx);
      if (check) {
        const msg = check(out);
        if (msg) fail(path, msg, ctx);
      }
      return out;
    },
  };
  if (validateDefault && f.hasDefault) {
    // a default that violates its own field is a bug in the schema: catch it at definition time
    f.read(opts.default, "(default)", { name: "schema", onUnknown: "ignore", unknown: [] });
  }
  return f;
}

export interface IntOptions extends FieldOptions<number> {
  /** > 0 */
  positive?: boolean;
  /** ≥ 0 */
  nonNegative?: boolean;
  min?: number;
  max?: number;
}

export interface NumberOptions extends FieldOptions<number> {
  /** > 0 */
  positive?: boolean;
  /** ≥ 0 */
  nonNegative?: boolean;
  min?: number;
  max?: number;
  /** Allow ±Infinity / NaN (only reachable from objects, JSON has neither). Default false. */
  allowNonFinite?: boolean;
}

function rangeText(kind: string, o: IntOptions | NumberOptions): string {
  if (o.positive) return `a positive ${kind}`;
  if (o.nonNegative) return `a non-negative ${kind}`;
  const art = kind === "integer" ? "an" : "a";
  if (o.min !== undefined && o.max !== undefined) return `${art} ${kind} in [${o.min}, ${o.max}]`;
  if (o.min !== undefined) return `${art} ${kind} ≥ ${o.min}`;
  if (o.max !== undefined) return `${art} ${kind} ≤ ${o.max}`;
  return `${art} ${kind}`;
}

function inRange(v: number, o: IntOptions | NumberOptions): boolean {
  if (o.positive && !(v > 0)) return false;
  if (o.nonNegative && !(v >= 0)) return false;
  if (o.min !== undefined && v < o.min) return false;
  if (o.max !== undefined && v > o.max) return false;
  return true;
}

/** Field builders. */
export const field = {
  /** A JSON integer (a number with no fraction, within ±2^53). */
  int(opts: IntOptions = {}): Field<number> {
    const expected = rangeText("integer", opts);
    return makeField(expected, opts, (v, path, ctx) => {
      if (typeof v !== "number" || !Number.isSafeInteger(v) || !inRange(v, opts)) {
        fail(path, `expected ${expected}, got ${showValue(v)}`, ctx);
      }
      return v as number;
    });
  },

  /** A JSON number (finite unless `allowNonFinite`). */
  number(opts: NumberOptions = {}): Field<number> {
    const expected = rangeText("number", opts);
    return makeField(expected, opts, (v, path, ctx) => {
      if (typeof v !== "number" || (!opts.allowNonFinite && !Number.isFinite(v)) || !inRange(v, opts)) {
        fail(path, `expected ${expected}, got ${showValue(v)}`, ctx);
      }
      return v as number;
    });
  },

  /** A JSON string. */
  string(opts: FieldOptions<string> & { nonEmpty?: boolean; pattern?: RegExp } = {}): Field<string> {
    const expected = opts.pattern
      ? `a string matching ${opts.pattern}`
      : opts.nonEmpty
        ? "a non-empty string"
        : "a string";
    return makeField(expected, opts, (v, path, ctx) => {
      if (typeof v !== "string" || (opts.nonEmpty && v === "") || (opts.pattern && !opts.pattern.test(v))) {
        fail(path, `expected ${expected}, got ${showValue(v)}`, ctx);
      }
      return v as string;
    });
  },

  /** `true` or `false` (not 0/1, not "true"). */
  bool(opts: FieldOptions<boolean> = {}): Field<boolean> {
    return makeField("a boolean", opts, (v, path, ctx) => {
      if (typeof v !== "boolean") fail(path, `expected a boolean, got ${showValue(v)}`, ctx);
      return v as boolean;
    });
  },

  /** One of a fixed set of strings. */
  enumOf<const V extends string>(values: readonly V[], opts: FieldOptions<V> = {}): Field<V> {
    const expected = `one of ${values.map((x) => JSON.stringify(x)).join(", ")}`;
    return makeField(expected, opts, (v, path, ctx) => {
      if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
        fail(path, `expected ${expected}, got ${showValue(v)}`, ctx);
      }
      return v as V;
    });
  },

  /** Any JSON value, unchecked. */
  any(opts: FieldOptions<unknown> = {}): Field<unknown> {
    return makeField("any value", opts, (v) => v);
  },

  /** `null` or the inner field's type (a present `null` is kept; absent → the default, if any). */
  nullable<T>(inner: Field<T>, opts: FieldOptions<T | null> = {}): Field<T | null> {
    // `default: null` is a real default here (makeField treats only `undefined` as "no default")
    const f = makeField<T | null>(
      `${inner.expected} or null`,
      { aliases: inner.aliases, doc: inner.doc, ...opts },
      (v, path, ctx) => (v === null ? null : inner.read(v, path, ctx)),
    );
    if (!Object.hasOwn(opts, "default") && inner.hasDefault) {
      return { ...f, hasDefault: true, defaultValue: inner.defaultValue };
    }
    return f;
  },

  /** The inner field, but absent → `undefined` instead of an error. */
  optional<T>(inner: Field<T>): Field<T | undefined> {
    return { ...inner, optional: true, hasDefault: false, defaultValue: undefined } as Field<T | undefined>;
  },

  /** A JSON array of items (with optional length bounds). */
  arrayOf<T>(
    item: Field<T>,
    opts: FieldOptions<T[]> & { length?: number; minLength?: number; maxLength?: number } = {},
  ): Field<T[]> {
    const len =
      opts.length !== undefined
        ? ` of length ${opts.length}`
        : opts.minLength !== undefined || opts.maxLength !== undefined
          ? ` of length in [${opts.minLength ?? 0}, ${opts.maxLength ?? "∞"}]`
          : "";
    const expected = `an array${len} of ${item.expected}`;
    return makeField(expected, opts, (v, path, ctx) => {
      if (!Array.isArray(v)) return fail(path, `expected ${expected}, got ${showValue(v)}`, ctx);
      const n = v.length;
      if (
        (opts.length !== undefined && n !== opts.length) ||
        (opts.minLength !== undefined && n < opts.minLength) ||
        (opts.maxLength !== undefined && n > opts.maxLength)
      ) {
        fail(path, `expected ${expected}, got an array of length ${n}`, ctx);
      }
      return v.map((x, i) => item.read(x, `${path}[${i}]`, ctx));
    });
  },

  /** A JSON object used as a map (`id2label`): every value checked by `value`. */
  mapOf<T>(
    value: Field<T>,
    opts: FieldOptions<Record<string, T>> & { keyPattern?: RegExp } = {},
  ): Field<Record<string, T>> {
    const expected = `an object of ${value.expected}`;
    return makeField(expected, opts, (v, path, ctx) => {
      if (v === null || typeof v !== "object" || Array.isArray(v))
        return fail(path, `expected ${expected}, got ${showValue(v)}`, ctx);
      const out: Record<string, T> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (opts.keyPattern && !opts.keyPattern.test(k))
          fail(`${path}.${k}`, `key does not match ${opts.keyPattern}`, ctx);
        define(out, k, value.read(x, `${path}.${k}`, ctx));
      }
      return out;
    });
  },

  /** A nested config (`vision_config`), read with its own schema and rules. */
  object<S extends Schema>(
    schema: S,
    opts: FieldOptions<ConfigOf<S>> & { rules?: readonly ConfigRule<ConfigOf<S>>[] } = {},
  ): Field<ConfigOf<S>> {
    return makeField(
      "an object",
      opts,
      (v, path, ctx) => {
        if (v === null || typeof v !== "object" || Array.isArray(v))
          return fail(path, `expected an object, got ${showValue(v)}`, ctx);
        return readObject(v as Record<string, unknown>, schema, opts.rules ?? [], `${path}.`, ctx);
      },
      false,
    );
  },
};

// ---------------------------------------------------------------------------------------------
// rules

/** A cross-field check: returns nothing when fine, else a message (or `{field, message}` to blame a field). */
export type ConfigRule<C> = (cfg: C) => string | { field: string; message: string } | undefined | null | false;

/** Rule: `cfg[field]` is divisible by `cfg[by]` (e.g. `hidden_size` by `num_attention_heads`). Skipped when either is absent/null. */
export function divisibleBy<C extends Record<string, unknown>>(
  fieldName: keyof C & string,
  by: keyof C & string,
): ConfigRule<C> {
  return (c) => {
    const a = c[fieldName];
    const b = c[by];
    if (typeof a !== "number" || typeof b !== "number") return undefined;
    if (b === 0 || a % b !== 0) return { field: fieldName, message: `${a} is not divisible by ${by} (${b})` };
    return undefined;
  };
}

// ---------------------------------------------------------------------------------------------
// reading

export interface ReadConfigOptions<C> {
  /** Names the config in messages, e.g. `"ViT config.json"`. */
  name?: string;
  /** What to do about keys the schema does not know; they are kept in the result in every case. Default `"ignore"`. */
  onUnknown?: "ignore" | "warn" | "error";
  /** Receives the `"warn"` message (default `console.warn`). */
  warn?: (message: string) => void;
  /** Cross-field rules, run after all fields are valid. */
  rules?: readonly ConfigRule<C>[];
}

function define(o: Record<string, unknown>, k: string, v: unknown) {
  Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
}

function cloneDefault<T>(v: T): T {
  return v !== null && typeof v === "object" ? structuredClone(v) : v;
}

function readObject<S extends Schema>(
  json: Record<string, unknown>,
  schema: S,
  rules: readonly ConfigRule<ConfigOf<S>>[],
  prefix: string,
  ctx: Ctx,
): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  const aliases = new Set(Object.values(schema).flatMap((f) => f.aliases));
  for (const [key, f] of Object.entries(schema)) {
    let src: string | undefined;
    if (Object.hasOwn(json, key)) src = key;
    else src = f.aliases.find((a) => Object.hasOwn(json, a));
    if (src !== undefined) {
      define(out, key, f.read(json[src], prefix + (src === key ? key : `${src} (alias of ${key})`), ctx));
    } else if (f.hasDefault) {
      define(out, key, cloneDefault(f.defaultValue));
    } else if (f.optional) {
      define(out, key, undefined);
    } else {
      const also = f.aliases.length ? ` (or ${f.aliases.map((a) => JSON.stringify(a)).join(", ")})` : "";
      fail(prefix + key, `required field is missing${also}; expected ${f.expected}`, ctx);
    }
  }
  for (const key of Object.keys(json)) {
    if (Object.hasOwn(schema, key) || aliases.has(key)) {
      // an alias (used, or given beside its field): kept as-is, it is informative
      if (!Object.hasOwn(out, key)) define(out, key, json[key]);
      continue;
    }
    if (ctx.onUnknown === "error")
      fail(prefix + key, `unknown field (not in the schema), value ${showValue(json[key])}`, ctx);
    ctx.unknown.push(prefix + key);
    define(out, key, json[key]);
  }
  const cfg = out as ConfigOf<S>;
  for (const rule of rules) {
    const r = rule(cfg);
    if (!r) continue;
    if (typeof r === "string") fail(prefix.replace(/\.$/, "") || "(config)", r, ctx);
    else fail(prefix + r.field, r.message, ctx);
  }
  return cfg;
}

/**
 * Check a parsed `config.json` against `schema` and return the typed config. Unknown keys are kept
 * (and warned about or rejected with `onUnknown`). Throws `ConfigError` naming the field at fault.
 */
export function readConfig<S extends Schema>(
  json: unknown,
  schema: S,
  opts: ReadConfigOptions<ConfigOf<S>> = {},
): ConfigOf<S> {
  const ctx: Ctx = { name: opts.name, onUnknown: opts.onUnknown ?? "ignore", unknown: [] };
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new ConfigError(`expected a JSON object, got ${showValue(json)}${opts.name ? ` (in ${opts.name})` : ""}`);
  }
  const cfg = readObject(json as Record<string, unknown>, schema, opts.rules ?? [], "", ctx);
  if (ctx.onUnknown === "warn" && ctx.unknown.length) {
    const msg = `${opts.name ?? "config"}: ${ctx.unknown.length} unknown field(s) kept as-is: ${ctx.unknown.join(", ")}`;
    (opts.warn ?? console.warn)(msg);
  }
  return cfg;
}

/** Keys of `cfg` that `schema` does not declare (top level). */
export function unknownKeys(cfg: Record<string, unknown>, schema: Schema): string[] {
  const known = new Set<string>(Object.keys(schema));
  for (const f of Object.values(schema)) for (const a of f.aliases) known.add(a);
  return Object.keys(cfg).filter((k) => !known.has(k));
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parse config JSON text (or UTF-8 bytes) strictly: a syntax error or a duplicate key becomes a
 * `ConfigError` with line, column and offset; the top level must be an object.
 */
export function parseConfigJson(text: string | Uint8Array, opts: { name?: string } = {}): Record<string, unknown> {
  const where = opts.name ? ` in ${opts.name}` : "";
  let s: string;
  if (typeof text === "string") s = text;
  else {
    try {
      s = utf8.decode(text); // also drops a leading BOM
    } catch {
      throw new ConfigError(`invalid UTF-8${where}`);
    }
  }
  if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
  let value: unknown;
  try {
    value = parseStrictJson(s, { maxDepth: 256 }).value;
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    const { line, column } = lineColumn(s, e.pos);
    throw new ConfigError(`invalid JSON${where} at line ${line}, column ${column} (offset ${e.pos}): ${e.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(`expected a JSON object at the top level${where}, got ${showValue(value)}`);
  }
  return value as Record<string, unknown>;
}
