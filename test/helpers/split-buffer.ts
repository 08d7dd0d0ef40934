/**
 * @module test/helpers/split-buffer
 * Cuts a byte buffer into chunks at given offsets, as a network would, for stream re-framing tests.
 */

/** Chunks of `buffer` cut at each distinct offset, in order; empty chunks appear where offsets repeat the ends. */
export function splitAt(buffer: Buffer, offsets: readonly number[]): Buffer[] {
  const sorted = [...new Set(offsets)].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let last = 0;
  for (const offset of sorted) {
    parts.push(buffer.subarray(last, offset));
    last = offset;
  }
  parts.push(buffer.subarray(last));
  return parts;
}
