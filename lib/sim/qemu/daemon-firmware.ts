/**
 * GuestFirmware over the simulator daemon (SimClient): the guest shares the
 * platform model with /dev/sev, so PLATFORM_STATUS shows it (WORKING, guest
 * count) and the daemon decommissions it when this wrapper's connection
 * closes, even after a SIGKILL.
 */
import { CallsFirmware, type GuestFirmware } from './firmware.js';

/** `onLost` runs once if the daemon goes away under the open connection (the simulator stopped). */
export async function openDaemonFirmware(socketPath: string, onLost?: (e: Error) => void): Promise<GuestFirmware> {
  const { SimClient } = await import('../client.js');
  const c = await SimClient.connect(socketPath);
  if (onLost) c.onLost(onLost);
  return new CallsFirmware('daemon', c);
}
