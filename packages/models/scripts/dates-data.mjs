// The dates task of the dates-seq2seq checkpoint: a written date in one of many formats → its ISO
// form "YYYY-MM-DD". Seeded and deterministic: `datePairs(n, seed)` gives the same pairs for the
// same arguments. The split is by calendar date, not by string: the training generator never
// produces a date whose day number (days since 1900-01-01) is ≡ 0 mod 10, the held-out generator
// produces only those, so no held-out date was seen in any format during training.
//
// Years span 1900–2099. Two-digit years ("3/3/98") follow a fixed pivot: 00–49 → 20xx,
// 50–99 → 19xx, and only dates of 1950–2049 are written with two digits.

import { mulberry32 } from "@wasmformer/core";

const MONTHS = [
  "january",
  "february",
  "march",
  "april",
  "may",
  "june",
  "july",
  "august",
  "september",
  "october",
  "november",
  "december",
];
const MON = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const DY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** Special tokens, ids 0–3 in both vocabularies. */
export const SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"];
/** Source characters: every character the formats use (the input is lower-cased first). */
export const SRC_VOCAB = [...SPECIALS, ..."abcdefghijklmnopqrstuvwxyz0123456789 ,./-'"];
/** Target characters. */
export const TGT_VOCAB = [...SPECIALS, ..."0123456789-"];
export const EOS = 2;
/** ISO date plus EOS. */
export const MAX_TARGET_LENGTH = 11;

const DAY_MS = 86_400_000;
const EPOCH = Date.UTC(1900, 0, 1);
const SPAN = Math.round((Date.UTC(2100, 0, 1) - EPOCH) / DAY_MS);

/** The seeded generator (core's mulberry32). */
export const rng = mulberry32;

const pad2 = (n) => String(n).padStart(2, "0");
const ordinal = (d) => {
  const t = d % 10;
  const suffix = d % 100 >= 11 && d % 100 <= 13 ? "th" : t === 1 ? "st" : t === 2 ? "nd" : t === 3 ? "rd" : "th";
  return `${d}${suffix}`;
};

/** Whether a day number belongs to the held-out split. */
export const isHeldOut = (dayNumber) => dayNumber % 10 === 0;

/**
 * The written forms of one date (y, m 1–12, d, weekday 0 = Monday); `pick` chooses among
 * alternatives. Returns one string.
 */
function write(y, m, d, wd, pick) {
  const month = MONTHS[m - 1];
  const mon = MON[m - 1];
  const yy = pad2(y % 100);
  const short = y >= 1950 && y < 2050;
  const yr = () => (short && pick(4) === 0 ? `'${yy}` : String(y));
  const padded = pick(2) === 1; // numeric day and month: both zero-padded or neither
  const dd = () => (padded ? pad2(d) : String(d));
  const mm = () => (padded ? pad2(m) : String(m));
  const day = () => (pick(2) ? ordinal(d) : String(d));
  const mname = () => (pick(3) === 0 ? mon : month);
  const weekday = () => (pick(2) ? DAYS[wd] : DY[wd]);
  const forms = [
    () => `${mname()} ${day()}, ${yr()}`, // march 3rd, 1998
    () => `${mname()} ${day()} ${yr()}`, // march 3 1998
    () => `${day()} ${mname()} ${yr()}`, // 3 march 1998
    () => `${ordinal(d)} of ${month} ${yr()}`, // 3rd of march 1998
    () => `the ${ordinal(d)} of ${month}, ${y}`, // the 3rd of march, 1998
    () => `${weekday()}, ${mname()} ${day()}, ${yr()}`, // tuesday, march 3rd, 1998
    () => `${weekday()} ${day()} ${mname()} ${yr()}`, // tue 3 march 1998
    () => `${mname()} ${dd()}, ${y}`, // mar 03, 1998
    () => `${dd()}-${mon}-${y}`, // 03-mar-1998
    () => `${y}-${pad2(m)}-${pad2(d)}`, // 1998-03-03
    () => `${y}/${pad2(m)}/${pad2(d)}`, // 1998/03/03
    () => `${y}.${mm()}.${dd()}`, // 1998.3.3
    // numeric day-month orders are ambiguous: US order (m/d) with "/", day first with "." and "-"
    () => `${mm()}/${dd()}/${short && pick(2) ? yy : y}`, // 3/3/98
    () => `${weekday()}, ${mm()}/${dd()}/${short && pick(2) ? yy : y}`, // tuesday, 3/3/98
    () => {
      const s = pick(2) ? "." : "-";
      return `${dd()}${s}${mm()}${s}${short && pick(2) ? yy : y}`; // 03.03.1998
    },
  ];
  return forms[pick(forms.length)]();
}

/** One pair from day number `n`: `{ text, iso }`. */
export function dateOf(n, pick) {
  const dt = new Date(EPOCH + n * DAY_MS);
  const y = dt.getUTCFullYear();
  const m = dt.getUTCMonth() + 1;
  const d = dt.getUTCDate();
  const wd = (dt.getUTCDay() + 6) % 7;
  let text = write(y, m, d, wd, pick);
  if (pick(5) === 0)
    text = text[0].toUpperCase() + text.slice(1); // "March 3rd, 1998"
  else if (pick(12) === 0) text = text.toUpperCase();
  return { text, iso: `${y}-${pad2(m)}-${pad2(d)}` };
}

/** `n` seeded pairs of the split (`heldOut` false = training dates). */
export function datePairs(n, seed, heldOut = false) {
  const rand = rng(seed);
  const pick = (k) => Math.floor(rand() * k);
  const out = [];
  while (out.length < n) {
    const day = pick(SPAN);
    if (isHeldOut(day) !== heldOut) continue;
    out.push(dateOf(day, pick));
  }
  return out;
}

const srcIndex = new Map(SRC_VOCAB.map((c, i) => [c, i]));
const tgtIndex = new Map(TGT_VOCAB.map((c, i) => [c, i]));

/** A pair as ids: `{ src, tgt }` (target ending with EOS), the model's training example. */
export function toExample({ text, iso }) {
  const src = [...text.toLowerCase()].map((c) => {
    const id = srcIndex.get(c);
    if (id === undefined)
      throw new Error(`character ${JSON.stringify(c)} of ${JSON.stringify(text)} is not in SRC_VOCAB`);
    return id;
  });
  return { src, tgt: [...[...iso].map((c) => tgtIndex.get(c)), EOS] };
}
