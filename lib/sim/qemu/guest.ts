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
import { GuestFirmwareError, fwStatusText, type ApiInfo, type GuestFirmware, type PlatformStatusInfo } from './firmware.js';
import { QmpReply } from './qmp-server.js';
import { writeFileAtomic } from '../../util/fs.js';

/** Fatal start-up error: printed as QEMU would, then exit 1. */
export class QemuStartError extends Error {
  /** QEMU writes this one with fprintf(stderr, "qemu: ...") rather than error_report(): no program-name prefix. */
  readonly raw: boolean;
  constructor(message: string, opts: { raw?: boolean } = {}) {
    super(message);
    this.raw = opts.raw ?? false;
  }
}

export type SevState = 'uninit' | 'launch-update' | 'launch-secret' | 'running';

/** QEMU's SevState enum values. */
const SEV_STATE_NUMBER: Record<SevState, number> = { uninit: 0, 'launch-update': 1, 'launch-secret': 2, running: 3 };

export interface HostCpu {
  cbitpos: number;
  /** CPUID(1).EAX of the host, for `-cpu host` SEV-ES VMSAs. */
  signature?: number;
}

/** glibc's strerror() for the errors an open() of a device path gives (Node only has the codes). */
const STRERROR: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ENXIO: 'No such device or address',
  ENODEV: 'No such device',
  EROFS: 'Read-only file system',
  ELOOP: 'Too many levels of symbolic links',
  ETXTBSY: 'Text file busy',
  EBUSY: 'Device or resource busy',
  ENAMETOOLONG: 'File name too long',
};

export function strerror(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return (code && STRERROR[code]) ?? (e as Error).message;
}

/**
 * sev_read_file_base64(): g_file_get_contents() then g_base64_decode(),
 * which never fails (GLib skips what is not base64), so a damaged file
 * reaches the firmware as whatever bytes it decodes to.
 */
function readBase64File(file: string): Buffer {
  let text: string;
  try {
    text = fs.readFileSync(file, 'latin1');
  } catch (e) {
    throw new QemuStartError(`SEV: Failed to read '${file}' (Failed to open file \u201c${file}\u201d: ${strerror(e)})`);
  }
  return glibBase64Decode(text);
}

/**
 * QEMU's open(sev-device, O_RDWR): through the shim for the simulated path, a real open()
 * otherwise (whose node then answers SEV_ISSUE_CMD with ENOTTY). `where` is QEMU's function
 * name in the message (sev_kvm_init on 7.2, sev_common_kvm_init on 9.1). Throws QemuStartError.
 */
export function openSevDevice(dev: string, device: SevDeviceAccess, where: string): void {
  const kvmFailed = 'failed to initialize kvm: Operation not permitted';
  const simulated = dev === device.simulatedPath;
  if (!simulated || device.viaShim) {
    let fd: number;
    try {
      fd = fs.openSync(dev, fs.constants.O_RDWR);
    } catch (e) {
      throw new QemuStartError(`${where}: Failed to open ${dev} '${strerror(e)}'\n${kvmFailed}`);
    }
    fs.closeSync(fd);
    if (!simulated) throw new QemuStartError(`${where}: failed to get platform status ret=-1 fw_error='0: '\n${kvmFailed}`);
  }
}

/** A QAPI command's members as the QMP input visitor checks them: in schema order (missing, type), then any unexpected key. */
export function qapiArgs(args: Record<string, unknown>, members: Array<{ name: string; type: 'str' | 'uint64'; optional?: boolean }> = []): void {
  for (const m of members) {
    if (!(m.name in args)) {
      if (m.optional) continue;
      throw new QmpReply('GenericError', `Parameter '${m.name}' is missing`);
    }
    const v = args[m.name];
    if (m.type === 'str' && typeof v !== 'string') throw new QmpReply('GenericError', `Invalid parameter type for '${m.name}', expected: string`);
    if (m.type === 'uint64' && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0))
      throw new QmpReply('GenericError', `Invalid parameter type for '${m.name}', expected: uint64`);
  }
  const known = new Set(members.map((m) => m.name));
  for (const k of Object.keys(args)) if (!known.has(k)) throw new QmpReply('GenericError', `Parameter '${k}' is unexpected`);
}

/** The QAPI input visitor's checks for a command whose only member is one required string. */
export function qapiString(args: Record<string, unknown>, name: string): string {
  qapiArgs(args, [{ name, type: 'str' }]);
  return args[name] as string;
}

/** How the wrapper reaches the sev-device QEMU opens O_RDWR. */
export interface SevDeviceAccess {
  /** The path the simulator serves ($SEVKIT_SIM_DEVICE, default /dev/sev). */
  simulatedPath: string;
  /** The LD_PRELOAD shim is loaded here, so an open() of simulatedPath reaches the simulator (and its open faults). */
  viaShim: boolean;
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
    private readonly device: SevDeviceAccess = { simulatedPath: '/dev/sev', viaShim: false },
    /** The played QEMU is >= 9.1: query-sev carries `sev-type` (qemuHasSnp). */
    private readonly sevInfoUnion = false,
  ) {}

  /**
   * sev_kvm_init() of QEMU 7.2, in its order: cbitpos and reduced-phys-bits,
   * open(sev-device, O_RDWR), SEV_PLATFORM_STATUS (api/build cached; an
   * SEV-ES policy needs CONFIG_ES), KVM_SEV_INIT / KVM_SEV_ES_INIT (KVM
   * INITs an UNINIT platform), then LAUNCH_START with the session files.
   */
  private async kvmInit(es: boolean): Promise<void> {
    const cfg = this.cfg;
    if (cfg.cbitpos !== this.host.cbitpos) {
      throw new QemuStartError(`sev_kvm_init: cbitpos check failed, host '${this.host.cbitpos}' requested '${cfg.cbitpos ?? 0}'`);
    }
    if (cfg.reducedPhysBits < 1 || cfg.reducedPhysBits > 63) {
      throw new QemuStartError(`sev_kvm_init: reduced_phys_bits check failed, it should be >=1, and <=63 requested '${cfg.reducedPhysBits}'`);
    }
    const kvmFailed = 'failed to initialize kvm: Operation not permitted';
    openSevDevice(cfg.sevDevice, this.device, 'sev_kvm_init');
    let st: PlatformStatusInfo;
    try {
      st = await this.fw.platformStatus();
    } catch (e) {
      if (!(e instanceof GuestFirmwareError)) throw e;
      throw new QemuStartError(`sev_kvm_init: failed to get platform status ret=-1 fw_error='${e.fwStatus}: ${fwStatusText(e.fwStatus)}'\n${kvmFailed}`);
    }
    this.api = { major: st.major, minor: st.minor, build: st.build };
    if (es && !st.esConfigured) {
      throw new QemuStartError(`sev_kvm_init: guest policy requires SEV-ES, but host SEV-ES support unavailable\n${kvmFailed}`);
    }
    try {
      await this.fw.sevInit(es);
    } catch (e) {
      if (!(e instanceof GuestFirmwareError)) throw e;
      throw new QemuStartError(`sev_kvm_init: failed to initialize ret=-1 fw_error=${e.fwStatus} '${fwStatusText(e.fwStatus)}'\n${kvmFailed}`);
    }
    const noContext = `sev_kvm_init: failed to create encryption context\n${kvmFailed}`;
    let godh: Buffer | undefined;
    let session: Buffer | undefined;
    try {
      godh = cfg.dhCertFile ? readBase64File(cfg.dhCertFile) : undefined;
      session = cfg.sessionFile ? readBase64File(cfg.sessionFile) : undefined;
    } catch (e) {
      if (e instanceof QemuStartError) throw new QemuStartError(`${e.message}\n${noContext}`);
      throw e;
    }
    if ((godh === undefined) !== (session === undefined)) {
      throw new QemuStartError(
        `sev_launch_start: ${godh ? 'session-file' : 'dh-cert-file'} is required when ${godh ? 'dh-cert-file' : 'session-file'} is given\n${noContext}`,
      );
    }
    try {
      this.handle = await this.fw.launchStart({ policy: cfg.policy, godh, session, ...(this.guestDir ? { name: path.basename(this.guestDir) } : {}) });
    } catch (e) {
      if (e instanceof GuestFirmwareError) {
        throw new QemuStartError(`sev_launch_start: LAUNCH_START ret=1 fw_error=${e.fwStatus} '${fwStatusText(e.fwStatus)}'\n${noContext}`);
      }
      throw e;
    }
    this.state = 'launch-update';
  }

  /** Everything QEMU does from accelerator init to machine-init-done. Throws QemuStartError. */
  async launch(): Promise<void> {
    const cfg = this.cfg;
    const es = (cfg.policy & 0x4) !== 0;
    await this.kvmInit(es);
    if (!this.q.firmware) throw new QemuStartError('SEV: guest firmware (pflash unit 0 or -bios) is required for an SEV guest');
    let image: Buffer;
    try {
      image = fs.readFileSync(this.q.firmware);
    } catch (e) {
      // pflash: the -drive's block layer error with its option as location; -bios: x86_bios_rom_init's fprintf.
      const from = this.q.firmwareFrom;
      if (from === 'bios') throw new QemuStartError(`qemu: could not load PC BIOS '${this.q.firmware}'`, { raw: true });
      throw new QemuStartError(`${from ? `-drive ${from.drive}: ` : ''}Could not open '${this.q.firmware}': ${strerror(e)}`);
    }
    // pc_system_flash_map(): pflash in whole 4 KiB sectors; x86_bios_rom_init(): -bios in whole 64 KiB.
    if (this.q.firmwareFrom === 'bios' && (image.length === 0 || image.length % 65536 !== 0)) {
      throw new QemuStartError(`qemu: could not load PC BIOS '${this.q.firmware}'`, { raw: true });
    }
    if (this.q.firmwareFrom !== 'bios' && (image.length === 0 || image.length % 4096 !== 0)) {
      throw new QemuStartError(`system firmware block device pflash0 has invalid size ${image.length}\ninfo: its size must be a non-zero multiple of 0x1000`);
    }
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
      // x86_load_linux()'s own fprintf texts (QEMU 7.2 hw/i386/x86.c).
      const read = (f: string, what: 'kernel' | 'initrd') => {
        try {
          return fs.readFileSync(f);
        } catch (e) {
          const why = strerror(e);
          throw new QemuStartError(
            what === 'kernel'
              ? `qemu: could not open kernel file '${f}': ${why}`
              : `qemu: error reading initrd ${f}: Failed to open file \u201c${f}\u201d: ${why}`,
            { raw: true },
          );
        }
      };
      hashesTable = buildKernelHashesTable({
        kernel: read(this.q.kernel, 'kernel'),
        initrd: this.q.initrd ? read(this.q.initrd, 'initrd') : undefined,
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

    try {
      // The daemon reads and measures the file itself (hashed once per file version) instead of
      // receiving the image over its socket; a file that changed since this read shows as a new length.
      const measured = await this.fw.launchUpdateFile(this.handle, path.resolve(this.q.firmware));
      if (measured !== image.length)
        throw new QemuStartError(`firmware ${this.q.firmware} changed while the guest was launched (${image.length} bytes read, ${measured} measured)`);
      if (hashesTable) await this.fw.launchUpdateData(this.handle, hashesTable);
      if (vmsas) {
        await this.fw.launchUpdateVmsa(this.handle, vmsas.bsp);
        for (let i = 1; i < vmsas.numCpus; i++) await this.fw.launchUpdateVmsa(this.handle, vmsas.ap!);
      }
    } catch (e) {
      await this.decommission();
      if (e instanceof GuestFirmwareError) {
        throw new QemuStartError(
          `sev_launch_update_data: LAUNCH_UPDATE ret=1 fw_error=${e.fwStatus} '${fwStatusText(e.fwStatus)}'\nfailed to encrypt pflash rom`,
        );
      }
      throw e;
    }
    try {
      this.measurement = await this.fw.launchMeasure(this.handle);
    } catch (e) {
      if (!(e instanceof GuestFirmwareError)) throw e;
      // QEMU 7.2 only reports it: the guest stays in launch-update without a measurement.
      process.stderr.write(`qemu-system-x86_64: sev_launch_get_measure: LAUNCH_MEASURE ret=1 fw_error=${e.fwStatus} '${fwStatusText(e.fwStatus)}'\n`);
      // What the simulated firmware does not model (LAUNCH_MEASURE below API 0.17) says so on its own line.
      if (e.fwStatusName === 'UNSUPPORTED') process.stderr.write(`sevkit sim: ${e.message}\n`);
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
    // The decrypted secret is guest memory: it does not outlive the guest.
    if (this.guestDir) fs.rmSync(this.guestDir, { recursive: true, force: true });
  }

  /** SEV QMP commands; undefined for everything else. */
  async qmp(command: string, args: Record<string, unknown>): Promise<unknown> {
    switch (command) {
      case 'query-sev':
        qapiArgs(args);
        return sevInfoReply({ enabled: true, api: this.api, state: this.state, policy: this.cfg.policy, handle: this.handle }, this.sevInfoUnion);
      case 'query-sev-launch-measure':
        qapiArgs(args);
        if (!this.measurement || this.state === 'uninit' || this.state === 'launch-update') {
          throw new QmpReply('GenericError', 'SEV launch measurement is not available');
        }
        return { data: this.measurement.toString('base64') };
      case 'query-sev-capabilities':
        qapiArgs(args);
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

  /**
   * qmp_sev_inject_launch_secret() + sev_inject_launch_secret() of 7.2: QAPI
   * checks, the default gpa from the OVMF table, the state (printed with %x),
   * then GLib's lenient base64 (line breaks and stray characters skipped;
   * only an empty result is an error).
   */
  private async injectSecret(args: Record<string, unknown>): Promise<unknown> {
    qapiArgs(args, [
      { name: 'packet-header', type: 'str' },
      { name: 'secret', type: 'str' },
      { name: 'gpa', type: 'uint64', optional: true },
    ]);
    let gpa: number;
    if (args.gpa !== undefined) gpa = args.gpa as number;
    else {
      if (this.secretAreaBase === undefined) throw new QmpReply('GenericError', 'SEV: no secret area found in OVMF, gpa must be specified.');
      gpa = this.secretAreaBase;
    }
    if (this.state !== 'launch-secret') throw new QmpReply('GenericError', `SEV: Not in correct state. (LSECRET) ${SEV_STATE_NUMBER[this.state].toString(16)}`);
    const header = glibBase64Decode(args['packet-header'] as string);
    if (header.length === 0) throw new QmpReply('GenericError', 'SEV: Failed to decode sequence header');
    const secret = glibBase64Decode(args.secret as string);
    if (secret.length === 0) throw new QmpReply('GenericError', 'SEV: Failed to decode data');
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
        fs.writeFileSync(
          path.join(this.guestDir, 'launch-secret.json'),
          `${JSON.stringify({ gpa, length: plain.length, note: 'SIMULATED: what the guest would find at gpa' })}\n`,
          { mode: 0o600 },
        );
      }
    } finally {
      plain.fill(0);
    }
    return {};
  }
}

/**
 * query-sev for a legacy SEV or SEV-ES guest (or none: `enabled` false and every value zero), keys in the
 * order QEMU's QDict writes them (its hash buckets: the 7.2 capture in kernel-qemu.md §3.2). QEMU >= 9.1
 * (`union`) adds `sev-type`, which is "sev" for SEV-ES guests too (SevGuestType has only sev and sev-snp)
 * and for a QEMU with no SEV guest (the zeroed SevInfo's tag).
 */
export function sevInfoReply(
  info: { enabled: boolean; api: ApiInfo; state: SevState; policy: number; handle: number },
  union: boolean,
): Record<string, unknown> {
  return {
    enabled: info.enabled,
    'api-minor': info.api.minor,
    handle: info.handle,
    state: info.state,
    'api-major': info.api.major,
    ...(union ? { 'sev-type': 'sev' } : {}),
    'build-id': info.api.build,
    policy: info.policy,
  };
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
