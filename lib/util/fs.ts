/** File writing shared by every module that must never leave half a file behind. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

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
