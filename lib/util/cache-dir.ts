/** Where the simulator keeps its state and caches (atomic writes are lib/util/fs.ts). */
import os from 'node:os';
import path from 'node:path';

/** $XDG_CACHE_HOME/sevkit, else ~/.cache/sevkit. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'sevkit');
}

/** Default state dir of `sevkit sim`. */
export function defaultStateDir(): string {
  return path.join(defaultCacheDir(), 'sim');
}
