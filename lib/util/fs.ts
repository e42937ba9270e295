/** File writing shared by every module that must never leave half a file behind. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SevkitError } from '../errors.js';

/**
 * Write `file` through a fresh temp file in the same directory and a rename, so a
 * reader (QEMU, a later run, another process) sees the old file or the whole new
 * one, never a torn one; the temp file is removed on failure. The mode is applied
 * explicitly because the umask would otherwise loosen or tighten it. Errors are
 * rethrown as they are (callers turn them into their own typed errors).
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(tmp, data, { mode, flag: 'wx' });
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
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
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
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
