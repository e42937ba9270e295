/**
 * Small byte helpers shared by the launch modules: strict base64, little-endian integers and "path or base64" inputs
 * as sevctl accepts them.
 */
import fs from 'node:fs';
import { decodeStrictBase64 } from '../util/base64.js';
import { LaunchInputError } from './errors.js';

/**
 * `value` under the one strict base64 rule (lib/util/base64.ts), after removing the whitespace around
 * it that a file or a shell adds; LaunchInputError naming `what` otherwise.
 */
export function decodeBase64(value: string, what: string): Buffer {
  const b = decodeStrictBase64(value.trim());
  if (!b) throw new LaunchInputError(`${what}: not valid base64`, 'ERR_BASE64');
  return b;
}

/**
 * sevctl's "path or base64": a value naming an existing file is read raw,
 * anything else must be base64. `size` (if given) is enforced either way.
 */
export function readPathOrBase64(value: string, what: string, size?: number): Buffer {
  let buf: Buffer;
  let from: string;
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(value);
  } catch {
    st = undefined;
  }
  if (st) {
    if (!st.isFile()) throw new LaunchInputError(`${what}: ${value} is not a regular file`, 'ERR_INPUT_FILE');
    buf = fs.readFileSync(value);
    from = value;
  } else {
    // A missing file and bad base64 look alike; valid base64 wins, then the message guesses the intent.
    if (!decodeStrictBase64(value.trim())?.length) {
      if (looksLikePath(value)) throw new LaunchInputError(`${what}: ${value}: no such file`, 'ERR_INPUT_FILE');
      // The value is not echoed: it may be a (mistyped) key.
      throw new LaunchInputError(`${what}: value is neither an existing file nor valid base64`, 'ERR_BASE64');
    }
    buf = decodeBase64(value, what);
    from = 'base64 value';
  }
  if (size !== undefined && buf.length !== size) {
    buf.fill(0); // a wrong-sized key is still key material
    throw new LaunchInputError(`${what}: ${from} has ${buf.length} bytes, expected ${size}`, 'ERR_LENGTH');
  }
  return buf;
}

/** A value that is clearly meant as a path (so "not found" beats "bad base64" in the message). */
function looksLikePath(v: string): boolean {
  return v.startsWith('/') || v.startsWith('./') || v.startsWith('../') || /\.(bin|b64|txt|fd|cert|blob)$/i.test(v);
}

/** Read a whole file with a one-line error naming it. */
export function readFileChecked(file: string, what: string): Buffer {
  try {
    // `-` is stdin, as in the CLI's file arguments.
    if (file === '-') return fs.readFileSync(0);
    const st = fs.statSync(file);
    if (!st.isFile()) throw new LaunchInputError(`${what}: ${file} is not a regular file`, 'ERR_INPUT_FILE');
    return fs.readFileSync(file);
  } catch (e) {
    if (e instanceof LaunchInputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code ?? e);
    throw new LaunchInputError(`${what}: ${file}: ${why}`, 'ERR_INPUT_FILE');
  }
}

export function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** Require an exact byte length for a key/nonce/etc. */
export function expectLength(buf: Uint8Array, size: number, what: string): Buffer {
  if (!(buf instanceof Uint8Array)) throw new LaunchInputError(`${what}: expected bytes`, 'ERR_LENGTH');
  if (buf.length !== size) throw new LaunchInputError(`${what}: has ${buf.length} bytes, expected ${size}`, 'ERR_LENGTH', 'INVALID_LEN');
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Zero a secret buffer (best effort: V8 may have copied it, but our copies die here). */
export function wipe(...bufs: (Uint8Array | undefined | null)[]): void {
  for (const b of bufs) if (b) b.fill(0);
}

/** Bound on a kernel or initrd read from a pipe or character device (a regular file is read whole). */
export const MAX_STREAM_INPUT_BYTES = 1 << 30;

/**
 * Read a kernel/initrd-style input as sevctl and sev-snp-measure do: a regular file, or a character device
 * or FIFO (/dev/null, process substitution) read to its end, bounded by `maxBytes`. Directories and other
 * types are refused. Throws LaunchInputError (ERR_INPUT_FILE) with one line naming the file.
 */
export function readInputFile(file: string, what: string, maxBytes = MAX_STREAM_INPUT_BYTES): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return readFileChecked(file, what);
  }
  if (st.isFile()) return readFileChecked(file, what);
  if (!st.isCharacterDevice() && !st.isFIFO())
    throw new LaunchInputError(`${what}: ${file} is ${st.isDirectory() ? 'a directory' : 'not a regular file, character device or pipe'}`, 'ERR_INPUT_FILE');
  let fd: number | undefined;
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) throw new LaunchInputError(`${what}: ${file} gives more than ${maxBytes} bytes`, 'ERR_INPUT_FILE');
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
  } catch (e) {
    if (e instanceof LaunchInputError) throw e;
    throw new LaunchInputError(`${what}: ${file}: ${String((e as NodeJS.ErrnoException).code ?? e)}`, 'ERR_INPUT_FILE');
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  return Buffer.concat(chunks, total);
}
