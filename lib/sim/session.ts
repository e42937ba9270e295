/**
 * One running simulator: the daemon on a state dir plus the environment that
 * routes child processes to it. Used by `sevkit sim` and the test global setup.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SimDaemon } from './daemon.js';
import { SHIM_FILE, findShim, prepareSimHost, simEnv, type SimHost } from './env.js';
import { simStateDir } from '../util/cache-dir.js';
import { writeFileAtomic } from '../util/fs.js';
import type { SimPlatformOptions } from './platform.js';

/**
 * Options of startSim: the simulated platform's options, the state directory (default under the XDG cache) and
 * the socket path.
 */
export interface StartSimOptions extends SimPlatformOptions {
  /** Default: ~/.cache/sevkit/sim (or $XDG_CACHE_HOME/sevkit/sim). */
  stateDir?: string;
  socketPath?: string;
}

/**
 * A running simulator: its daemon, state dir, socket, shim, the simulated host, and the environment that routes
 * child processes to it.
 */
export interface SimSession {
  daemon: SimDaemon;
  stateDir: string;
  socketPath: string;
  shim: string;
  host: SimHost;
  /** process.env plus the simulator variables (LD_PRELOAD, SEVKIT_SIM_SOCKET, ...). */
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

/**
 * Starts a simulator on a state dir and returns the environment for child processes; throws SimEnvError when the
 * shim is not built, SimStateError on an unusable state dir.
 */
export async function startSim(opts: StartSimOptions = {}): Promise<SimSession> {
  const shim = findShim(); // fail before creating anything when the shim is missing
  const daemon = await SimDaemon.start(opts.stateDir ?? simStateDir(), opts);
  try {
    const stateDir = daemon.platform.stateDir;
    const host = prepareSimHost(stateDir, daemon.platform.kernel, daemon.platform.product);
    const preload = privateShim(shim, stateDir);
    const env = simEnv({ socketPath: daemon.socketPath, stateDir, shim: preload, host });
    return { daemon, stateDir, socketPath: daemon.socketPath, shim: preload, host, env, close: () => daemon.close() };
  } catch (e) {
    await daemon.close();
    throw e;
  }
}

/**
 * A copy of the shim inside the state dir, so that rebuilding the package
 * (node-gyp rebuild empties build/) while the simulator runs does not pull the
 * library out from under new child processes. LD_PRELOAD splits on spaces and
 * colons, so a state dir with those keeps the original path.
 */
function privateShim(shim: string, stateDir: string): string {
  const dest = path.join(stateDir, 'lib', SHIM_FILE);
  if (/[\s:]/.test(dest)) return shim;
  try {
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    writeFileAtomic(dest, fs.readFileSync(shim), 0o755);
    return dest;
  } catch {
    return shim;
  }
}
