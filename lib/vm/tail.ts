import fs from 'node:fs';
/** Keeps the last `limit` bytes written to it: enough of QEMU's stderr to explain a crash. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit = 8192) {}

  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size - this.chunks[0]!.length >= this.limit) this.size -= this.chunks.shift()!.length;
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }

  /** The last `n` non-empty lines joined on one line, for error messages. */
  lastLines(n = 6): string {
    return this.text()
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-n)
      .join(' | ');
  }
}

/**
 * The last `limit` bytes of a log file QEMU writes (its stdout/stderr go to
 * files in the VM's run dir, not pipes, so QEMU outlives the supervisor that
 * started it without writing into a broken pipe). `snapshot()` keeps the tail
 * in memory before the file is removed with the run dir.
 */
export class FileTail {
  private cached = '';
  constructor(
    readonly file: string,
    private readonly limit = 8192,
  ) {}

  text(): string {
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.file, 'r');
      const size = fs.fstatSync(fd).size;
      const n = Math.min(size, this.limit);
      const b = Buffer.alloc(n);
      fs.readSync(fd, b, 0, n, size - n);
      return b.toString('utf8');
    } catch {
      return this.cached;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  snapshot(): void {
    this.cached = this.text();
  }

  /** The last `n` non-empty lines joined on one line, for error messages. */
  lastLines(n = 6): string {
    return this.text()
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-n)
      .join(' | ');
  }
}
