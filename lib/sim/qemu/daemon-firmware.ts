/**
 * GuestFirmware over the simulator daemon (SimClient): the guest shares the
 * platform model with /dev/sev, so PLATFORM_STATUS shows it (WORKING, guest
 * count) and the daemon decommissions it when this wrapper's connection
 * closes, even after a SIGKILL.
 */
import { CallsFirmware, type GuestFirmware } from './firmware.js';

/** The guest firmware of the daemon at `socketPath`; `tag` names this wrapper in the daemon's fault filters. */
export async function openDaemonFirmware(socketPath: string, tag?: string): Promise<GuestFirmware> {
  const { SimClient } = await import('../client.js');
  return new CallsFirmware('daemon', await SimClient.connect(socketPath, { tag }));
}
