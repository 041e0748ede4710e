// Big-endian reads and writes, and small copies, as plain index arithmetic.
// Buffer's own methods validate their arguments through Node's
// hideStackFrames wrappers (a rest-arguments array per call when a caller is
// not inlined) and `copy` makes a Uint8Array view per call; on the forward
// path these showed in profiles. Callers check bounds first, as the parsers do.

export function u16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

export function u32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

export function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v;
}

export function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = v >>> 16;
  b[off + 2] = v >>> 8;
  b[off + 3] = v;
}

/** Copies src[from, to) to dst at `at`; byte by byte when short, where that beats a native call. */
export function copyBytes(src: Uint8Array, dst: Uint8Array, at: number, from: number, to: number): void {
  const n = to - from;
  if (n > 64) {
    dst.set(src.subarray(from, to), at);
    return;
  }
  for (let i = 0; i < n; i++) dst[at + i] = src[from + i]!;
}
