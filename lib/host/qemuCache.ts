/**
 * `qemu-system-x86_64 --version` is the slowest thing sev-status does (exec of a large,
 * dynamically linked binary: tens of milliseconds, more under load). Its answer only
 * changes when the binary does, so sev-status remembers it per binary identity
 * (resolved path, inode, size, mtime) in a small cache file. Any cache problem just
 * means asking QEMU again; the cache never decides anything on its own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { probeQemu, type QemuFact } from './probes.js';
import { cacheDir } from '../util/cache-dir.js';

const MAX_ENTRIES = 32;

/** The cache file when none is given: ~/.cache/sevkit/qemu-version.json (the CLI passes $XDG_CACHE_HOME's). */
export function defaultCacheFile(): string {
  return path.join(cacheDir(), 'qemu-version.json');
}

/** Resolve a command like execvp would, searching `searchPath` (':'-separated, the caller's $PATH) for bare names. */
export function resolveCommand(command: string, searchPath: string): string | null {
  const isExec = (p: string) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (command.includes('/')) return isExec(command) ? path.resolve(command) : null;
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, command);
    if (isExec(p)) return p;
  }
  return null;
}

function identity(file: string): string | null {
  try {
    const real = fs.realpathSync(file);
    const st = fs.statSync(real);
    return `${real}|${st.ino}|${st.size}|${st.mtimeMs}`;
  } catch {
    return null;
  }
}

type CacheDoc = { entries: Record<string, { version: string; banner: string | null; at: number }> };

function readCache(file: string): CacheDoc {
  try {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as CacheDoc;
    if (doc && typeof doc.entries === 'object' && doc.entries) return doc;
  } catch {
    /* missing or corrupt: start afresh */
  }
  return { entries: {} };
}

/** Only a miss writes: fsutil (and node:crypto under it) stays out of a cached run's start-up. */
async function writeCache(file: string, doc: CacheDoc): Promise<void> {
  try {
    const { writeFileAtomic } = await import('../util/fs.js');
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileAtomic(file, `${JSON.stringify(doc)}\n`, 0o600);
  } catch {
    /* read-only home, ProtectHome=, ...: the next run asks QEMU again */
  }
}

export interface QemuCacheOptions {
  /** Cache file; null disables the cache. Default: defaultCacheFile(). */
  cacheFile?: string | null;
  /** $PATH to resolve a bare command name in (the cache is keyed by the resolved binary); without it a bare name is not cached. */
  searchPath?: string;
  timeoutMs?: number;
}

/** probeQemu with the per-binary cache. `cached` tells whether QEMU was run. */
export async function probeQemuCached(command: string, opts: QemuCacheOptions = {}): Promise<QemuFact & { cached: boolean }> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const cacheFile = opts.cacheFile === undefined ? defaultCacheFile() : opts.cacheFile;
  const resolved = cacheFile ? resolveCommand(command, opts.searchPath ?? '') : null;
  const key = resolved ? identity(resolved) : null;
  if (!cacheFile || !key) return { ...(await probeQemu(command, timeoutMs)), cached: false };
  const doc = readCache(cacheFile);
  const hit = doc.entries[key];
  if (hit && typeof hit.version === 'string') return { command, found: true, version: hit.version, banner: hit.banner ?? null, cached: true };
  const fact = await probeQemu(command, timeoutMs);
  if (fact.found && fact.version && !fact.error) {
    const fresh = readCache(cacheFile);
    fresh.entries[key] = { version: fact.version, banner: fact.banner, at: Date.now() };
    const keys = Object.keys(fresh.entries).sort((a, b) => (fresh.entries[b]!.at ?? 0) - (fresh.entries[a]!.at ?? 0));
    for (const k of keys.slice(MAX_ENTRIES)) delete fresh.entries[k];
    await writeCache(cacheFile, fresh);
  }
  return { ...fact, cached: false };
}
