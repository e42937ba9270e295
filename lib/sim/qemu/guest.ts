/**
 * QEMU's SEV part (target/i386/sev.c), played against the simulated firmware:
 * LAUNCH_START at accelerator init, LAUNCH_UPDATE_DATA of the firmware (and
 * the kernel hashes table), LAUNCH_UPDATE_VMSA per vCPU for SEV-ES and
 * LAUNCH_MEASURE at machine-init-done, then the SEV QMP commands, with
 * QEMU's own error texts.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { SevGuestConfig, ParsedQemu } from './argv.js';
import { GuestFirmwareError, fwStatusText, type ApiInfo, type GuestFirmware } from './firmware.js';
import { QmpReply } from './qmp-server.js';
import { writeFileAtomic } from '../../util/fs.js';

/** Fatal start-up error: printed as QEMU would, then exit 1. */
export class QemuStartError extends Error {}

export type SevState = 'uninit' | 'launch-update' | 'launch-secret' | 'running';

export interface HostCpu {
  cbitpos: number;
  /** CPUID(1).EAX of the host, for `-cpu host` SEV-ES VMSAs. */
  signature?: number;
}

function readBase64File(file: string, what: string): Buffer {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new QemuStartError(`sev_launch_start: failed to read ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const t = text.trim();
  if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(t) || t.replace(/\s/g, '').length % 4 === 1) {
    throw new QemuStartError(`sev_launch_start: ${what} file ${file}: Invalid base64 data`);
  }
  return Buffer.from(t, 'base64');
}

function strictB64(v: unknown, what: string): Buffer {
  if (typeof v !== 'string') throw new QmpReply('GenericError', `Invalid parameter type for '${what}', expected: string`);
  const t = v.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 === 1) throw new QmpReply('GenericError', `Invalid base64 data in '${what}'`);
  return Buffer.from(t, 'base64');
}

/** The QAPI input visitor's checks for a command whose only member is one required string. */
export function qapiString(args: Record<string, unknown>, name: string): string {
  for (const k of Object.keys(args)) if (k !== name) throw new QmpReply('GenericError', `Parameter '${k}' is unexpected`);
  if (!(name in args)) throw new QmpReply('GenericError', `Parameter '${name}' is missing`);
  const v = args[name];
  if (typeof v !== 'string') throw new QmpReply('GenericError', `Invalid parameter type for '${name}', expected: string`);
  return v;
}

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * GLib's g_base64_decode() as QEMU calls it: characters outside the alphabet
 * are skipped, '=' counts as a zero digit, only whole 4-digit groups produce
 * output, and a '=' in the last one or two digits of a group drops that many
 * bytes. It never fails, so QEMU's only complaint about a bad mnonce is its
 * decoded length.
 */
export function glibBase64Decode(text: string): Buffer {
  const out: number[] = [];
  let v = 0;
  let n = 0;
  let last0 = '';
  let last1 = '';
  for (const c of text) {
    const rank = c === '=' ? 0 : B64_ALPHABET.indexOf(c);
    if (rank < 0) continue;
    last1 = last0;
    last0 = c;
    v = ((v << 6) | rank) & 0xffffff;
    if (++n === 4) {
      out.push(v >>> 16);
      if (last1 !== '=') out.push((v >>> 8) & 0xff);
      if (last0 !== '=') out.push(v & 0xff);
      n = 0;
    }
  }
  return Buffer.from(out);
}

export class SevGuest {
  state: SevState = 'uninit';
  handle = 0;
  private measurement: Buffer | undefined;
  private api: ApiInfo = { major: 0, minor: 0, build: 0 };
  /** Base of the firmware's launch-secret area (OVMF footer GUID), read once at launch; QEMU takes it even when 0. */
  private secretAreaBase: number | undefined;

  constructor(
    readonly cfg: SevGuestConfig,
    private readonly q: ParsedQemu,
    private readonly fw: GuestFirmware,
    private readonly host: HostCpu,
    /** `<SEVKIT_SIM_STATE>/guests/<vm>` */
    private readonly guestDir: string | undefined,
  ) {}

  /** Everything QEMU does from accelerator init to machine-init-done. Throws QemuStartError. */
  async launch(): Promise<void> {
    const cfg = this.cfg;
    if (cfg.cbitpos !== this.host.cbitpos) {
      throw new QemuStartError(`sev_kvm_init: cbitpos check failed, host '${this.host.cbitpos}' requested '${cfg.cbitpos ?? 0}'`);
    }
    if (cfg.reducedPhysBits < 1 || cfg.reducedPhysBits > 63) {
      throw new QemuStartError(`sev_kvm_init: reduced_phys_bits check failed, it should be >=1, and <=63 requested '${cfg.reducedPhysBits}'`);
    }
    if (!this.q.firmware) throw new QemuStartError('SEV: guest firmware (pflash unit 0 or -bios) is required for an SEV guest');
    let image: Buffer;
    try {
      image = fs.readFileSync(this.q.firmware);
    } catch (e) {
      throw new QemuStartError(`Could not open '${this.q.firmware}': ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
    }
    const es = (cfg.policy & 0x4) !== 0;
    const { parseOvmf, hasOvmfFooterTable, OVMF_GUIDS } = await import('../../firmware/ovmf.js');
    const ovmf = hasOvmfFooterTable(image) ? parseOvmf(image, this.q.firmware) : undefined;
    const secretEntry = ovmf?.entries.find((e) => e.guid === OVMF_GUIDS.SEV_SECRET);
    if (secretEntry && secretEntry.data.length >= 8) this.secretAreaBase = secretEntry.data.readUInt32LE(0);
    if (es && ovmf?.resetVector === undefined) {
      throw new QemuStartError('SEV: SEV information block/Firmware GUID Table block not found in pflash rom');
    }
    let hashesTable: Buffer | undefined;
    if (this.q.kernel && cfg.kernelHashes) {
      const area = ovmf?.entries.find((e) => e.guid === OVMF_GUIDS.SEV_HASH_TABLE);
      if (!area) throw new QemuStartError('SEV: kernel specified but guest firmware has no hashes table GUID');
      if (!ovmf?.hashesArea || ovmf.hashesArea.size < 176) {
        const base = area.data.length >= 8 ? area.data.readUInt32LE(0) : 0;
        const size = area.data.length >= 8 ? area.data.readUInt32LE(4) : 0;
        throw new QemuStartError(`SEV: guest firmware hashes table area is invalid (base=0x${base.toString(16)} size=0x${size.toString(16)})`);
      }
      const { buildKernelHashesTable } = await import('../../launch/hashes.js');
      const read = (f: string) => {
        try {
          return fs.readFileSync(f);
        } catch (e) {
          throw new QemuStartError(`could not load ${f}: ${(e as Error).message}`);
        }
      };
      hashesTable = buildKernelHashesTable({
        kernel: read(this.q.kernel),
        initrd: this.q.initrd ? read(this.q.initrd) : undefined,
        cmdline: this.q.append,
      });
    }
    let vmsas: { bsp: Buffer; ap: Buffer | undefined; numCpus: number } | undefined;
    if (es) {
      const { buildEsVmsas } = await import('../../launch/measurement.js');
      const model = this.q.cpuModel ?? 'qemu64';
      const spec: { numCpus: number; vcpuType?: string; vcpuSig?: number; vmType: 'legacy' } = { numCpus: this.q.vcpus, vmType: 'legacy' };
      if (model === 'host' || model === 'max') {
        if (this.host.signature === undefined) throw new QemuStartError(`SEV-ES: cannot tell the CPUID signature of -cpu ${model} on this simulated host`);
        spec.vcpuSig = this.host.signature;
      } else spec.vcpuType = model;
      try {
        vmsas = buildEsVmsas(image, spec, this.q.firmware);
      } catch (e) {
        throw new QemuStartError(`SEV-ES: ${(e as Error).message}`);
      }
    }

    const godh = cfg.dhCertFile ? readBase64File(cfg.dhCertFile, 'dh-cert') : undefined;
    const session = cfg.sessionFile ? readBase64File(cfg.sessionFile, 'session') : undefined;
    if ((godh === undefined) !== (session === undefined)) {
      throw new QemuStartError(`sev_launch_start: ${godh ? 'session-file' : 'dh-cert-file'} is required when ${godh ? 'dh-cert-file' : 'session-file'} is given`);
    }
    this.api = await this.fw.api();
    try {
      this.handle = await this.fw.launchStart({ policy: cfg.policy, godh, session });
    } catch (e) {
      if (e instanceof GuestFirmwareError) {
        throw new QemuStartError(
          `sev_launch_start: LAUNCH_START ret=1 fw_error=${e.fwStatus} '${fwStatusText(e.fwStatus)}'\nsev_kvm_init: failed to create encryption context\nfailed to initialize kvm: Operation not permitted`,
        );
      }
      throw e;
    }
    this.state = 'launch-update';
    try {
      await this.fw.launchUpdateData(this.handle, image);
      if (hashesTable) await this.fw.launchUpdateData(this.handle, hashesTable);
      if (vmsas) {
        await this.fw.launchUpdateVmsa(this.handle, vmsas.bsp);
        for (let i = 1; i < vmsas.numCpus; i++) await this.fw.launchUpdateVmsa(this.handle, vmsas.ap!);
      }
    } catch (e) {
      await this.decommission();
      if (e instanceof GuestFirmwareError) {
        throw new QemuStartError(`sev_launch_update_data: LAUNCH_UPDATE ret=1 fw_error=${e.fwStatus} '${fwStatusText(e.fwStatus)}'\nfailed to encrypt pflash rom`);
      }
      throw e;
    }
    try {
      this.measurement = await this.fw.launchMeasure(this.handle);
    } catch (e) {
      if (!(e instanceof GuestFirmwareError)) throw e;
      // QEMU 7.2 only reports it: the guest stays in launch-update without a measurement.
      process.stderr.write(`qemu-system-x86_64: sev_launch_get_measure: LAUNCH_MEASURE ret=1 fw_error=${e.fwStatus} '${fwStatusText(e.fwStatus)}'\n`);
      return;
    }
    this.state = 'launch-secret';
  }

  /** The first transition to running: LAUNCH_FINISH. */
  async finish(): Promise<void> {
    if (this.state !== 'launch-secret') return;
    await this.fw.launchFinish(this.handle);
    this.state = 'running';
  }

  async decommission(): Promise<void> {
    if (this.handle === 0) return;
    const h = this.handle;
    this.handle = 0;
    await this.fw.decommission(h).catch(() => undefined);
  }

  /** SEV QMP commands; undefined for everything else. */
  async qmp(command: string, args: Record<string, unknown>): Promise<unknown> {
    switch (command) {
      case 'query-sev':
        return {
          enabled: true,
          'api-minor': this.api.minor,
          handle: this.handle,
          state: this.state,
          'api-major': this.api.major,
          'build-id': this.api.build,
          policy: this.cfg.policy,
        };
      case 'query-sev-launch-measure':
        if (!this.measurement || this.state === 'uninit' || this.state === 'launch-update') {
          throw new QmpReply('GenericError', 'SEV launch measurement is not available');
        }
        return { data: this.measurement.toString('base64') };
      case 'query-sev-capabilities':
        return querySevCapabilities(this.fw, this.host);
      case 'sev-inject-launch-secret':
        return this.injectSecret(args);
      case 'query-sev-attestation-report':
        return this.attestationReport(args);
      default:
        return undefined;
    }
  }

  /**
   * sev_get_attestation_report(): QEMU checks only the mnonce length and
   * leaves the guest state to the firmware (KVM_SEV_GET_ATTESTATION_REPORT →
   * ATTESTATION). Its first ioctl is the length query, which is where a
   * firmware refusal (wrong guest state, an armed fault) surfaces.
   */
  private async attestationReport(args: Record<string, unknown>): Promise<{ data: string }> {
    const mnonceText = qapiString(args, 'mnonce');
    const mnonce = glibBase64Decode(mnonceText);
    if (mnonce.length !== 16) throw new QmpReply('GenericError', `SEV: mnonce must be 16 bytes (got ${mnonce.length})`);
    let report: Buffer;
    try {
      report = await this.fw.attestation(this.handle, mnonce);
    } catch (e) {
      if (e instanceof GuestFirmwareError) {
        throw new QmpReply('GenericError', `SEV: Failed to query the attestation report length ret=-1 fw_err=${e.fwStatus} (${fwStatusText(e.fwStatus)})`);
      }
      throw e;
    }
    return { data: report.toString('base64') };
  }

  private async injectSecret(args: Record<string, unknown>): Promise<unknown> {
    if (this.state !== 'launch-secret') throw new QmpReply('GenericError', `SEV: Not in correct state. (LSECRET) ${this.state}`);
    const header = strictB64(args['packet-header'], 'packet-header');
    const secret = strictB64(args.secret, 'secret');
    let gpa: number;
    if (args.gpa !== undefined) {
      if (typeof args.gpa !== 'number' || !Number.isSafeInteger(args.gpa) || args.gpa < 0) throw new QmpReply('GenericError', "Invalid parameter type for 'gpa', expected: uint64");
      gpa = args.gpa;
    } else {
      if (this.secretAreaBase === undefined) throw new QmpReply('GenericError', 'SEV: no secret area found in OVMF, gpa must be specified.');
      gpa = this.secretAreaBase;
    }
    if (header.length !== 52) {
      throw new QmpReply('GenericError', `SEV: failed to inject secret ret=-22 fw_error=${0x04} '${fwStatusText(0x04)}'`);
    }
    let plain: Buffer;
    try {
      plain = await this.fw.launchSecret(this.handle, header, secret, gpa);
    } catch (e) {
      if (e instanceof GuestFirmwareError) {
        throw new QmpReply('GenericError', `SEV: failed to inject secret ret=1 fw_error=${e.fwStatus} '${fwStatusText(e.fwStatus)}'`);
      }
      throw e;
    }
    try {
      if (this.guestDir) {
        fs.mkdirSync(this.guestDir, { recursive: true, mode: 0o700 });
        const file = path.join(this.guestDir, 'launch-secret.bin');
        writeFileAtomic(file, plain, 0o600);
        fs.writeFileSync(path.join(this.guestDir, 'launch-secret.json'), `${JSON.stringify({ gpa, length: plain.length, note: 'SIMULATED: what the guest would find at gpa' })}\n`, { mode: 0o600 });
      }
    } finally {
      plain.fill(0);
    }
    return {};
  }
}

/** query-sev-capabilities as QEMU builds it (reduced-phys-bits is hard-coded 1 there). */
export async function querySevCapabilities(fw: GuestFirmware, host: HostCpu): Promise<unknown> {
  const { pdh, certChain } = await fw.pdhCertExport();
  const id = await fw.getId();
  return {
    pdh: pdh.toString('base64'),
    'cert-chain': certChain.toString('base64'),
    'cpu0-id': id.toString('base64'),
    cbitpos: host.cbitpos,
    'reduced-phys-bits': 1,
  };
}
