// --round-robin: rotate runs of A/AAAA records in a reply's answer section,
// in place, without decoding. Only runs whose owners are compression
// pointers are moved: nothing can point into such a record, so moving its
// bytes breaks no pointer.
import { skipName } from './message.js';

const A = 1;
const AAAA = 28;

/** Rotates each run of same-owner A or AAAA records by `turn`; `qEnd` is where the answer section starts. */
export function rotateAnswers(buf: Buffer, qEnd: number, turn: number): void {
  const ancount = buf.readUInt16BE(6);
  if (ancount < 2) return;
  const starts: number[] = [];
  const types: number[] = [];
  const owners: number[] = [];
  let off = qEnd;
  for (let i = 0; i < ancount; i++) {
    const start = off;
    const nameEnd = skipName(buf, off, true);
    if (nameEnd < 0 || nameEnd + 10 > buf.length) return;
    const pointer = nameEnd - start === 2 && (buf[start]! & 0xc0) === 0xc0;
    starts.push(start);
    types.push(buf.readUInt16BE(nameEnd));
    owners.push(pointer ? buf.readUInt16BE(start) : -1);
    off = nameEnd + 10 + buf.readUInt16BE(nameEnd + 8);
    if (off > buf.length) return;
  }
  starts.push(off);
  for (let i = 0; i < ancount; ) {
    let j = i + 1;
    const rotatable = (types[i] === A || types[i] === AAAA) && owners[i]! >= 0;
    while (rotatable && j < ancount && types[j] === types[i] && owners[j] === owners[i]) j++;
    const n = j - i;
    if (rotatable && n > 1 && turn % n !== 0) {
      const from = starts[i]!;
      const to = starts[j]!;
      const k = turn % n;
      // The run's records from the k-th one on, then the first k.
      const rotated = Buffer.concat([buf.subarray(starts[i + k]!, to), buf.subarray(from, starts[i + k]!)]);
      rotated.copy(buf, from);
    }
    i = j;
  }
}
