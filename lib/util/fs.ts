/** File writing shared by every module that must never leave half a file behind. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SevkitError } from '../errors.js';

/** A fresh hidden temp name in `file`'s directory (same filesystem, so the final rename is atomic). */
function tempPathBeside(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Write `file` through a fresh temp file in the same directory and a rename, so a
 * reader (QEMU, a later run, another process) sees the old file or the whole new
 * one, never a torn one; the temp file is removed on failure. The mode is applied
 * explicitly because the umask would otherwise loosen or tighten it. Errors are
 * rethrown as they are (callers turn them into their own typed errors).
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempPathBeside(file);
  try {
    fs.writeFileSync(tmp, data, { mode, flag: 'wx' });
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** writeFileAtomic off the event loop (fs.promises): for files a daemon writes while serving requests. */
export async function writeFileAtomicAsync(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempPathBeside(file);
  try {
    await fs.promises.writeFile(tmp, data, { mode, flag: 'wx' });
    await fs.promises.chmod(tmp, mode);
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * writeFileAtomic that also survives a power cut or a kernel crash: the temp
 * file is fsynced before the rename and the directory after it, so a restarted
 * process finds the old record or the whole new one (used for the CRN's and
 * the supervisor's VM records).
 */
export function writeFileDurable(file: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = path.dirname(file);
  const tmp = tempPathBeside(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', mode);
    fs.writeFileSync(fd, data);
    fs.fchmodSync(fd, mode);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    /* a directory fsync is not supported everywhere; the rename is done either way */
  }
}

/**
 * writeFileDurable on libuv's thread pool: the same temp file, fsync, rename and
 * directory fsync, without holding the event loop for the disk (a daemon
 * serving other owners' requests writes its VM records with this).
 */
export async function writeFileDurableAsync(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  const tmp = tempPathBeside(file);
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(tmp, 'wx', mode);
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  let dh: fs.promises.FileHandle | undefined;
  try {
    dh = await fs.promises.open(dir, 'r');
    await dh.sync();
  } catch {
    /* a directory fsync is not supported everywhere; the rename is done either way */
  } finally {
    await dh?.close().catch(() => undefined);
  }
}

interface QueuedFileOp {
  kind: 'write' | 'remove';
  data: string | Uint8Array;
  mode: number;
  started: boolean;
}

/**
 * Durable writes and removals of files, off the event loop, in the order they
 * were asked for per file. A write asked for while an earlier one of the same
 * file is still waiting replaces it (only the newest record matters, and a burst
 * of state changes costs one fsync); a removal cancels a waiting write, so a file
 * removed is never written again by a write that was queued before it.
 */
export class DurableFileQueue {
  readonly #last = new Map<string, { op: QueuedFileOp; done: Promise<void> }>();

  /** Writes `data` to `file` (writeFileDurableAsync) after what is queued for it; rejects with the fs error. */
  write(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
    const q = this.#last.get(file);
    if (q && !q.op.started && q.op.kind === 'write') {
      q.op.data = data;
      q.op.mode = mode;
      return q.done;
    }
    return this.#enqueue(file, { kind: 'write', data, mode, started: false });
  }

  /** Removes `file` (absent is fine) after what is queued for it. */
  remove(file: string): Promise<void> {
    const q = this.#last.get(file);
    if (q && !q.op.started) {
      q.op.kind = 'remove';
      return q.done;
    }
    return this.#enqueue(file, { kind: 'remove', data: '', mode: 0, started: false });
  }

  /** Resolves once everything queued so far has been carried out (or has failed). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#last.values()].map((e) => e.done));
  }

  #enqueue(file: string, op: QueuedFileOp): Promise<void> {
    const prev = this.#last.get(file)?.done ?? Promise.resolve();
    const done = prev
      .catch(() => undefined)
      .then(() => {
        op.started = true;
        return op.kind === 'write' ? writeFileDurableAsync(file, op.data, op.mode) : fs.promises.rm(file, { force: true });
      });
    const entry = { op, done };
    this.#last.set(file, entry);
    // Handled here, so a caller that does not wait (a best-effort record update) leaves no unhandled rejection.
    done
      .catch(() => undefined)
      .finally(() => {
        if (this.#last.get(file) === entry) this.#last.delete(file);
      });
    return done;
  }
}

/** A directory that would let another local user swap key files or sockets (see ensurePrivateDir). */
export class UnsafeDirError extends SevkitError {
  constructor(
    readonly dir: string,
    message: string,
  ) {
    super('ERR_UNSAFE_DIR', message);
  }
}

/**
 * Creates `dir` (0700) if absent, then refuses it unless it is a real
 * directory (not a symlink) owned by this uid and not writable by group or
 * others: a directory someone else made or can write would let them swap
 * session files and the VMs' QMP sockets. The one home of this check (the
 * CRN service, the VM supervisor and `crn serve` all call it).
 */
export function ensurePrivateDir(dir: string, what = 'the run directory'): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') throw new UnsafeDirError(dir, `${dir}: cannot create ${what} (${code ?? (e as Error).message})`);
  }
  const st = fs.lstatSync(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    const kind = st.isSymbolicLink()
      ? 'a symlink'
      : !st.isDirectory()
        ? 'not a directory'
        : uid !== undefined && st.uid !== uid
          ? `owned by uid ${st.uid}`
          : `mode ${(st.mode & 0o777).toString(8)}`;
    throw new UnsafeDirError(dir, `${dir}: ${what} must be a directory of this user, not writable by group or others (${kind})`);
  }
}
