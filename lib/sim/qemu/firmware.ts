/**
 * The guest-launch firmware commands the QEMU wrapper needs, as KVM would
 * issue them to the PSP. One firmware model (lib/sim/guests.ts guestOp over a
 * SimPlatform), two ways to reach it:
 *  - the simulator daemon (SimClient, SEVKIT_SIM_SOCKET): guest counts and
 *    platform state stay consistent with what /dev/sev reports;
 *  - in-process, over the state directory, for running the wrapper without
 *    the daemon (its guests are invisible to /dev/sev).
 */
import fs from 'node:fs';
import path from 'node:path';
import { SevkitError } from '../../errors.js';
import { SEV_RET_MESSAGES, SevRet } from '../../platform/constants.js';
import { SimCalls } from '../client.js';
import { parseRet } from '../uapi.js';
import type { SimPlatform } from '../platform.js';
import type { GuestContext } from '../guests.js';

/**
 * QEMU's fw_error_to_str(): sev_fw_errlist covers SEV_RET_SUCCESS (an empty
 * string) up to SEV_RET_SECURE_DATA_INVALID; anything else is "unknown error".
 */
export function fwStatusText(code: number): string {
  if (!Number.isInteger(code) || code < 0 || code > SevRet.SEV_RET_SECURE_DATA_INVALID) return 'unknown error';
  if (code === SevRet.SEV_RET_SUCCESS) return '';
  return SEV_RET_MESSAGES[code] ?? 'unknown error';
}

/** A guest command the (simulated) firmware refused. */
export class GuestFirmwareError extends SevkitError {
  readonly fwStatus: number;
  /** short status name, e.g. INVALID_GUEST_STATE */
  readonly fwStatusName: string;
  constructor(fwStatusName: string, message: string, fwStatus?: number) {
    super('ERR_SIM_GUEST_FW', message);
    this.fwStatusName = fwStatusName;
    this.fwStatus = fwStatus ?? parseRet(fwStatusName) ?? SevRet.SEV_RET_INVALID_PARAM;
  }
}

/** The model's SimFirmwareError (in-process or relayed by the daemon) as a GuestFirmwareError; other errors unchanged. */
function toGuestFirmwareError(e: unknown): unknown {
  const err = e as { fwStatus?: unknown; fwStatusName?: unknown; message?: unknown };
  if (e instanceof GuestFirmwareError || typeof err.fwStatus !== 'number') return e;
  const name = typeof err.fwStatusName === 'string' ? err.fwStatusName.replace(/^SEV_RET_/, '') : '';
  return new GuestFirmwareError(name || 'INVALID_PARAM', typeof err.message === 'string' ? err.message : 'firmware error', err.fwStatus);
}

export interface ApiInfo {
  major: number;
  minor: number;
  build: number;
}

/** SEV_PLATFORM_STATUS as QEMU's sev_kvm_init reads it. */
export interface PlatformStatusInfo extends ApiInfo {
  state: 'UNINIT' | 'INIT' | 'WORKING';
  /** flags & SEV_STATUS_FLAGS_CONFIG_ES */
  esConfigured: boolean;
}

export interface LaunchStartArgs {
  policy: number;
  /** Raw GODH certificate (0x824 bytes) and session blob (128 bytes); both absent: firmware-chosen keys. */
  godh?: Buffer;
  session?: Buffer;
  /** The VM's name (QEMU -name): where the guest's secret file is kept, removed when the guest is decommissioned. */
  name?: string;
}

export interface GuestFirmware {
  readonly kind: 'daemon' | 'in-process';
  api(): Promise<ApiInfo>;
  /** SEV_PLATFORM_STATUS on the sev-device fd. */
  platformStatus(): Promise<PlatformStatusInfo>;
  /** KVM_SEV_INIT / KVM_SEV_ES_INIT: INITs an UNINIT platform, as KVM's sev_guest_init does. */
  sevInit(es: boolean): Promise<void>;
  launchStart(a: LaunchStartArgs): Promise<number>;
  launchUpdateData(handle: number, data: Buffer): Promise<void>;
  /** LAUNCH_UPDATE_DATA of a whole file the firmware side reads by its absolute path; resolves with the bytes measured. */
  launchUpdateFile(handle: number, file: string): Promise<number>;
  launchUpdateVmsa(handle: number, page: Buffer): Promise<void>;
  /** 48 bytes: MEASURE ‖ MNONCE (fresh nonce). */
  launchMeasure(handle: number): Promise<Buffer>;
  /** Checks the packet MAC against this guest's measurement; returns the plaintext the guest would see. */
  launchSecret(handle: number, header: Buffer, payload: Buffer, gpa: number): Promise<Buffer>;
  launchFinish(handle: number): Promise<void>;
  /** ATTESTATION: the 208-byte legacy report for a launch-secret or running guest (KVM_SEV_GET_ATTESTATION_REPORT). */
  attestation(handle: number, mnonce: Buffer): Promise<Buffer>;
  decommission(handle: number): Promise<void>;
  /** PDH, and PEK ‖ OCA ‖ CEK (query-sev-capabilities). */
  pdhCertExport(): Promise<{ pdh: Buffer; certChain: Buffer }>;
  /** GET_ID2 output (64 bytes). */
  getId(): Promise<Buffer>;
  close(): void;
}

/** A GuestFirmware over SimCalls: typed commands, the model's refusals as GuestFirmwareError. */
export class CallsFirmware implements GuestFirmware {
  constructor(
    readonly kind: GuestFirmware['kind'],
    private readonly c: SimCalls,
  ) {}
  api(): Promise<ApiInfo> {
    return this.c.api().catch(rethrow);
  }
  platformStatus(): Promise<PlatformStatusInfo> {
    return this.c.request<PlatformStatusInfo>('platformStatus').catch(rethrow);
  }
  async sevInit(es: boolean): Promise<void> {
    await this.c.request('sevInit', { es }).catch(rethrow);
  }
  launchStart(a: LaunchStartArgs): Promise<number> {
    return this.c.launchStart(a).catch(rethrow);
  }
  launchUpdateData(handle: number, data: Buffer): Promise<void> {
    return this.c.launchUpdateData(handle, data).catch(rethrow);
  }
  launchUpdateFile(handle: number, file: string): Promise<number> {
    return this.c.launchUpdateFile(handle, file).then((r) => r.length, rethrow);
  }
  launchUpdateVmsa(handle: number, page: Buffer): Promise<void> {
    return this.c.launchUpdateVmsa(handle, page).catch(rethrow);
  }
  launchMeasure(handle: number): Promise<Buffer> {
    return this.c.launchMeasure(handle).catch(rethrow);
  }
  launchSecret(handle: number, header: Buffer, payload: Buffer, gpa: number): Promise<Buffer> {
    return this.c.launchSecret(handle, header, payload, gpa).catch(rethrow);
  }
  launchFinish(handle: number): Promise<void> {
    return this.c.launchFinish(handle).catch(rethrow);
  }
  attestation(handle: number, mnonce: Buffer): Promise<Buffer> {
    return this.c.attestation(handle, mnonce).catch(rethrow);
  }
  decommission(handle: number): Promise<void> {
    return this.c.decommission(handle).catch(rethrow);
  }
  pdhCertExport(): Promise<{ pdh: Buffer; certChain: Buffer }> {
    return this.c.pdhCertExport().catch(rethrow);
  }
  getId(): Promise<Buffer> {
    return this.c.getId().catch(rethrow);
  }
  close(): void {
    this.c.close();
  }
}

function rethrow(e: unknown): never {
  throw toGuestFirmwareError(e);
}

/**
 * The firmware model itself (guestOp) over a SimPlatform loaded in this
 * process from the state directory. Loading only reads the dir (state.json,
 * keys, certs): it never provisions or regenerates keys and takes no lock, so
 * a daemon serving the same dir is unaffected. Faults armed in
 * `<state>/faults.json` strike here as in the daemon, targeted by this
 * process's pid and $SEVKIT_SIM_TAG as SimClient's requests are.
 */
class InProcessCalls extends SimCalls {
  private loaded: Promise<SimPlatform> | undefined;
  private platform: SimPlatform | undefined;
  private guests: typeof import('../guests.js') | undefined;
  private readonly ctx: GuestContext;

  constructor(
    private readonly stateDir: string,
    tag: string | undefined,
  ) {
    super();
    this.ctx = { handles: new Set(), pid: process.pid, ...(tag ? { tag } : {}) };
  }

  private load(): Promise<SimPlatform> {
    this.loaded ??= (async () => {
      const [{ SimPlatform }, guests] = await Promise.all([import('../platform.js'), import('../guests.js')]);
      const dir = path.resolve(this.stateDir);
      // SimPlatform.open() provisions a dir without state.json, which would overwrite any keys already there.
      if (!fs.existsSync(path.join(dir, 'state.json'))) {
        throw new GuestFirmwareError(
          'INVALID_PLATFORM_STATE',
          `${dir}: not a simulator state dir (no state.json); create it with \`sevkit sim --state ${dir}\``,
        );
      }
      try {
        this.platform = SimPlatform.open(dir);
      } catch (e) {
        throw new GuestFirmwareError('INVALID_PLATFORM_STATE', `cannot load the simulated platform: ${(e as Error).message.split('\n')[0]}`);
      }
      this.guests = guests;
      return this.platform;
    })();
    return this.loaded;
  }

  override async request<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const platform = await this.load();
    return (await this.guests!.runGuestOp(platform, op, args, this.ctx)) as T;
  }

  /** As KVM does when the VM's fd closes: decommission what is still launched (no fault can block it). */
  override close(): void {
    if (!this.platform || !this.guests) return;
    for (const h of [...this.ctx.handles]) this.guests.decommission(this.platform, h);
    this.ctx.handles.clear();
  }
}

/** The wrapper's firmware without a daemon (only SEVKIT_SIM_STATE set); its guests are invisible to /dev/sev. */
export class InProcessFirmware extends CallsFirmware {
  /** The platform on `stateDir`, opened in this process; `tag` names this wrapper in fault filters. */
  constructor(stateDir: string, tag?: string) {
    super('in-process', new InProcessCalls(stateDir, tag));
  }
}
