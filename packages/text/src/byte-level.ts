/**
 * Byte-level helpers of GPT-2's tokenizer (openai/gpt-2 `src/encoder.py`, HF `ByteLevel`): every
 * byte maps to a printable unicode character, so that a BPE vocabulary of strings covers all byte
 * sequences without an unknown token.
 */

/** GPT-2's pre-tokenization pattern (contractions, letters, numbers, other, whitespace). */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/**
 * `bytes_to_unicode()`: bytes `!`..`~`, `¡`..`¬`, `®`..`ÿ` map to themselves, the other 68 bytes to
 * U+0100 upwards, in byte order. Returns the 256 characters indexed by byte.
 */
function buildByteToChar(): string[] {
  const keep = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(keep(b) ? b : 256 + n++);
  return out;
}

/** Byte → its GPT-2 unicode character. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** GPT-2 unicode character (UTF-16 code unit) → byte, or −1. */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(512).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => {
    t[c.charCodeAt(0)] = b;
  });
  return t;
})();

const utf8 = new TextEncoder();

/** The byte-level string of a text: its UTF-8 bytes, each as its GPT-2 character. */
export function toByteChars(text: string): string {
  const bytes = utf8.encode(text);
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

/**
 * Bytes of a byte-level token string, or null when a character is not a byte character (a token
 * that is not byte-level, e.g. an added token).
 */
export function byteCharsToBytes(token: string, out: number[]): boolean {
  const start = out.length;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < 512 ? CHAR_TO_BYTE[c] : -1;
    if (b < 0) {
      out.length = start;
      return false;
    }
    out.push(b);
  }
  return true;
}

/**
 * For each UTF-8 byte of `text`, the UTF-16 offsets `[start, end)` of the character it belongs to
 * (so that a token covering part of a character maps to the whole character).
 */
export function byteOffsets(text: string): { starts: Int32Array; ends: Int32Array } {
  const n = utf8.encode(text).length;
  const starts = new Int32Array(n);
  const ends = new Int32Array(n);
  let b = 0;
  for (let i = 0; i < text.length; ) {
    const c = text.codePointAt(i)!;
    const units = c > 0xffff ? 2 : 1;
    const nb = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    for (let k = 0; k < nb; k++) {
      starts[b + k] = i;
      ends[b + k] = i + units;
    }
    b += nb;
    i += units;
  }
  return { starts, ends };
}
