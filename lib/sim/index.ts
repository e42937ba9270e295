/**
 * The software SEV platform (simulator): a TEST platform that answers the
 * /dev/sev ioctls of the unchanged addon through an LD_PRELOAD shim, and the
 * guest-launch firmware commands for the simulator's QEMU wrapper. Its ARK/ASK
 * are the simulator's own test roots; nothing it does proves anything about
 * real AMD hardware.
 */
import { SimPlatform, type SimPlatformOptions } from './platform.js';

export { SimPlatform, SimStateError } from './platform.js';
export type { SimPlatformOptions } from './platform.js';
export { SimDaemon } from './daemon.js';
export type { SimDaemonOptions } from './daemon.js';
export { SimClient, SimClientError } from './client.js';
export type { SimApi } from './client.js';
export { startSim } from './session.js';
export type { SimSession, StartSimOptions } from './session.js';
export { SimFirmwareError } from './guests.js';
export { findShim, prepareSimHost, simEnv, SimEnvError, SIM_BANNER } from './env.js';
export type { SimHost } from './env.js';
export { simStateDir } from '../util/cache-dir.js';
export { TEST_ROOT_ID_PREFIX } from './keys.js';
export { simulatorCaChain } from './ca-chain.js';
export { SIM_GUEST_ENV, simGuestDevice, linkSnpLaunch, readSnpLaunchRecord, SimGuestUnknownError } from './snp/launch-link.js';

/** In-process simulated platform on a state dir (created from the seed when empty). */
export function createSimPlatform(stateDir: string, seed?: string | number, opts: Omit<SimPlatformOptions, 'seed'> = {}): SimPlatform {
  return SimPlatform.open(stateDir, seed === undefined ? opts : { ...opts, seed });
}
