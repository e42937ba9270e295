/**
 * A newline splitter with a hard cap on the bytes it will hold for one line,
 * so a peer that never sends '\n' cannot grow our memory without bound.
 */
export class LineTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`line longer than ${limit} bytes`);
  }
}

export class LineBuffer {
  private parts: Buffer[] = [];
  private held = 0;

  constructor(private readonly maxLineBytes: number) {}

  /** Feeds a chunk; returns the complete lines (without '\r\n' / '\n'). Throws LineTooLongError. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      if (this.held + piece.length > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes);
      let line: Buffer = this.held ? Buffer.concat([...this.parts, piece]) : piece;
      this.parts = [];
      this.held = 0;
      if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
      lines.push(line.toString('utf8'));
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (rest.length) {
      if (this.held + rest.length > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes);
      // Copy: the caller's chunk may be reused by the stream.
      this.parts.push(Buffer.from(rest));
      this.held += rest.length;
    }
    return lines;
  }
}
