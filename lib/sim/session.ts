/**
 * One running simulator: the daemon on a state dir plus the environment that
 * routes child processes to it. Used by `sevkit sim` and the test global setup.
 */
import { SimDaemon } from './daemon.js';
import { findShim, prepareSimHost, simEnv, type SimHost } from './env.js';
import { defaultStateDir } from './fsutil.js';
import type { SimPlatformOptions } from './platform.js';

export interface StartSimOptions extends SimPlatformOptions {
  /** Default: ~/.cache/sevkit/sim (or $XDG_CACHE_HOME/sevkit/sim). */
  stateDir?: string;
  socketPath?: string;
}

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

export async function startSim(opts: StartSimOptions = {}): Promise<SimSession> {
  const shim = findShim(); // fail before creating anything when the shim is missing
  const daemon = await SimDaemon.start(opts.stateDir ?? defaultStateDir(), opts);
  try {
    const stateDir = daemon.platform.stateDir;
    const host = prepareSimHost(stateDir);
    const env = simEnv({ socketPath: daemon.socketPath, stateDir, shim, host });
    return { daemon, stateDir, socketPath: daemon.socketPath, shim, host, env, close: () => daemon.close() };
  } catch (e) {
    await daemon.close();
    throw e;
  }
}
