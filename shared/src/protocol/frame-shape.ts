/**
 * A bound on what a client frame may cost to decode, checked before it is parsed. `JSON.parse` costs
 * little per byte of a string but much per value: a 64 KB frame of 5,400 keys takes ~40 times as long
 * to decode (and to validate, and to copy) as a 64 KB string. No valid frame needs more than a few
 * values, so a frame with more, or nested deeper, is refused without being parsed.
 */

/** Values (object members and array elements, counted by their separators) a client frame may hold. */
export const MAX_FRAME_VALUES = 64;

/** Levels of objects and arrays a client frame may nest. */
export const MAX_FRAME_DEPTH = 8;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Why `text` is too complex to parse, or undefined when it is within the bounds (or not JSON at all:
 * `JSON.parse` says so). One pass that jumps over strings with `indexOf`, so it costs about as much as
 * reading the text once, and it stops at the first value over the bound: a frame of many keys is
 * refused after reading its first few hundred bytes.
 */
export function frameTooComplex(
  text: string,
  maxValues: number = MAX_FRAME_VALUES,
  maxDepth: number = MAX_FRAME_DEPTH,
): string | undefined {
  let values = 0;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = closingQuote(text, i);
      if (i < 0) return undefined; // An unterminated string: malformed, JSON.parse refuses it.
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return `frame nests deeper than ${maxDepth} levels`;
      if (++values > maxValues) return `frame holds more than ${maxValues} values`;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    } else if (c === COMMA) {
      if (++values > maxValues) return `frame holds more than ${maxValues} values`;
    }
  }
  return undefined;
}

/** The index of the quote closing the string opened at `open`, or -1 when there is none. */
function closingQuote(text: string, open: number): number {
  let at = text.indexOf('"', open + 1);
  while (at >= 0) {
    let backslashes = 0;
    for (let k = at - 1; k > open && text.charCodeAt(k) === BACKSLASH; k--) backslashes++;
    if (backslashes % 2 === 0) return at;
    at = text.indexOf('"', at + 1);
  }
  return -1;
}
