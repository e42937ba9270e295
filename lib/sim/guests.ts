/**
 * Guest-launch firmware commands, as KVM issues them to the PSP for QEMU
 * (SEV API chapter 6: LAUNCH_START … LAUNCH_FINISH, DECOMMISSION). The
 * simulator's QEMU wrapper reaches them through SimClient; they share the
 * platform model with the ioctl path, so guest count and WORKING state follow
 * the live guests.
 *
 * The firmware-side crypto (session unwrap with the PDH private key, launch
 * measurement, secret MAC check and decryption) is lib/launch's; the
 * ATTESTATION report's encoding and PEK signature are lib/certs'.
 */
import crypto from 'node:crypto';
import { SevkitError } from '../errors.js';
import { openSession } from '../launch/session.js';
import { launchMeasure } from '../launch/measurement.js';
import { openSecret } from '../launch/secret.js';
import { signLegacyReport } from '../certs/report.js';
import type { SimPlatform } from './platform.js';
import { Ret, parseRet } from './uapi.js';
import { decodeStrictBase64 } from '../util/base64.js';

/** A guest command the simulated firmware refused (fwStatus = SEV_RET_*). */
export class SimFirmwareError extends SevkitError {
  readonly fwStatus: number;
  readonly fwStatusName: string;
  constructor(fwStatus: number, message: string) {
    super('ERR_SIM_FIRMWARE', message);
    this.fwStatus = fwStatus;
    this.fwStatusName = retName(fwStatus);
  }
}

export function retName(code: number): string {
  for (const [k, v] of Object.entries(Ret)) if (v === code) return k;
  return `0x${code.toString(16)}`;
}

interface Guest {
  handle: number;
  policy: number;
  tek: Buffer;
  tik: Buffer;
  digest: crypto.Hash;
  /** GCTX.LD: final once LAUNCH_MEASURE (or a LAUNCH_FINISH without one) closes the digest */
  launchDigest?: Buffer;
  measure?: Buffer;
  state: 'update' | 'secret' | 'running';
}

/** Per-connection context: KVM decommissions a VM's guest when its fd goes away. */
export interface GuestContext {
  handles: Set<number>;
  /** $SEVKIT_SIM_TAG of the client (fault targeting) */
  tag?: string;
  /** pid of the client (fault targeting) */
  pid?: number;
}

const guestsByPlatform = new WeakMap<SimPlatform, Map<number, Guest>>();

function table(p: SimPlatform): Map<number, Guest> {
  let t = guestsByPlatform.get(p);
  if (!t) {
    t = new Map();
    guestsByPlatform.set(p, t);
  }
  return t;
}

const OPS = new Set([
  'api', 'launchStart', 'launchUpdateData', 'launchUpdateVmsa', 'launchMeasure', 'launchSecret', 'launchFinish',
  'attestation', 'decommission', 'pdhCertExport', 'getId',
]);

export function isGuestOp(op: string): boolean {
  return OPS.has(op);
}

const FAULT_NAMES: Record<string, string> = {
  launchStart: 'LAUNCH_START',
  launchUpdateData: 'LAUNCH_UPDATE_DATA',
  launchUpdateVmsa: 'LAUNCH_UPDATE_VMSA',
  launchMeasure: 'LAUNCH_MEASURE',
  launchSecret: 'LAUNCH_SECRET',
  launchFinish: 'LAUNCH_FINISH',
  attestation: 'ATTESTATION',
  decommission: 'DECOMMISSION',
  pdhCertExport: 'PDH_CERT_EXPORT',
  getId: 'GET_ID',
};

function b64(v: unknown, what: string): Buffer {
  const b = decodeStrictBase64(v);
  if (!b) throw new SimFirmwareError(Ret.INVALID_PARAM, `${what}: expected base64`);
  return b;
}

function u32(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new SimFirmwareError(Ret.INVALID_PARAM, `${what}: expected a u32`);
  return v;
}

/** Maps lib/launch's firmware-side errors (fwStatusName) to a status. */
function launchFailure(e: unknown, fallback: number): SimFirmwareError {
  const name = (e as { fwStatusName?: string }).fwStatusName;
  const code = name === undefined ? undefined : parseRet(name);
  return new SimFirmwareError(code ?? fallback, (e as Error).message);
}

export function guestOp(platform: SimPlatform, op: string, args: Record<string, unknown>, ctx?: GuestContext): unknown {
  const faultName = FAULT_NAMES[op];
  if (faultName) {
    const f = platform.faults.take('launch', faultName, 'fw', { tag: ctx?.tag, pid: ctx?.pid });
    if (f) throw new SimFirmwareError(f.fwStatus!, `${faultName} failed (injected fault)`);
  }
  const guests = table(platform);
  const guest = (): Guest => {
    const h = u32(args.handle, 'handle');
    const g = guests.get(h);
    if (!g) throw new SimFirmwareError(Ret.INVALID_GUEST, `no guest with handle ${h}`);
    return g;
  };

  switch (op) {
    case 'api':
      return { ...platform.api };

    case 'launchStart': {
      const policy = u32(args.policy, 'policy');
      const minMajor = (policy >>> 16) & 0xff;
      const minMinor = (policy >>> 24) & 0xff;
      const { major, minor } = platform.api;
      if (major < minMajor || (major === minMajor && minor < minMinor)) {
        throw new SimFirmwareError(Ret.POLICY_FAILURE, `policy 0x${policy.toString(16)} requires API >= ${minMajor}.${minMinor}, platform has ${major}.${minor}`);
      }
      let tek: Buffer;
      let tik: Buffer;
      if (args.godh !== undefined || args.session !== undefined) {
        if (args.godh === undefined || args.session === undefined) throw new SimFirmwareError(Ret.INVALID_PARAM, 'LAUNCH_START needs both the GODH certificate and the session blob');
        if (platform.state === 'UNINIT') throw new SimFirmwareError(Ret.INVALID_PLATFORM_STATE, 'LAUNCH_START on an UNINIT platform');
        try {
          ({ tek, tik } = openSession({ godh: b64(args.godh, 'godh'), session: b64(args.session, 'session'), pdhPrivateKey: platform.pdhPrivateKey(), policy }));
        } catch (e) {
          if (e instanceof SimFirmwareError) throw e;
          throw launchFailure(e, Ret.INVALID_PARAM);
        }
      } else {
        tek = crypto.randomBytes(16);
        tik = crypto.randomBytes(16);
      }
      const { status, slot } = platform.allocGuest();
      if (status !== Ret.SUCCESS || !slot) {
        tek.fill(0);
        tik.fill(0);
        throw new SimFirmwareError(status, `LAUNCH_START refused: ${retName(status)}`);
      }
      guests.set(slot.handle, { handle: slot.handle, policy, tek, tik, digest: crypto.createHash('sha256'), state: 'update' });
      ctx?.handles.add(slot.handle);
      return { handle: slot.handle, asid: slot.asid };
    }

    case 'launchUpdateData': {
      const g = guest();
      if (g.state !== 'update') throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_UPDATE_DATA after LAUNCH_MEASURE');
      const data = b64(args.data, 'data');
      if (data.length === 0 || data.length % 16 !== 0) throw new SimFirmwareError(Ret.INVALID_LEN, `LAUNCH_UPDATE_DATA length ${data.length} is not a non-zero multiple of 16`);
      g.digest.update(data);
      return {};
    }

    case 'launchUpdateVmsa': {
      const g = guest();
      if (g.state !== 'update') throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_UPDATE_VMSA after LAUNCH_MEASURE');
      if (!(g.policy & 0x4)) throw new SimFirmwareError(Ret.POLICY_FAILURE, 'LAUNCH_UPDATE_VMSA for a guest whose policy is not SEV-ES');
      const page = b64(args.page, 'page');
      if (page.length !== 4096) throw new SimFirmwareError(Ret.INVALID_LEN, `VMSA page has ${page.length} bytes, expected 4096`);
      g.digest.update(page);
      return {};
    }

    case 'launchMeasure': {
      const g = guest();
      if (g.state !== 'update') throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_MEASURE twice');
      const { major, minor, build } = platform.api;
      g.launchDigest = g.digest.digest();
      // Fresh mnonce, as firmware draws one per measurement.
      g.measure = launchMeasure({ digest: g.launchDigest, tik: g.tik, apiMajor: major, apiMinor: minor, build, policy: g.policy });
      g.state = 'secret';
      return { measurement: g.measure.toString('base64') };
    }

    case 'launchSecret': {
      const g = guest();
      if (g.state !== 'secret' || !g.measure) throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_SECRET outside the launch-secret state');
      try {
        const plain = openSecret({ header: b64(args.header, 'header'), payload: b64(args.payload, 'payload'), tek: g.tek, tik: g.tik, measurement: g.measure });
        return { plaintext: plain.toString('base64') };
      } catch (e) {
        if (e instanceof SimFirmwareError) throw e;
        throw launchFailure(e, Ret.INVALID_PARAM);
      }
    }

    case 'launchFinish': {
      const g = guest();
      if (g.state === 'running') throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_FINISH twice');
      g.launchDigest ??= g.digest.digest();
      g.state = 'running';
      return {};
    }

    case 'attestation': {
      // ATTESTATION (0x036): the legacy 208-byte report over GCTX.LD and the
      // policy, signed with the platform's current PEK. Firmware serves it in
      // the launch-secret and running guest states only.
      const g = guest();
      if ((g.state !== 'secret' && g.state !== 'running') || !g.launchDigest) {
        throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, `ATTESTATION for guest ${g.handle} in the ${g.state === 'update' ? 'launch-update' : g.state} state (needs launch-secret or running)`);
      }
      const mnonce = b64(args.mnonce, 'mnonce');
      if (mnonce.length !== 16) throw new SimFirmwareError(Ret.INVALID_PARAM, `ATTESTATION mnonce has ${mnonce.length} bytes, expected 16`);
      const report = signLegacyReport({ mnonce, launchDigest: g.launchDigest, policy: g.policy }, platform.pekPrivateKey());
      return { report: report.toString('base64') };
    }

    case 'decommission': {
      const h = u32(args.handle, 'handle');
      decommission(platform, h);
      ctx?.handles.delete(h);
      return {};
    }

    case 'pdhCertExport': {
      if (platform.state === 'UNINIT') throw new SimFirmwareError(Ret.INVALID_PLATFORM_STATE, 'PDH_CERT_EXPORT on an UNINIT platform');
      return {
        pdh: platform.certificate('pdh').toString('base64'),
        certChain: Buffer.concat([platform.certificate('pek'), platform.certificate('oca'), platform.certificate('cek')]).toString('base64'),
      };
    }

    case 'getId':
      return { id: platform.chipIdBytes.toString('base64') };

    default:
      throw new SimFirmwareError(Ret.INVALID_COMMAND, `unknown guest command ${op}`);
  }
}

/** DECOMMISSION: forget the guest and its keys. */
export function decommission(platform: SimPlatform, handle: number): void {
  const guests = table(platform);
  const g = guests.get(handle);
  if (g) {
    g.tek.fill(0);
    g.tik.fill(0);
    guests.delete(handle);
  }
  platform.freeGuest(handle);
}
