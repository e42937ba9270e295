/**
 * QEMU >= 9.1's SEV-SNP part (target/i386/sev.c, snp-launch.md §3), played by the wrapper:
 * the checks of sev_common_kvm_init, the policy as the firmware judges it at
 * SNP_LAUNCH_START, the launch digest of exactly what this QEMU loads (the -bios image,
 * the kernel-hashes page, one VMSA per vCPU; lib/snp/digest.ts), and at the first
 * transition to running SNP_LAUNCH_FINISH's checks of the ID block (signatures, launch
 * digest, policy). Then the SNP QMP answers, with no launch measurement and no secret
 * injection, as on QEMU 9.1.
 *
 * SIMULATED: the simulator's firmware model has no SNP guest context (no ASID, no RMP, no
 * encrypted pages); the wrapper computes the digest and does the firmware's checks itself
 * and records the result under the simulator's state dir (`guests/<vm>/snp-launch.json`)
 * for the simulated guest side (its reports) to read.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ParsedQemu, SnpGuestConfig } from './argv.js';
import { GuestFirmwareError, fwStatusText, type ApiInfo, type GuestFirmware } from './firmware.js';
import { openSevDevice, qapiArgs, qapiString, QemuStartError, querySevCapabilities, strerror, type HostCpu, type SevDeviceAccess } from './guest.js';
import { QmpReply } from './qmp-server.js';
import { writeFileAtomic } from '../../util/fs.js';
import { SevRet } from '../../platform/constants.js';
import { SNP_POLICY } from '../../vm/snp.js';

/** SNP guest states QEMU reports (there is never launch-secret). */
export type SnpState = 'uninit' | 'launch-update' | 'running';
const SNP_STATE_NUMBER: Record<SnpState, number> = { uninit: 0, 'launch-update': 1, running: 3 };

/** The file the simulated guest side reads: what the firmware would put into this guest's reports. */
export const SNP_LAUNCH_RECORD = 'snp-launch.json';

/** SEV_FEATURES QEMU 9.1 … 10.1 gets from KVM on Linux >= 6.11: SNPActive only (snp-launch.md §1.5). */
const QEMU_SNP_GUEST_FEATURES = 0x1n;

const KVM_FAILED = 'failed to initialize kvm: Operation not permitted';

/** What the record carries (hex strings for bytes, "0x…" for u64s). */
export interface SnpLaunchRecord {
  note: string;
  qemuVersion: string;
  firmware: string;
  vcpus: number;
  vcpuSig: string;
  guestFeatures: string;
  kernelHashes: boolean;
  policy: string;
  measurement: string;
  hostData: string;
  idKeyDigest: string;
  authorKeyDigest: string;
  authorKeyEn: boolean;
  familyId: string;
  imageId: string;
  guestSvn: number;
  vcekDisabled: boolean;
  api: ApiInfo;
}

export class SnpGuest {
  state: SnpState = 'uninit';
  private api: ApiInfo = { major: 0, minor: 0, build: 0 };
  private digest: Buffer | undefined;
  private vcpuSig = 0;
  private recordFile: string | undefined;

  constructor(
    readonly cfg: SnpGuestConfig,
    private readonly q: ParsedQemu,
    private readonly fw: GuestFirmware,
    private readonly host: HostCpu,
    /** `<SEVKIT_SIM_STATE>/guests/<vm>` */
    private readonly guestDir: string | undefined,
    private readonly device: SevDeviceAccess,
    /** The QEMU version the wrapper plays (>= 9.1). */
    private readonly qemuVersion: string,
  ) {}

  /** From accelerator init to machine-init-done: kvm init, SNP_LAUNCH_START, the measured loads. Throws QemuStartError. */
  async launch(): Promise<void> {
    const cfg = this.cfg;
    if (cfg.cbitpos !== this.host.cbitpos)
      throw new QemuStartError(`sev_common_kvm_init: cbitpos check failed, host '${this.host.cbitpos}' requested '${cfg.cbitpos ?? 0}'`);
    if (cfg.reducedPhysBits < 1 || cfg.reducedPhysBits > 63) {
      throw new QemuStartError(`sev_common_kvm_init: reduced_phys_bits check failed, it should be >=1, and <=63 requested '${cfg.reducedPhysBits}'`);
    }
    openSevDevice(cfg.sevDevice, this.device, 'sev_common_kvm_init');
    try {
      const st = await this.fw.platformStatus();
      this.api = { major: st.major, minor: st.minor, build: st.build };
    } catch (e) {
      if (!(e instanceof GuestFirmwareError)) throw e;
      throw new QemuStartError(
        `sev_common_kvm_init: failed to get platform status ret=-1 fw_error='${e.fwStatus}: ${fwStatusText(e.fwStatus)}'\n${KVM_FAILED}`,
      );
    }
    const refused = this.launchStartRefusal();
    if (refused !== undefined) {
      throw new QemuStartError(
        `sev_snp_launch_start: SNP_LAUNCH_START ret=-5 fw_error=${refused} '${fwStatusText(refused)}'\nsev_common_kvm_init: failed to create encryption context\n${KVM_FAILED}`,
      );
    }
    this.state = 'launch-update';
    const file = this.q.firmware;
    if (!file) throw new QemuStartError('SEV-SNP: guest firmware (-bios) is required for an SEV-SNP guest');
    if (this.q.firmwareFrom !== 'bios') {
      // SNP guests have no read-only memslots, which pflash needs (AMDSEV#236); -bios works (edk2#6285).
      throw new QemuStartError(
        'kvm_set_phys_mem: error registering slot: Invalid argument (KVM_SET_USER_MEMORY_REGION2: SEV-SNP guests cannot have read-only pflash; give the firmware with -bios)',
      );
    }
    let image: Buffer;
    try {
      image = fs.readFileSync(file);
    } catch {
      throw new QemuStartError(`qemu: could not load PC BIOS '${file}'`, { raw: true });
    }
    if (image.length === 0 || image.length % 65536 !== 0) throw new QemuStartError(`qemu: could not load PC BIOS '${file}'`, { raw: true });
    const read = (f: string, what: string): Buffer => {
      try {
        return fs.readFileSync(f);
      } catch (e) {
        throw new QemuStartError(
          what === 'kernel' ? `qemu: could not open kernel file '${f}': ${strerror(e)}` : `qemu: error reading initrd ${f}: ${strerror(e)}`,
          { raw: true },
        );
      }
    };
    const kernel =
      cfg.kernelHashes && this.q.kernel
        ? { kernel: read(this.q.kernel, 'kernel'), initrd: this.q.initrd ? read(this.q.initrd, 'initrd') : null, cmdline: this.q.append ?? null }
        : null;
    const model = this.q.cpuModel ?? 'qemu64';
    const vcpu: { vcpuType?: string; vcpuSig?: number } = {};
    if (model === 'host' || model === 'max') {
      if (this.host.signature === undefined) throw new QemuStartError(`SEV-SNP: cannot tell the CPUID signature of -cpu ${model} on this simulated host`);
      vcpu.vcpuSig = this.host.signature;
    } else vcpu.vcpuType = model;
    const { computeSnpDigest, loadSnpFirmware } = await import('../../snp/digest.js');
    try {
      // QEMU launches a firmware without SEV metadata (it just has no sections to add); such a guest could not boot.
      const fw = loadSnpFirmware(image, file, { allowNoMetadata: true });
      if (fw.sections.length === 0)
        process.stderr.write(
          `sevkit sim: ${file} has no SEV metadata (no secrets or CPUID page): an SNP guest could not boot from it; measured as pages and VMSAs only\n`,
        );
      const r = computeSnpDigest({ firmware: fw, vcpus: this.q.vcpus, ...vcpu, guestFeatures: QEMU_SNP_GUEST_FEATURES, vmmType: 'qemu', kernel });
      this.digest = r.digest;
      this.vcpuSig = r.vcpuSig;
    } catch (e) {
      throw new QemuStartError(`SEV-SNP: ${(e as Error).message}`);
    }
  }

  /**
   * The firmware's SNP_LAUNCH_START policy checks [hedge: from the ABI as the tools implement it]:
   * reserved bit 17 set and nothing above bit 25 (else INVALID_PARAM); the ABI minimum within the
   * firmware's API, SMT allowed on this SMT host, no ciphertext hiding or RAPL-disable the platform
   * does not have (else POLICY_FAILURE).
   */
  private launchStartRefusal(): number | undefined {
    const p = this.cfg.policy;
    if ((p & SNP_POLICY.RESERVED_1) === 0n || p >> 26n !== 0n) return SevRet.SEV_RET_INVALID_PARAM;
    const abiMajor = Number((p >> 8n) & 0xffn);
    const abiMinor = Number(p & 0xffn);
    if (abiMajor > this.api.major || (abiMajor === this.api.major && abiMinor > this.api.minor)) return SevRet.SEV_RET_POLICY_FAILURE;
    // The simulated EPYC runs with SMT on; its firmware has neither ciphertext hiding nor RAPL disabled.
    if ((p & SNP_POLICY.SMT) === 0n) return SevRet.SEV_RET_POLICY_FAILURE;
    if ((p & (SNP_POLICY.CIPHERTEXT_HIDING | SNP_POLICY.RAPL_DIS)) !== 0n) return SevRet.SEV_RET_POLICY_FAILURE;
    return undefined;
  }

  /**
   * The first transition to running: SNP_LAUNCH_FINISH. With an ID block the firmware checks its
   * signature (and the author's), that its LD is this launch digest (BAD_MEASUREMENT) and its policy
   * this policy (POLICY_FAILURE); then the guest's identity is fixed and recorded. Throws QemuStartError
   * with QEMU's line (QEMU exits on it).
   */
  async finish(): Promise<void> {
    if (this.state !== 'launch-update') return;
    const cfg = this.cfg;
    const zero48 = Buffer.alloc(48);
    let ids: { idKeyDigest: Buffer; authorKeyDigest: Buffer; familyId: Buffer; imageId: Buffer; guestSvn: number } = {
      idKeyDigest: zero48,
      authorKeyDigest: zero48,
      familyId: Buffer.alloc(16),
      imageId: Buffer.alloc(16),
      guestSvn: 0,
    };
    const fail = (code: number): never => {
      throw new QemuStartError(`sev_snp_launch_finish: SNP_LAUNCH_FINISH ret=-5 fw_error=${code} '${fwStatusText(code)}'`);
    };
    if (cfg.idBlock) {
      const { verifyIdAuth, IdBlockError } = await import('../../snp/idblock.js');
      let v;
      try {
        v = verifyIdAuth(cfg.idBlock, cfg.idAuth ?? Buffer.alloc(4096), { authorKeyEnabled: cfg.authorKeyEnabled });
      } catch (e) {
        if (!(e instanceof IdBlockError)) throw e;
        return fail(e.code === 'ERR_SNP_ID_SIGNATURE' ? SevRet.SEV_RET_BAD_SIGNATURE : SevRet.SEV_RET_INVALID_PARAM);
      }
      if (!crypto.timingSafeEqual(v.fields.ld, this.digest!)) fail(SevRet.SEV_RET_BAD_MEASUREMENT);
      if (v.fields.policy !== cfg.policy) fail(SevRet.SEV_RET_POLICY_FAILURE);
      ids = {
        idKeyDigest: v.idKeyDigest,
        authorKeyDigest: v.authorKeyDigest ?? zero48,
        familyId: v.fields.familyId,
        imageId: v.fields.imageId,
        guestSvn: v.fields.guestSvn,
      };
    }
    this.writeRecord({
      note: "SIMULATED SEV-SNP launch (sevkit sim): what the firmware would put into this guest's attestation reports",
      qemuVersion: this.qemuVersion,
      firmware: path.resolve(this.q.firmware!),
      vcpus: this.q.vcpus,
      vcpuSig: `0x${this.vcpuSig.toString(16)}`,
      guestFeatures: `0x${QEMU_SNP_GUEST_FEATURES.toString(16)}`,
      kernelHashes: cfg.kernelHashes && !!this.q.kernel,
      policy: `0x${cfg.policy.toString(16)}`,
      measurement: this.digest!.toString('hex'),
      hostData: (cfg.hostData ?? Buffer.alloc(32)).toString('hex'),
      idKeyDigest: ids.idKeyDigest.toString('hex'),
      authorKeyDigest: ids.authorKeyDigest.toString('hex'),
      authorKeyEn: !!cfg.idBlock && cfg.authorKeyEnabled,
      familyId: ids.familyId.toString('hex'),
      imageId: ids.imageId.toString('hex'),
      guestSvn: ids.guestSvn,
      vcekDisabled: cfg.vcekDisabled,
      api: this.api,
    });
    this.state = 'running';
  }

  private writeRecord(r: SnpLaunchRecord): void {
    if (!this.guestDir) return;
    fs.mkdirSync(this.guestDir, { recursive: true, mode: 0o700 });
    this.recordFile = path.join(this.guestDir, SNP_LAUNCH_RECORD);
    writeFileAtomic(this.recordFile, `${JSON.stringify(r, null, 2)}\n`, 0o600);
  }

  /** The launch digest computed at launch (48 bytes), for tests and the record. */
  get launchDigest(): Buffer | undefined {
    return this.digest;
  }

  /** The guest is gone: its record goes with it. */
  async decommission(): Promise<void> {
    if (this.recordFile) fs.rmSync(this.recordFile, { force: true });
    this.recordFile = undefined;
    this.state = 'uninit';
    return Promise.resolve();
  }

  /** SEV QMP commands as QEMU 9.1 answers them for an SNP guest; undefined for everything else. */
  async qmp(command: string, args: Record<string, unknown>): Promise<unknown> {
    switch (command) {
      case 'query-sev':
        qapiArgs(args);
        // In QDict's order, as sevInfoReply.
        return {
          enabled: true,
          'api-minor': this.api.minor,
          state: this.state,
          'api-major': this.api.major,
          'snp-policy': Number(this.cfg.policy),
          'sev-type': 'sev-snp',
          'build-id': this.api.build,
        };
      case 'query-sev-launch-measure':
        qapiArgs(args);
        // The SNP object is not a sev-guest, and SNP has no LAUNCH_MEASURE.
        throw new QmpReply('GenericError', 'SEV launch measurement is not available');
      case 'sev-inject-launch-secret':
        qapiArgs(args, [
          { name: 'packet-header', type: 'str' },
          { name: 'secret', type: 'str' },
          { name: 'gpa', type: 'uint64', optional: true },
        ]);
        // An SNP guest never reaches LAUNCH_SECRET: there is no host-to-guest secret channel.
        throw new QmpReply('GenericError', `SEV: Not in correct state. (LSECRET) ${SNP_STATE_NUMBER[this.state].toString(16)}`);
      case 'query-sev-attestation-report':
        qapiString(args, 'mnonce');
        // [hedge: QEMU's exact text] legacy SEV's ATTESTATION does not apply to SNP guests.
        throw new QmpReply('GenericError', 'SEV: query-sev-attestation-report is not supported for SEV-SNP guests (the guest requests its own report)');
      case 'query-sev-capabilities':
        qapiArgs(args);
        return querySevCapabilities(this.fw, this.host);
      default:
        return undefined;
    }
  }
}
