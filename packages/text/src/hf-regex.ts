/**
 * Oniguruma (Ruby syntax, as HF tokenizers compiles `Split` patterns) → JavaScript `u` regex source.
 *
 * What differs and is rewritten:
 * - `(?i:…)` and `(?i)`: letters become case classes `[aA]`, `[sSſ]` (JS has no inline modifiers on Node 20);
 * - possessive quantifiers `X?+ X*+ X++ X{n,m}+` and atomic groups `(?>X)`: `(?=(?<aN>X))\k<aN>`
 *   (a lookahead is atomic in JS, the backreference consumes what it matched);
 * - `\s \S \d \D \w \W \h \H` take their Unicode meaning (`\s` = White_Space: U+0085 in, U+FEFF out);
 * - `.` excludes only `\n`; `\x{HHHH}` → `\u{HHHH}`; `^ $` are line anchors (compile with the `m` flag),
 *   `\A \z \Z` string anchors; `\b \B` use the Unicode word characters;
 * - identity escapes of punctuation (`\'`, `\-` outside classes) become plain characters.
 * Anything else passes through; a pattern JS then rejects throws when compiled.
 */

const SYNTAX = new Set("^$\\.*+?()[]{}|/".split(""));
const WORD = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";
const HEX = "0-9A-Fa-f";

/** Unicode meaning of a class escape letter, as class contents (no brackets); null if not one. */
function classEscape(c: string): { body: string; negated: boolean } | null {
  switch (c) {
    case "s":
      return { body: "\\p{White_Space}", negated: false };
    case "S":
      return { body: "\\p{White_Space}", negated: true };
    case "d":
      return { body: "\\p{Nd}", negated: false };
    case "D":
      return { body: "\\p{Nd}", negated: true };
    case "w":
      return { body: WORD, negated: false };
    case "W":
      return { body: WORD, negated: true };
    case "h":
      return { body: HEX, negated: false };
    case "H":
      return { body: HEX, negated: true };
    default:
      return null;
  }
}

/** The characters equal to `ch` under simple case folding (ſ folds to s, the Kelvin sign to k). */
function caseVariants(ch: string): string {
  const lo = ch.toLowerCase();
  const up = ch.toUpperCase();
  if (lo === up || [...lo].length !== 1 || [...up].length !== 1) return ch;
  const extra = lo === "s" ? "\u017f" : lo === "k" ? "\u212a" : "";
  return (lo === ch ? `${ch}${up}` : `${ch}${lo}`) + extra;
}

/** Convert an Oniguruma pattern to a JS regex source for the flags `gmu`. Throws `Error` on syntax it cannot map. */
export function onigToJs(pattern: string): string {
  const p = pattern;
  let i = 0;
  let atomic = 0;

  /** One escape at p[i] === "\\"; `inClass`: inside [...]. */
  const escapeAt = (inClass: boolean, ci: boolean): string => {
    const c = p[i + 1];
    if (c === undefined) throw new Error("pattern ends with a backslash");
    if ((c === "p" || c === "P") && p[i + 2] === "{") {
      const end = p.indexOf("}", i + 3);
      if (end < 0) throw new Error(`unterminated \\${c}{ at ${i}`);
      let name = p.slice(i + 3, end);
      let neg = c === "P";
      if (name.startsWith("^")) {
        name = name.slice(1);
        neg = !neg;
      }
      i = end + 1;
      return `\\${neg ? "P" : "p"}{${name}}`;
    }
    if (c === "x" && p[i + 2] === "{") {
      const end = p.indexOf("}", i + 3);
      if (end < 0) throw new Error(`unterminated \\x{ at ${i}`);
      const hex = p.slice(i + 3, end);
      i = end + 1;
      return `\\u{${hex}}`;
    }
    i += 2;
    if (!inClass) {
      const w = `[${WORD}]`;
      switch (c) {
        case "A":
          return "(?<![\\s\\S])";
        case "z":
          return "(?![\\s\\S])";
        case "Z":
          return "(?=\\n?(?![\\s\\S]))";
        case "b":
          return `(?:(?<=${w})(?!${w})|(?<!${w})(?=${w}))`;
        case "B":
          return `(?:(?<=${w})(?=${w})|(?<!${w})(?!${w}))`;
        case "G":
        case "K":
        case "R":
        case "X":
          throw new Error(`\\${c} is not supported`);
      }
    }
    const ce = classEscape(c);
    if (ce) {
      if (inClass) {
        if (ce.negated) throw new Error(`\\${c} inside a character class is not supported`);
        return ce.body;
      }
      return `[${ce.negated ? "^" : ""}${ce.body}]`;
    }
    if (/[A-Za-z0-9]/.test(c)) return `\\${c}`;
    if (inClass) return c === "-" || c === "]" || c === "\\" || c === "^" || c === "[" ? `\\${c}` : c;
    if (SYNTAX.has(c)) return `\\${c}`;
    return ci ? `[${caseVariants(c)}]` : c;
  };

  const charClass = (ci: boolean): string => {
    i++; // [
    let out = "[";
    if (p[i] === "^") {
      out += "^";
      i++;
    }
    let first = true;
    while (i < p.length && (p[i] !== "]" || first)) {
      first = false;
      const c = p[i];
      if (c === "\\") out += escapeAt(true, ci);
      else if (c === "[") throw new Error(`nested character classes are not supported (at ${i})`);
      else if (c === "&" && p[i + 1] === "&") throw new Error(`class intersection && is not supported (at ${i})`);
      else {
        const cp = p.codePointAt(i)!;
        const ch = String.fromCodePoint(cp);
        i += ch.length;
        if (p[i] === "-" && p[i + 1] !== "]" && p[i + 1] !== undefined && p[i + 1] !== "\\") {
          const cp2 = p.codePointAt(i + 1)!;
          const ch2 = String.fromCodePoint(cp2);
          i += 1 + ch2.length;
          out += `${ch}-${ch2}`;
          if (ci && /[a-z]/.test(ch) && /[a-z]/.test(ch2)) out += `${ch.toUpperCase()}-${ch2.toUpperCase()}`;
          else if (ci && /[A-Z]/.test(ch) && /[A-Z]/.test(ch2)) out += `${ch.toLowerCase()}-${ch2.toLowerCase()}`;
        } else {
          out += ch === "]" || ch === "[" ? `\\${ch}` : ci ? caseVariants(ch) : ch;
        }
      }
    }
    if (p[i] !== "]") throw new Error("unterminated character class");
    i++;
    return `${out}]`;
  };

  const quantifier = (): string => {
    const c = p[i];
    if (c === "?" || c === "*" || c === "+") {
      i++;
      return c;
    }
    if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i));
      if (m) {
        i += m[0].length;
        return m[0];
      }
    }
    return "";
  };

  const sequence = (ciIn: boolean): string => {
    let ci = ciIn;
    let out = "";
    while (i < p.length && p[i] !== ")") {
      const c = p[i];
      if (c === "|") {
        out += "|";
        i++;
        continue;
      }
      let atom: string;
      if (c === "(") {
        const rest = p.slice(i);
        const flags = /^\(\?([imx]*)(?:-([imx]*))?(:|\))/.exec(rest);
        if (flags && (flags[1] || flags[2])) {
          if (/[mx]/.test(`${flags[1]}${flags[2] ?? ""}`))
            throw new Error(`inline flags ${flags[0]} are not supported`);
          const on = flags[1].includes("i") ? true : (flags[2] ?? "").includes("i") ? false : ci;
          i += flags[0].length;
          if (flags[3] === ")") {
            ci = on; // (?i) applies to the rest of the enclosing group
            continue;
          }
          atom = `(?:${sequence(on)})`;
        } else if (rest.startsWith("(?>")) {
          i += 3;
          const inner = sequence(ci);
          const name = `_atomic${atomic++}`;
          atom = `(?=(?<${name}>${inner}))\\k<${name}>`;
        } else {
          const prefix = /^\((\?:|\?=|\?!|\?<=|\?<!|\?<[A-Za-z_]\w*>)?/.exec(rest)![0];
          i += prefix.length;
          atom = `${prefix}${sequence(ci)})`;
        }
        if (p[i] !== ")") throw new Error("unbalanced parenthesis");
        i++;
      } else if (c === "[") {
        atom = charClass(ci);
      } else if (c === "\\") {
        atom = escapeAt(false, ci);
      } else if (c === ".") {
        atom = "[^\\n]";
        i++;
      } else if (c === "^" || c === "$") {
        atom = c;
        i++;
      } else {
        const ch = String.fromCodePoint(p.codePointAt(i)!);
        i += ch.length;
        if (ch === "{" || ch === "}" || ch === "]") atom = `\\${ch}`;
        else if (ci && caseVariants(ch) !== ch) atom = `[${caseVariants(ch)}]`;
        else atom = ch;
      }
      const q = quantifier();
      if (q) {
        if (p[i] === "+") {
          i++;
          const name = `_atomic${atomic++}`;
          atom = `(?=(?<${name}>${atom}${q}))\\k<${name}>`;
        } else if (p[i] === "?") {
          i++;
          atom += `${q}?`;
        } else {
          atom += q;
        }
      }
      out += atom;
    }
    return out;
  };

  const out = sequence(false);
  if (i < p.length) throw new Error(`unbalanced parenthesis at ${i}`);
  return out;
}
