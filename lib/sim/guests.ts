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
import fs from 'node:fs';
import path from 'node:path';
import { openSession } from '../launch/session.js';
import { launchMeasure } from '../launch/measurement.js';
import { openSecret } from '../launch/secret.js';
import { signLegacyReport } from '../certs/report.js';
import type { SimPlatform } from './platform.js';
import { Ret, parseRet } from './uapi.js';
import { decodeStrictBase64 } from '../util/base64.js';
import { SimFirmwareError, retName } from './fw-error.js';
import { measureFile, type MeasuredFile } from './firmware-file.js';

export { SimFirmwareError, retName } from './fw-error.js';

interface Guest {
  handle: number;
  /** `<state>/guests/<name>`: the wrapper keeps the injected secret there; it goes with the guest. */
  secretDir?: string;
  policy: number;
  tek: Buffer;
  tik: Buffer;
  digest: crypto.Hash;
  /** something has been measured into `digest` (a cached firmware digest can only start a fresh one) */
  fed?: boolean;
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
  'api',
  'platformStatus',
  'sevInit',
  'launchStart',
  'launchUpdateData',
  'launchUpdateFile',
  'launchUpdateVmsa',
  'launchMeasure',
  'launchSecret',
  'launchFinish',
  'attestation',
  'decommission',
  'pdhCertExport',
  'getId',
]);

export function isGuestOp(op: string): boolean {
  return OPS.has(op);
}

const FAULT_NAMES: Record<string, string> = {
  launchStart: 'LAUNCH_START',
  launchUpdateData: 'LAUNCH_UPDATE_DATA',
  launchUpdateFile: 'LAUNCH_UPDATE_DATA',
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

/**
 * What a guest command needs that the kernel gathers before it takes sev_cmd_mutex (copying and
 * pinning the caller's buffer): for launchUpdateFile, the named file read and hashed.
 */
export interface GuestOpInput {
  file?: MeasuredFile;
}

/**
 * Gathers a command's GuestOpInput without blocking the event loop and without touching firmware
 * state; guestOp re-checks everything once it runs. A handle that names no guest in launch-update is
 * not worth a read (guestOp refuses it). `signal` withdraws the request (its connection closed).
 */
export async function prepareGuestOp(platform: SimPlatform, op: string, args: Record<string, unknown>, signal?: AbortSignal): Promise<GuestOpInput> {
  if (op !== 'launchUpdateFile') return {};
  const g = typeof args.handle === 'number' ? table(platform).get(args.handle) : undefined;
  if (!g || g.state !== 'update') return {};
  return { file: await measureFile(args.path, signal) };
}

/** prepareGuestOp, then the command itself: what a caller outside the daemon's connection queue uses. */
export async function runGuestOp(platform: SimPlatform, op: string, args: Record<string, unknown>, ctx?: GuestContext, signal?: AbortSignal): Promise<unknown> {
  const input = await prepareGuestOp(platform, op, args, signal);
  return guestOp(platform, op, args, ctx, input);
}

/**
 * One guest command as the firmware runs it: synchronous, so commands never interleave (the PSP runs
 * one at a time), and every check is made here against the guest's state now, whatever was gathered
 * before (`input`, from prepareGuestOp) while other commands ran.
 */
export function guestOp(platform: SimPlatform, op: string, args: Record<string, unknown>, ctx?: GuestContext, input: GuestOpInput = {}): unknown {
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

    case 'platformStatus':
      // SEV_PLATFORM_STATUS as QEMU's sev_kvm_init issues it on its sev-device fd.
      return { ...platform.api, state: platform.state, esConfigured: platform.esConfigured, owner: platform.ownership, guests: platform.guests.size };

    case 'sevInit': {
      // KVM_SEV_INIT / KVM_SEV_ES_INIT: sev_guest_init() → sev_platform_init(),
      // which INITs an UNINIT platform (e.g. after `sevctl reset`).
      const st = platform.initForGuest({ tag: ctx?.tag, pid: ctx?.pid });
      if (st !== Ret.SUCCESS) throw new SimFirmwareError(st, `SEV platform INIT for the guest failed: ${retName(st)}`);
      return {};
    }

    case 'launchStart': {
      const policy = u32(args.policy, 'policy');
      const minMajor = (policy >>> 16) & 0xff;
      const minMinor = (policy >>> 24) & 0xff;
      const { major, minor } = platform.api;
      if (major < minMajor || (major === minMajor && minor < minMinor)) {
        throw new SimFirmwareError(
          Ret.POLICY_FAILURE,
          `policy 0x${policy.toString(16)} requires API >= ${minMajor}.${minMinor}, platform has ${major}.${minor}`,
        );
      }
      let tek: Buffer;
      let tik: Buffer;
      if (args.godh !== undefined || args.session !== undefined) {
        if (args.godh === undefined || args.session === undefined)
          throw new SimFirmwareError(Ret.INVALID_PARAM, 'LAUNCH_START needs both the GODH certificate and the session blob');
        if (platform.state === 'UNINIT') throw new SimFirmwareError(Ret.INVALID_PLATFORM_STATE, 'LAUNCH_START on an UNINIT platform');
        const godhRaw = b64(args.godh, 'godh');
        if (!godhCoordinatesZeroExtended(godhRaw)) {
          throw new SimFirmwareError(
            Ret.INVALID_CERTIFICATE,
            'GODH: a P-384 coordinate has non-zero bytes past its 48 (the firmware reads QX/QY as 576-bit zero-extended integers, so the value is not below p)',
          );
        }
        try {
          ({ tek, tik } = openSession({
            godh: b64(args.godh, 'godh'),
            session: b64(args.session, 'session'),
            pdhPrivateKey: platform.pdhPrivateKey(),
            policy,
          }));
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
      // The name is the client's: only a plain file name is taken (no path), so a decommission removes nothing else.
      const name =
        typeof args.name === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(args.name) && args.name !== '.' && args.name !== '..' ? args.name : undefined;
      const secretDir = name ? path.join(platform.stateDir, 'guests', name) : undefined;
      guests.set(slot.handle, {
        handle: slot.handle,
        policy,
        tek,
        tik,
        digest: crypto.createHash('sha256'),
        state: 'update',
        ...(secretDir ? { secretDir } : {}),
      });
      ctx?.handles.add(slot.handle);
      return { handle: slot.handle, asid: slot.asid };
    }

    case 'launchUpdateData': {
      const g = guest();
      if (g.state !== 'update') throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_UPDATE_DATA after LAUNCH_MEASURE');
      const data = b64(args.data, 'data');
      if (data.length === 0 || data.length % 16 !== 0)
        throw new SimFirmwareError(Ret.INVALID_LEN, `LAUNCH_UPDATE_DATA length ${data.length} is not a non-zero multiple of 16`);
      g.digest.update(data);
      g.fed = true;
      return {};
    }

    case 'launchUpdateFile': {
      // LAUNCH_UPDATE_DATA of a whole firmware file the client names instead of sending it:
      // read and hashed once per file version (prepareGuestOp), each guest's digest forked from that one.
      // The guest may have been decommissioned or measured while the file was read: checked now.
      const g = guest();
      if (g.state !== 'update') throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_UPDATE_DATA after LAUNCH_MEASURE');
      const f = input.file;
      if (!f) throw new Error('launchUpdateFile without its file read first (prepareGuestOp)');
      if (f.content.length === 0 || f.content.length % 16 !== 0)
        throw new SimFirmwareError(Ret.INVALID_LEN, `LAUNCH_UPDATE_DATA length ${f.content.length} is not a non-zero multiple of 16`);
      if (g.fed) g.digest.update(f.content);
      else g.digest = f.hash.copy();
      g.fed = true;
      return { length: f.content.length };
    }

    case 'launchUpdateVmsa': {
      const g = guest();
      if (g.state !== 'update') throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_UPDATE_VMSA after LAUNCH_MEASURE');
      if (!(g.policy & 0x4)) throw new SimFirmwareError(Ret.POLICY_FAILURE, 'LAUNCH_UPDATE_VMSA for a guest whose policy is not SEV-ES');
      const page = b64(args.page, 'page');
      if (page.length !== 4096) throw new SimFirmwareError(Ret.INVALID_LEN, `VMSA page has ${page.length} bytes, expected 4096`);
      g.digest.update(page);
      g.fed = true;
      return {};
    }

    case 'launchMeasure': {
      const g = guest();
      if (g.state !== 'update') throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_MEASURE twice');
      const { major, minor, build } = platform.api;
      if (major === 0 && minor < 17) {
        // The 0x04‖API‖BUILD‖POLICY‖LD‖MNONCE formula starts at API 0.17; the
        // older one is not modelled, so say so instead of measuring wrongly.
        throw new SimFirmwareError(Ret.UNSUPPORTED, `the simulator does not model LAUNCH_MEASURE for firmware API ${major}.${minor} (only API >= 0.17)`);
      }
      g.launchDigest = g.digest.digest();
      // Fresh mnonce, as firmware draws one per measurement.
      g.measure = launchMeasure({ digest: g.launchDigest, tik: g.tik, apiMajor: major, apiMinor: minor, build, policy: g.policy });
      g.state = 'secret';
      return { measurement: g.measure.toString('base64') };
    }

    case 'launchSecret': {
      const g = guest();
      if (g.state !== 'secret' || !g.measure) throw new SimFirmwareError(Ret.INVALID_GUEST_STATE, 'LAUNCH_SECRET outside the launch-secret state');
      // Any non-empty length is taken, as KVM and QEMU pass it through and
      // AMD's sev-tool (written against real firmware) packages secrets of
      // any size from 8 bytes without padding them to 16.
      const payload = b64(args.payload, 'payload');
      try {
        const plain = openSecret({ header: b64(args.header, 'header'), payload, tek: g.tek, tik: g.tik, measurement: g.measure });
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
        throw new SimFirmwareError(
          Ret.INVALID_GUEST_STATE,
          `ATTESTATION for guest ${g.handle} in the ${g.state === 'update' ? 'launch-update' : g.state} state (needs launch-secret or running)`,
        );
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

/**
 * SEV API appendix C: an ECDSA/ECDH public key's QX and QY are 72-byte
 * little-endian fields holding the coordinate zero-extended; for P-384 only
 * the low 48 bytes may be non-zero (the rest makes a value >= p).
 */
function godhCoordinatesZeroExtended(cert: Buffer): boolean {
  if (cert.length !== 0x824) return true; // openSession reports the length
  const QX = 0x14; // after version, api, reserved, usage, algo and curve
  const QY = QX + 72;
  for (const off of [QX + 48, QY + 48]) for (let i = off; i < off + 24; i++) if (cert[i] !== 0) return false;
  return true;
}

/** DECOMMISSION: forget the guest and its keys. */
export function decommission(platform: SimPlatform, handle: number): void {
  const guests = table(platform);
  const g = guests.get(handle);
  if (g) {
    g.tek.fill(0);
    g.tik.fill(0);
    guests.delete(handle);
    // Even when the wrapper was SIGKILLed (the daemon decommissions when its connection closes).
    if (g.secretDir) fs.rmSync(g.secretDir, { recursive: true, force: true });
  }
  platform.freeGuest(handle);
}
