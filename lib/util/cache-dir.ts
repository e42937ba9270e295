/**
 * Where sevkit keeps its caches (KDS certificates, the QEMU version, the
 * simulator's state and TEST keys): one rule, the XDG base-directory one.
 * The library never reads the environment; the CLI passes $XDG_CACHE_HOME.
 */
import os from 'node:os';
import path from 'node:path';

/** `<xdgCacheHome>/sevkit` when `xdgCacheHome` is an absolute path (the XDG spec ignores relative ones), else `~/.cache/sevkit`. */
export function cacheDir(xdgCacheHome?: string): string {
  const base = xdgCacheHome && path.isAbsolute(xdgCacheHome) ? xdgCacheHome : path.join(os.homedir(), '.cache');
  return path.join(base, 'sevkit');
}

/** Default state dir of the simulator (`sevkit sim`): `<cacheDir>/sim`. */
export function simStateDir(xdgCacheHome?: string): string {
  return path.join(cacheDir(xdgCacheHome), 'sim');
}
