/**
 * GuestFirmware over the simulator daemon (SimClient). Filled in against the
 * sim area's client API; until it exists, opening fails and the wrapper
 * falls back to the in-process firmware over SEVKIT_SIM_STATE.
 */
import type { GuestFirmware } from './firmware.js';

export async function openDaemonFirmware(socketPath: string): Promise<GuestFirmware> {
  throw new Error(`SimClient is not available yet (daemon ${socketPath})`);
}
