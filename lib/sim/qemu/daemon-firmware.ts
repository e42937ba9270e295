/**
 * GuestFirmware over the simulator daemon (SimClient): the guest shares the
 * platform model with /dev/sev, so PLATFORM_STATUS shows it (WORKING, guest
 * count) and the daemon decommissions it when this wrapper's connection
 * closes, even after a SIGKILL.
 */
import { CallsFirmware, type GuestFirmware } from './firmware.js';

/**
 * The guest firmware of the daemon at `socketPath`. `tag` names this wrapper in the daemon's fault filters;
 * `onLost` runs once if the daemon goes away under the open connection (the simulator stopped).
 */
export async function openDaemonFirmware(socketPath: string, opts: { tag?: string | undefined; onLost?: (e: Error) => void } = {}): Promise<GuestFirmware> {
  const { SimClient } = await import('../client.js');
  const c = await SimClient.connect(socketPath, { tag: opts.tag });
  if (opts.onLost) c.onLost(opts.onLost);
  return new CallsFirmware('daemon', c);
}
