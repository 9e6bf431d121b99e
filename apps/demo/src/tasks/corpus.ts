/**
 * The demo's built-in Word2Vec corpus: sentences generated from templates over a small "world"
 * (royalty and ordinary people of both genders, countries with their capitals and languages,
 * animals, food), with a seeded PRNG. Words that play the same role share contexts, so the trained
 * vectors show neighbours (paris ~ rome) and offset analogies (man : king :: woman : queen,
 * france : paris :: italy : rome). It is synthetic: the structure is planted, the training is real.
 */

import { mulberry32 } from "@wasmformer/core";

export const PAIRS_GENDER: readonly [string, string, "royal" | "common", string][] = [
  ["king", "queen", "royal", "kingdom"],
  ["prince", "princess", "royal", "fairytale"],
  ["duke", "duchess", "royal", "duchy"],
  ["emperor", "empress", "royal", "empire"],
  ["man", "woman", "common", "adult"],
  ["boy", "girl", "common", "school"],
  ["father", "mother", "common", "parents"],
  ["son", "daughter", "common", "children"],
  ["brother", "sister", "common", "siblings"],
  ["husband", "wife", "common", "marriage"],
  ["uncle", "aunt", "common", "cousins"],
];

export const COUNTRIES: readonly [string, string, string, string][] = [
  ["france", "paris", "french", "europe"],
  ["italy", "rome", "italian", "europe"],
  ["spain", "madrid", "spanish", "europe"],
  ["germany", "berlin", "german", "europe"],
  ["russia", "moscow", "russian", "europe"],
  ["japan", "tokyo", "japanese", "asia"],
  ["china", "beijing", "chinese", "asia"],
  ["egypt", "cairo", "egyptian", "africa"],
  ["algeria", "algiers", "algerian", "africa"],
  ["nigeria", "abuja", "nigerian", "africa"],
];

const ANIMALS = ["cat", "dog", "horse", "cow", "lion", "tiger", "wolf", "sheep"];
const FOODS = ["bread", "rice", "apple", "cheese", "soup", "fish", "cake", "milk"];
const ROYAL_CTX = ["palace", "crown", "throne", "kingdom", "royal", "court", "castle"];
const COMMON_CTX = ["street", "town", "house", "work", "market", "village", "farm"];
const VERBS = ["saw", "met", "visited", "liked", "helped", "called"];

/** `n` tokenised sentences of the built-in corpus. */
export function builtinCorpus(n: number, seed = 1): string[][] {
  const r = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const out: string[][] = [];
  for (let s = 0; s < n; s++) {
    const kind = r();
    if (kind < 0.5) {
      // a person: gender shows in the pronouns, rank in the places
      // (and the pair in a word of its own: king and queen share "kingdom")
      const [m, f, rank, domain] = pick(PAIRS_GENDER);
      const female = r() < 0.5;
      const who = female ? f : m;
      const [he, his] = female ? ["she", "her"] : ["he", "his"];
      const place = pick(rank === "royal" ? ROYAL_CTX : COMMON_CTX);
      const t = Math.floor(r() * 4);
      if (t === 0) out.push(["the", who, "of", "the", domain, "went", "to", "the", place, "and", he, "was", "happy"]);
      else if (t === 1) out.push([he, "is", "a", who, "of", "the", domain, "and", "the", place]);
      else if (t === 2) out.push(["the", domain, who, pick(VERBS), his, "friend", "at", "the", place]);
      else out.push(["everyone", "in", "the", place, "knows", "the", who, "and", his, domain]);
    } else if (kind < 0.85) {
      const [country, city, people, continent] = pick(COUNTRIES);
      const t = Math.floor(r() * 5);
      if (t === 0) out.push([city, "is", "the", "capital", "of", country]);
      else if (t === 1) out.push(["the", "city", "of", city, "is", "in", country]);
      else if (t === 2) out.push([country, "is", "a", "country", "in", continent]);
      else if (t === 3) out.push(["the", people, "people", "live", "in", country]);
      else out.push(["many", people, "tourists", "visit", city, "the", "city"]);
    } else {
      const t = Math.floor(r() * 3);
      if (t === 0) out.push(["the", pick(ANIMALS), "eats", "the", pick(FOODS)]);
      else if (t === 1) out.push(["a", pick(ANIMALS), "runs", "on", "the", pick(["farm", "field", "grass"])]);
      else out.push(["we", "eat", pick(FOODS), "and", pick(FOODS), "for", "dinner"]);
    }
  }
  return out;
}
