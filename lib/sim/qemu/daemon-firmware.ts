/**
 * GuestFirmware over the simulator daemon (SimClient): the guest shares the
 * platform model with /dev/sev, so PLATFORM_STATUS shows it (WORKING, guest
 * count) and the daemon decommissions it when this wrapper's connection
 * closes, even after a SIGKILL.
 */
import { GuestFirmwareError, type ApiInfo, type GuestFirmware, type LaunchStartArgs } from './firmware.js';
import type { SimClient } from '../client.js';

export async function openDaemonFirmware(socketPath: string): Promise<GuestFirmware> {
  const { SimClient: Client } = await import('../client.js');
  const client = await Client.connect(socketPath);
  return new DaemonFirmware(client);
}

function mapError(e: unknown): never {
  const err = e as { fwStatus?: number; fwStatusName?: string; message?: string };
  if (typeof err.fwStatus === 'number') {
    throw new GuestFirmwareError((err.fwStatusName ?? '').replace(/^SEV_RET_/, '') || 'INVALID_PARAM', err.message ?? 'firmware error', err.fwStatus);
  }
  throw e;
}

class DaemonFirmware implements GuestFirmware {
  readonly kind = 'daemon' as const;
  constructor(private readonly c: SimClient) {}
  api(): Promise<ApiInfo> {
    return this.c.api().catch(mapError);
  }
  launchStart(a: LaunchStartArgs): Promise<number> {
    return this.c.launchStart(a).catch(mapError);
  }
  launchUpdateData(handle: number, data: Buffer): Promise<void> {
    return this.c.launchUpdateData(handle, data).catch(mapError);
  }
  launchUpdateVmsa(handle: number, page: Buffer): Promise<void> {
    return this.c.launchUpdateVmsa(handle, page).catch(mapError);
  }
  launchMeasure(handle: number): Promise<Buffer> {
    return this.c.launchMeasure(handle).catch(mapError);
  }
  launchSecret(handle: number, header: Buffer, payload: Buffer, gpa: number): Promise<Buffer> {
    return this.c.launchSecret(handle, header, payload, gpa).catch(mapError);
  }
  launchFinish(handle: number): Promise<void> {
    return this.c.launchFinish(handle).catch(mapError);
  }
  decommission(handle: number): Promise<void> {
    return this.c.decommission(handle).catch(mapError);
  }
  pdhCertExport(): Promise<{ pdh: Buffer; certChain: Buffer }> {
    return this.c.pdhCertExport().catch(mapError);
  }
  getId(): Promise<Buffer> {
    return this.c.getId().catch(mapError);
  }
  close(): void {
    this.c.close();
  }
}
