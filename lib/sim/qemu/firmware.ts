/**
 * The guest-launch firmware commands the QEMU wrapper needs, as KVM would
 * issue them to the PSP. Two backends:
 *  - the simulator daemon (SimClient, SEVKIT_SIM_SOCKET): the same firmware
 *    model that answers the addon's ioctls, so guest counts and platform
 *    state stay consistent;
 *  - an in-process firmware over the state directory's PDH key, for running
 *    the wrapper without the daemon (its guests are invisible to /dev/sev).
 * Both do the firmware-side crypto with lib/launch (openSession,
 * launchMeasure, openSecret).
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SevkitError } from '../../errors.js';

/** Firmware status codes (sev_ret_code) and QEMU's sev_fw_errlist strings. */
export const FW_STATUS: Record<string, { code: number; text: string }> = {
  INVALID_PLATFORM_STATE: { code: 0x01, text: 'Platform state is invalid' },
  INVALID_GUEST_STATE: { code: 0x02, text: 'Guest state is invalid' },
  INVALID_CONFIG: { code: 0x03, text: 'Platform configuration is invalid' },
  INVALID_LEN: { code: 0x04, text: 'Buffer too small' },
  INVALID_CERTIFICATE: { code: 0x06, text: 'Certificate is invalid' },
  POLICY_FAILURE: { code: 0x07, text: 'Policy is not allowed' },
  INACTIVE: { code: 0x08, text: 'Guest is not active' },
  INVALID_ADDRESS: { code: 0x09, text: 'Invalid address' },
  BAD_SIGNATURE: { code: 0x0a, text: 'Bad signature' },
  BAD_MEASUREMENT: { code: 0x0b, text: 'Bad measurement' },
  INVALID_GUEST: { code: 0x10, text: 'Guest handle is invalid' },
  UNSUPPORTED: { code: 0x15, text: 'Feature not supported' },
  INVALID_PARAM: { code: 0x16, text: 'Invalid parameter' },
  RESOURCE_LIMIT: { code: 0x17, text: 'Required firmware resource depleted' },
};

export function fwStatusText(code: number): string {
  for (const v of Object.values(FW_STATUS)) if (v.code === code) return v.text;
  return 'unknown error';
}

/** A guest command the (simulated) firmware refused. */
export class GuestFirmwareError extends SevkitError {
  readonly fwStatus: number;
  readonly fwStatusName: string;
  constructor(fwStatusName: string, message: string, fwStatus?: number) {
    super('ERR_SIM_GUEST_FW', message);
    this.fwStatusName = fwStatusName;
    this.fwStatus = fwStatus ?? FW_STATUS[fwStatusName]?.code ?? 0x16;
  }
}

export interface ApiInfo {
  major: number;
  minor: number;
  build: number;
}

export interface LaunchStartArgs {
  policy: number;
  /** Raw GODH certificate (0x824 bytes) and session blob (128 bytes); both absent: firmware-chosen keys. */
  godh?: Buffer;
  session?: Buffer;
}

export interface GuestFirmware {
  readonly kind: 'daemon' | 'in-process';
  api(): Promise<ApiInfo>;
  launchStart(a: LaunchStartArgs): Promise<number>;
  launchUpdateData(handle: number, data: Buffer): Promise<void>;
  launchUpdateVmsa(handle: number, page: Buffer): Promise<void>;
  /** 48 bytes: MEASURE ‖ MNONCE (fresh nonce). */
  launchMeasure(handle: number): Promise<Buffer>;
  /** Checks the packet MAC against this guest's measurement; returns the plaintext the guest would see. */
  launchSecret(handle: number, header: Buffer, payload: Buffer, gpa: number): Promise<Buffer>;
  launchFinish(handle: number): Promise<void>;
  decommission(handle: number): Promise<void>;
  /** PDH, and PEK ‖ OCA ‖ CEK (query-sev-capabilities). */
  pdhCertExport(): Promise<{ pdh: Buffer; certChain: Buffer }>;
  /** GET_ID2 output (64 bytes). */
  getId(): Promise<Buffer>;
  close(): void;
}

interface LocalGuest {
  policy: number;
  tek: Buffer;
  tik: Buffer;
  digest: crypto.Hash;
  measure?: Buffer;
  state: 'update' | 'secret' | 'running';
}

/** In-process firmware over the simulator's state directory (keys as PKCS#8 PEM, certs raw). */
export class InProcessFirmware implements GuestFirmware {
  readonly kind = 'in-process' as const;
  private readonly guests = new Map<number, LocalGuest>();
  private nextHandle = 1;
  private pdhKey: KeyObject | undefined;
  private faults: { take(on: 'launch', cmd: string, kind: 'fw'): { fwStatus?: number } | undefined } | undefined;

  constructor(private readonly stateDir: string) {}

  /** Faults armed in `<state>/faults.json` (the simulator's format) strike here too. */
  private async fault(cmd: string): Promise<void> {
    if (!this.faults) {
      const { FaultTable } = await import('../faults.js');
      this.faults = new FaultTable(this.stateDir);
    }
    const f = this.faults.take('launch', cmd, 'fw');
    if (f && f.fwStatus !== undefined) {
      const name = Object.entries(FW_STATUS).find(([, v]) => v.code === f.fwStatus)?.[0] ?? 'INVALID_PARAM';
      throw new GuestFirmwareError(name, `${cmd} failed (injected fault)`, f.fwStatus);
    }
  }

  async api(): Promise<ApiInfo> {
    try {
      const st = JSON.parse(fs.readFileSync(path.join(this.stateDir, 'state.json'), 'utf8')) as { api?: ApiInfo };
      if (st.api && Number.isInteger(st.api.major)) return st.api;
    } catch {
      /* default below */
    }
    return { major: 1, minor: 55, build: 21 };
  }

  private key(): KeyObject {
    if (!this.pdhKey) {
      const file = path.join(this.stateDir, 'pdh.key.pem');
      try {
        this.pdhKey = crypto.createPrivateKey(fs.readFileSync(file));
      } catch (e) {
        throw new GuestFirmwareError('INVALID_PLATFORM_STATE', `${file}: cannot load the simulated PDH key (${(e as Error).message.split('\n')[0]})`);
      }
    }
    return this.pdhKey;
  }

  private guest(handle: number): LocalGuest {
    const g = this.guests.get(handle);
    if (!g) throw new GuestFirmwareError('INVALID_GUEST', `no guest with handle ${handle}`);
    return g;
  }

  async launchStart(a: LaunchStartArgs): Promise<number> {
    await this.fault('LAUNCH_START');
    const api = await this.api();
    const minMajor = (a.policy >>> 16) & 0xff;
    const minMinor = (a.policy >>> 24) & 0xff;
    if (api.major < minMajor || (api.major === minMajor && api.minor < minMinor)) {
      throw new GuestFirmwareError('POLICY_FAILURE', `policy requires API ≥ ${minMajor}.${minMinor}, platform has ${api.major}.${api.minor}`);
    }
    let tek: Buffer;
    let tik: Buffer;
    if (a.godh && a.session) {
      const { openSession } = await import('../../launch/session.js');
      try {
        ({ tek, tik } = openSession({ godh: a.godh, session: a.session, pdhPrivateKey: this.key(), policy: a.policy }));
      } catch (e) {
        const name = (e as { fwStatusName?: string }).fwStatusName ?? 'INVALID_PARAM';
        throw new GuestFirmwareError(name, (e as Error).message);
      }
    } else {
      tek = crypto.randomBytes(16);
      tik = crypto.randomBytes(16);
    }
    const handle = this.nextHandle++;
    this.guests.set(handle, { policy: a.policy, tek, tik, digest: crypto.createHash('sha256'), state: 'update' });
    return handle;
  }

  async launchUpdateData(handle: number, data: Buffer): Promise<void> {
    await this.fault('LAUNCH_UPDATE_DATA');
    const g = this.guest(handle);
    if (g.state !== 'update') throw new GuestFirmwareError('INVALID_GUEST_STATE', 'LAUNCH_UPDATE_DATA after LAUNCH_MEASURE');
    g.digest.update(data);
  }

  async launchUpdateVmsa(handle: number, page: Buffer): Promise<void> {
    const g = this.guest(handle);
    if (!(g.policy & 0x4)) throw new GuestFirmwareError('POLICY_FAILURE', 'LAUNCH_UPDATE_VMSA for a guest whose policy is not SEV-ES');
    if (page.length !== 4096) throw new GuestFirmwareError('INVALID_LEN', `VMSA page has ${page.length} bytes`);
    await this.launchUpdateData(handle, page);
  }

  async launchMeasure(handle: number): Promise<Buffer> {
    await this.fault('LAUNCH_MEASURE');
    const g = this.guest(handle);
    if (g.state !== 'update') throw new GuestFirmwareError('INVALID_GUEST_STATE', 'LAUNCH_MEASURE twice');
    const api = await this.api();
    const { launchMeasure } = await import('../../launch/measurement.js');
    g.measure = launchMeasure({ digest: g.digest.digest(), tik: g.tik, apiMajor: api.major, apiMinor: api.minor, build: api.build, policy: g.policy });
    g.state = 'secret';
    return Buffer.from(g.measure);
  }

  async launchSecret(handle: number, header: Buffer, payload: Buffer, _gpa: number): Promise<Buffer> {
    await this.fault('LAUNCH_SECRET');
    const g = this.guest(handle);
    if (g.state !== 'secret' || !g.measure) throw new GuestFirmwareError('INVALID_GUEST_STATE', 'LAUNCH_SECRET outside the launch-secret state');
    const { openSecret } = await import('../../launch/secret.js');
    try {
      return openSecret({ header, payload, tek: g.tek, tik: g.tik, measurement: g.measure });
    } catch (e) {
      const name = (e as { fwStatusName?: string }).fwStatusName ?? 'INVALID_PARAM';
      throw new GuestFirmwareError(name, (e as Error).message);
    }
  }

  async launchFinish(handle: number): Promise<void> {
    await this.fault('LAUNCH_FINISH');
    const g = this.guest(handle);
    if (g.state === 'running') throw new GuestFirmwareError('INVALID_GUEST_STATE', 'LAUNCH_FINISH twice');
    g.state = 'running';
  }

  async decommission(handle: number): Promise<void> {
    const g = this.guests.get(handle);
    if (!g) return;
    g.tek.fill(0);
    g.tik.fill(0);
    this.guests.delete(handle);
  }

  async pdhCertExport(): Promise<{ pdh: Buffer; certChain: Buffer }> {
    const read = (n: string) => fs.readFileSync(path.join(this.stateDir, `${n}.cert`));
    try {
      return { pdh: read('pdh'), certChain: Buffer.concat([read('pek'), read('oca'), read('cek')]) };
    } catch (e) {
      throw new GuestFirmwareError('INVALID_PLATFORM_STATE', `cannot read the simulated certificates: ${(e as Error).message}`);
    }
  }

  async getId(): Promise<Buffer> {
    // Stable per state dir, like a chip id.
    return crypto.createHash('sha512').update(`sevkit-sim-chip-id\0${path.resolve(this.stateDir)}`).digest();
  }

  close(): void {
    for (const h of [...this.guests.keys()]) void this.decommission(h);
  }
}
