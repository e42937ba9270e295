/**
 * The environment variables sevkit's commands honour, read in this one place
 * and handed to the library as options (the library never reads the
 * environment, so a daemon that embeds it does not change behaviour with its
 * environment). README "Environment" lists the same names.
 */
import path from 'node:path';
import { cacheDir, simStateDir } from '../util/cache-dir.js';

/** What the environment asks for; undefined where it says nothing. */
export interface SevkitEnv {
  /** $SEVKIT_DEVICE: the SEV device instead of /dev/sev. */
  device: string | undefined;
  /** $SEVKIT_HOST_ROOT: a fake host root the host probes read under (the simulator's). */
  hostRoot: string | undefined;
  /** $SEVKIT_CPUID: a CPUID JSON file instead of the CPU's own (the simulator's). */
  cpuidFile: string | undefined;
  /** $SEVKIT_QEMU: the QEMU binary. */
  qemu: string | undefined;
  /** $SEVKIT_OVMF_DIRS (':'-separated): where OVMF images are looked for. */
  ovmfDirs: string[] | undefined;
  /** $SEVKIT_SIM_STATE: the running simulator's state directory (inside `sevkit sim`). */
  simState: string | undefined;
  /** $SEVKIT_SIM_SOCKET: the running simulator's socket (inside `sevkit sim`). */
  simSocket: string | undefined;
  /** sevkit's cache directory ($XDG_CACHE_HOME/sevkit, else ~/.cache/sevkit). */
  cacheDir: string;
  /** The simulator's default state directory (<cacheDir>/sim). */
  defaultSimState: string;
  /** $SEVKIT_KDS_CACHE, else <cacheDir>/kds: where CEKs fetched from AMD's KDS are kept. */
  kdsCacheDir: string;
  /** <cacheDir>/qemu-version.json: sev-status's cache of `qemu --version`. */
  qemuVersionCache: string;
  /** $SEVKIT_DEMO_DIR: the outer `sevkit demo`'s work directory, seen by the inner one. */
  demoDir: string | undefined;
}

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

/** Reads `env` (default: this process's) once into the options the library takes. */
export function sevkitEnv(env: NodeJS.ProcessEnv = process.env): SevkitEnv {
  const cache = cacheDir(nonEmpty(env.XDG_CACHE_HOME));
  const dirs = nonEmpty(env.SEVKIT_OVMF_DIRS);
  return {
    device: nonEmpty(env.SEVKIT_DEVICE),
    hostRoot: nonEmpty(env.SEVKIT_HOST_ROOT),
    cpuidFile: nonEmpty(env.SEVKIT_CPUID),
    qemu: nonEmpty(env.SEVKIT_QEMU),
    ovmfDirs: dirs ? dirs.split(':').filter(Boolean) : undefined,
    simState: nonEmpty(env.SEVKIT_SIM_STATE),
    simSocket: nonEmpty(env.SEVKIT_SIM_SOCKET),
    cacheDir: cache,
    defaultSimState: simStateDir(nonEmpty(env.XDG_CACHE_HOME)),
    kdsCacheDir: nonEmpty(env.SEVKIT_KDS_CACHE) ?? path.join(cache, 'kds'),
    qemuVersionCache: path.join(cache, 'qemu-version.json'),
    demoDir: nonEmpty(env.SEVKIT_DEMO_DIR),
  };
}
