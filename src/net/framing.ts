// RFC 1035 §4.2.2 / RFC 7766 TCP framing: a 2-byte length before each message.
// Bytes may arrive one at a time or many messages at once.

export function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(msg.length + 2);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

/** Collects stream chunks and hands out whole messages. */
export class FrameReader {
  private buf: Buffer | null = null;

  /** Bytes of an unfinished message are waiting. */
  get partial(): boolean {
    return this.buf !== null;
  }

  /** Calls `onMessage` for each complete message in the stream so far. */
  push(chunk: Buffer, onMessage: (msg: Buffer) => void): void {
    const data = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    let off = 0;
    while (data.length - off >= 2) {
      const len = data.readUInt16BE(off);
      if (data.length - off - 2 < len) break;
      onMessage(data.subarray(off + 2, off + 2 + len));
      off += 2 + len;
    }
    this.buf = off < data.length ? Buffer.from(data.subarray(off)) : null;
  }
}
