/**
 * The regex of a tokenizer.json `Split` pre-tokenizer, checked before it runs.
 *
 * JS regex engines backtrack and a running `exec` cannot be interrupted, so a pattern such as
 * `(a+)+$` would block the thread for seconds on a 27-character input. Patterns are therefore
 * vetted at load and rejected (`ConfigError`) when they hold the shapes of exponential
 * backtracking:
 * - a group repeated more than once (`*`, `+`, `{n,m}` with m > 1) whose body holds a quantifier
 *   or an alternation (`(a+)+`, `(a|a)*`, `(a?){30}`, `(\w+\s?)*`);
 * - a backreference (`\1`, `\k<name>`).
 * Lookarounds do not count for their enclosing group (a lookaround is atomic: the engine never
 * backtracks into it). The standard GPT-2, Llama-3, Qwen2 and GPT-4o split patterns pass.
 *
 * Oniguruma's inline case-insensitive groups `(?i:…)` (the contractions of Llama-3 and Qwen2),
 * which JS engines before 2024 do not parse, are rewritten with case classes: `(?i:'s)` becomes
 * `(?:'[sSſ])`, the letters that match under Unicode simple case folding, as Oniguruma does.
 * Inside such a group only literal characters, escaped punctuation, groups, alternation and
 * quantifiers are supported.
 */
import { ConfigError } from "@wasmformer/core";

interface Frame {
  /** The body holds a quantifier (directly or in a nested group). */
  quantified: boolean;
  /** The body holds an alternation. */
  alternation: boolean;
  /** A lookaround: its body does not count for the enclosing group. */
  lookaround: boolean;
  /** Inside `(?i:…)`. */
  caseless: boolean;
}

/** The letters equal to an ASCII letter under Unicode simple case folding (ſ folds to s, the Kelvin sign to k). */
function caseClass(c: string): string {
  const lower = c.toLowerCase();
  let cls = lower + lower.toUpperCase();
  if (lower === "s") cls += "\u017f";
  if (lower === "k") cls += "\u212a";
  return `[${cls}]`;
}

/** Compile a `Split` regex (flags `gu`) after the backtracking check; `field` names it in errors. */
export function compileSplitRegex(source: string, field: string): RegExp {
  const fail = (what: string, at: number): never => {
    throw new ConfigError(
      `regex ${JSON.stringify(source)} at character ${at}: ${what} (patterns that can backtrack exponentially are refused)`,
      field,
    );
  };
  const stack: Frame[] = [{ quantified: false, alternation: false, lookaround: false, caseless: false }];
  /** What a quantifier right here would repeat: a closed group, a single atom, or nothing. */
  let last: Frame | "atom" | null = null;
  let out = "";
  let i = 0;
  while (i < source.length) {
    const top = stack[stack.length - 1];
    const c = source[i];
    if (c === "\\") {
      const rest = source.slice(i);
      if (/^\\([1-9]|k<)/.test(rest)) fail("backreference", i);
      const m = /^\\(?:[pP]\{[^}]*\}|u\{[0-9A-Fa-f]+\}|u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|c[A-Za-z]|[\s\S])/.exec(rest);
      const esc = m ? m[0] : c;
      if (top.caseless && /^\\[A-Za-z]/.test(esc) && !/^\\[rntfv]$/.test(esc))
        fail(`escape ${esc} inside a case-insensitive group (?i:…) is not supported`, i);
      out += esc;
      i += esc.length;
      last = "atom";
      continue;
    }
    if (c === "[") {
      if (top.caseless) fail("a character class inside a case-insensitive group (?i:…) is not supported", i);
      let j = i + 1;
      if (source[j] === "^") j++;
      if (source[j] === "]") j++; // (an empty class "[]" is a JS syntax error reported below)
      while (j < source.length && source[j] !== "]") j += source[j] === "\\" ? 2 : 1;
      out += source.slice(i, j + 1);
      i = j + 1;
      last = "atom";
      continue;
    }
    if (c === "(") {
      const head = /^\(\?(?:<[=!]|[=!:]|<[A-Za-z_$][\w$]*>|i:)?|^\(/.exec(source.slice(i))![0];
      if (head === "(?") fail(`unsupported group syntax ${JSON.stringify(source.slice(i, i + 4))}`, i);
      stack.push({
        quantified: false,
        alternation: false,
        lookaround: /^\(\?<?[=!]/.test(head),
        caseless: top.caseless || head === "(?i:",
      });
      out += head === "(?i:" ? "(?:" : head;
      i += head.length;
      last = null;
      continue;
    }
    if (c === ")") {
      if (stack.length === 1) break; // unbalanced: the RegExp constructor below says so
      const f = stack.pop()!;
      const parent = stack[stack.length - 1];
      if (!f.lookaround) {
        parent.quantified ||= f.quantified;
        parent.alternation ||= f.alternation;
      }
      out += c;
      i++;
      last = f;
      continue;
    }
    if (c === "|") {
      top.alternation = true;
      out += c;
      i++;
      last = null;
      continue;
    }
    const q = /^(?:[*+?]|\{(\d+)(?:(,)(\d*))?\})\??/.exec(source.slice(i));
    if (q && last !== null) {
      const max =
        q[0][0] === "?" ? 1 : q[0][0] !== "{" ? Infinity : q[2] ? (q[3] ? Number(q[3]) : Infinity) : Number(q[1]);
      if (max > 1 && last !== "atom" && (last.quantified || last.alternation))
        fail(
          last.quantified
            ? "a repeated group holds a quantifier (nested quantifiers)"
            : "a repeated group holds an alternation",
          i,
        );
      top.quantified = true;
      out += q[0];
      i += q[0].length;
      last = null;
      continue;
    }
    const ch = String.fromCodePoint(source.codePointAt(i)!);
    if (top.caseless && /^[A-Za-z]$/.test(ch)) out += caseClass(ch);
    else if (top.caseless && /^\p{L}$/u.test(ch))
      fail(`non-ASCII letter ${ch} inside a case-insensitive group (?i:…) is not supported`, i);
    else out += ch;
    i += ch.length;
    last = "atom";
  }
  try {
    return new RegExp(out, "gu");
  } catch (e) {
    throw new ConfigError(`cannot use this pattern: ${(e as Error).message}`, field);
  }
}
