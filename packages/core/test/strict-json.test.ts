import { describe, expect, test } from "vitest";
import { JsonNumber, JsonSyntaxError, lineColumn, parseStrictJson } from "../src/strict-json.js";

const err = (text: string, opts = {}) => {
  try {
    parseStrictJson(text, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(JsonSyntaxError);
    return e as JsonSyntaxError;
  }
  throw new Error(`expected a syntax error for ${JSON.stringify(text)}`);
};

describe("parseStrictJson", () => {
  test("agrees with JSON.parse on valid documents", () => {
    const docs = [
      '{"a":[1,-2.5e-3,0,1E+2,true,false,null,"s\\n\\u00e9\\ud83d\\ude00\\/"],"b":{}}',
      "[]",
      '"x"',
      " 12 ",
      '{"nested":{"deep":[[[{"x":[]}]]]}}',
      '"\u{1F600}"',
    ];
    for (const d of docs) expect(parseStrictJson(d).value).toEqual(JSON.parse(d));
  });

  test("rejects what RFC 8259 rejects, with the position", () => {
    expect(err('{"a":1,}').pos).toBe(7);
    expect(err("[1,]").pos).toBe(3);
    expect(err("01").pos).toBe(1);
    expect(err("1.").pos).toBe(1);
    expect(err("-").pos).toBe(0);
    expect(err(".5").pos).toBe(0);
    expect(err("+1").pos).toBe(0);
    expect(err("'a'").pos).toBe(0);
    expect(err("{a:1}").pos).toBe(1);
    expect(err('"\\u12g4"').message).toMatch(/4 hex digits/);
    expect(err('"\\udc00"').message).toMatch(/lone low surrogate/);
    expect(err('"\\ud800x"').message).toMatch(/lone high surrogate/);
    expect(err('"\\ud800\\u0041"').message).toMatch(/not followed by a low surrogate/);
    expect(err('"\ud800"').message).toMatch(/lone surrogate/);
    expect(err('"a\nb"').message).toMatch(/unescaped control character U\+000a/);
    expect(err("[1] [2]").message).toMatch(/after the JSON value/);
    expect(err("").message).toMatch(/end of input/);
    expect(err("NaN").pos).toBe(0);
    expect(err("[1]\t", { trailing: "spaces" }).pos).toBe(3);
    expect(parseStrictJson("[1]   ", { trailing: "spaces" }).end).toBe(3);
  });

  test("duplicate keys at any depth, compared after unescaping", () => {
    expect(err('{"a":1,"a":2}').message).toBe('duplicate key "a"');
    expect(err('{"a":1,"a":2}').pos).toBe(7);
    expect(err('{"x":{"k":1,"\\u006b":2}}').message).toBe('duplicate key "k"');
    expect(parseStrictJson('{"a":{"k":1},"b":{"k":1}}').value).toEqual({ a: { k: 1 }, b: { k: 1 } });
  });

  test("nesting is bounded (no stack overflow)", () => {
    expect(err("[".repeat(1_000_000), { maxDepth: 100 }).message).toBe("nesting deeper than 100");
    expect(parseStrictJson(`${"[".repeat(100)}${"]".repeat(100)}`, { maxDepth: 100 }).value).toBeDefined();
  });

  test('"__proto__" is an own key, not a prototype', () => {
    const v = parseStrictJson('{"__proto__":{"polluted":1}}').value as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(["__proto__"]);
    expect((v as { polluted?: number }).polluted).toBeUndefined();
  });

  test("raw numbers and top-level key positions", () => {
    const r = parseStrictJson('{"a": [1e2, 100, -0], "b": 3}', { numbers: "raw" });
    const a = (r.value as { a: JsonNumber[] }).a;
    expect(a.map((n) => [n.raw, n.value, n.isUnsignedIntegerLiteral])).toEqual([
      ["1e2", 100, false],
      ["100", 100, true],
      ["-0", -0, false],
    ]);
    expect(a[1].pos).toBe(12);
    expect(r.topKeyPos.get("a")).toBe(1);
    expect(r.topKeyPos.get("b")).toBe(22);
    expect(new JsonNumber("9007199254740993", 9007199254740992, 0).isUnsignedIntegerLiteral).toBe(false);
  });

  test("lineColumn", () => {
    expect(lineColumn("ab\ncd\n", 4)).toEqual({ line: 2, column: 2 });
    expect(lineColumn("x", 0)).toEqual({ line: 1, column: 1 });
  });
});
