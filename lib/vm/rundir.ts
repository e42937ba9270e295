/**
 * Per-VM private run directories. The directory holds the QMP/monitor sockets
 * and the owner's launch blobs; it is 0700 under a 0700 root we own, so no
 * other local user can reach the sockets or swap the files QEMU reads.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensurePrivateDir, writeFileAtomic } from '../util/fs.js';

/** Where per-VM run directories go by default: $TMPDIR/sevkit-vm-<uid>. */
export function defaultRunRoot(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return path.join(os.tmpdir(), `sevkit-vm-${uid}`);
}

/**
 * Creates (or checks) the root: a real directory (not a symlink), ours, not
 * group/other-writable (UnsafeDirError otherwise, lib/fsutil's one check);
 * group/other read access is taken away.
 */
export function ensureRunRoot(root: string): void {
  ensurePrivateDir(root, 'the VM run root');
  if ((fs.lstatSync(root).mode & 0o077) !== 0) fs.chmodSync(root, 0o700);
}

export function createRunDir(root: string, name: string): string {
  ensureRunRoot(root);
  const dir = fs.mkdtempSync(path.join(root, `${name.slice(0, 24)}-`));
  fs.chmodSync(dir, 0o700);
  return dir;
}

/** Writes a key file 0600 through a temp name + rename, so QEMU never sees half a file. */
export function writePrivateFile(dir: string, name: string, content: string | Buffer): string {
  const final = path.join(dir, name);
  writeFileAtomic(final, content, 0o600);
  return final;
}

export function removeRunDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
