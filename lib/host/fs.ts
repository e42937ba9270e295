/**
 * Every file the host probes read, and the root-prefix seam that lets tests and
 * the simulator substitute a fake host.
 *
 * ── Contract with the simulator (lib/sim writes these under its state dir; the
 *    directory is passed as SEVKIT_HOST_ROOT) ────────────────────────────────
 *
 * Paths below are relative to the root (`/` on a real host). "Y\n" is what
 * Linux prints for a bool module parameter; "1\n"/"0\n" (int params on old
 * kernels) and "N\n" are accepted too.
 *
 *   sys/module/kvm_amd/                     directory; its existence = kvm_amd loaded
 *   sys/module/kvm_amd/parameters/sev       "Y\n"   (SEV enabled in KVM)
 *   sys/module/kvm_amd/parameters/sev_es    "Y\n"   (SEV-ES enabled in KVM)
 *   sys/module/kvm_amd/parameters/sev_snp   "Y\n"   (SNP enabled in KVM; the file exists on Linux >= 6.11 only)
 *   dev/sev                                 regular empty file, mode 0660 (or 0666): only open()ed
 *                                           O_RDONLY and O_WRONLY to test access; firmware commands
 *                                           go through the addon to SEVKIT_DEVICE or /dev/sev (the shim)
 *   dev/kvm                                 regular empty file, mode 0660 (open()ed O_RDWR; a regular
 *                                           file means "fake root": the API version is then taken as
 *                                           KVM_API_VERSION 12 instead of asking the ioctl). A character
 *                                           device here (e.g. a symlink to /dev/null) asks the fixture
 *                                           to have KVM_GET_API_VERSION issued on it through the addon
 *   dev/cpu/0/msr                           sparse file; the 8 bytes at offset 0xC0010010 (SYSCFG MSR)
 *                                           hold the u64 little-endian SYSCFG value. Genoa with SME/SNP
 *                                           enabled: 0x0000000003FC0000 (bit 23 MemEncryptionModEn,
 *                                           bit 24 SNPEn, bit 25 VMPLEn are the bits read); RMP_BASE at
 *                                           0xC0010132 and RMP_END at 0xC001013A (RMP_BASE + 8: the adjacent
 *                                           MSRs would overlap in a file), zeros when the BIOS set up no RMP
 *   sys/class/iommu/ivhd0                   directory; any entry = an IOMMU is on (SNP_INIT needs it)
 *   proc/self/limits                        Linux /proc/<pid>/limits text; the line
 *                                           "Max locked memory         unlimited            unlimited            bytes"
 *                                           (numbers in bytes, or "unlimited")
 *   proc/cmdline                            kernel command line, e.g.
 *                                           "BOOT_IMAGE=/vmlinuz-6.12 root=/dev/sda1 ro mem_encrypt=on kvm_amd.sev=1 kvm_amd.sev_es=1 kvm_amd.sev_snp=1\n"
 *                                           (only used to explain a failure, e.g. mem_encrypt=off)
 *   proc/sys/kernel/osrelease               optional, e.g. "6.12.0-sim\n" (kernel release shown in reports)
 *   proc/cpuinfo                            optional; CPUID from it only when neither SEVKIT_CPUID nor the addon gives
 *                                           CPUID; its flags line's sev_snp is read for the SNP checks either way
 *
 * CPUID comes from SEVKIT_CPUID (see cpuid.ts), with these leaves (all `:0` subleaf):
 *   0x0         [maxLeaf, 0x68747541, 0x444d4163, 0x69746e65] = EAX, EBX "Auth", ECX "cAMD", EDX "enti"
 *               ("AuthenticAMD" read in EBX‖EDX‖ECX order; Intel: 0x756e6547, 0x6c65746e, 0x49656e69)
 *   0x1         EAX = processor signature (Genoa 0x00A10F11), other registers 0
 *   0x80000000  EAX = max extended leaf (>= 0x8000001f)
 *   0x80000001  EAX = family/model signature (Genoa: 0x00A10F11 = family 0x19, model 0x11)
 *   0x80000002..0x80000004  brand string, 16 bytes per leaf in EAX,EBX,ECX,EDX LE ("AMD EPYC 9654 96-Core Processor")
 *   0x8000001f  EAX bits 0 SME, 1 SEV, 2 page-flush MSR, 3 SEV-ES, 4 SNP, 5 VMPL;
 *               EBX = cbitpos | reducedPhysBits<<6 | numVmpls<<12 (sim: 51 | 1<<6 | 4<<12 = 0x4073);
 *               ECX = max ASID (number of encrypted guests), EDX = min SEV (non-ES) ASID, > 1 so that
 *               ASIDs 1..EDX-1 exist for SEV-ES/SNP (sim: ECX 1006, EDX 100)
 *
 * Not under the root (real paths, overridable): QEMU via SEVKIT_QEMU or `qemu-system-x86_64` on PATH
 * (the sim wrapper must answer `--version` with "QEMU emulator version X.Y.Z ..."), OVMF images in
 * SEVKIT_OVMF_DIRS (':'-separated) or the Debian/Fedora directories, and /var/lib/dpkg/status for the
 * ovmf package version.
 *
 * lib/sim/host-fixture.ts writes exactly this layout (writeHostFixture) and is what the host tests use.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The logical paths (as on a real host) the probes read. */
export const HOST_PATHS = {
  kvmAmdModule: '/sys/module/kvm_amd',
  kvmAmdSev: '/sys/module/kvm_amd/parameters/sev',
  kvmAmdSevEs: '/sys/module/kvm_amd/parameters/sev_es',
  kvmAmdSevSnp: '/sys/module/kvm_amd/parameters/sev_snp',
  devSev: '/dev/sev',
  devKvm: '/dev/kvm',
  msrCpu0: '/dev/cpu/0/msr',
  limits: '/proc/self/limits',
  cmdline: '/proc/cmdline',
  osrelease: '/proc/sys/kernel/osrelease',
  cpuinfo: '/proc/cpuinfo',
} as const;

/** SYSCFG MSR number; also its byte offset in /dev/cpu/N/msr. */
export const MSR_SYSCFG = 0xc0010010;
/** RMP_BASE / RMP_END MSR numbers (also their offsets in /dev/cpu/N/msr): the BIOS's RMP table for SNP. */
export const MSR_RMP_BASE = 0xc0010132;
/** See MSR_RMP_BASE. */
export const MSR_RMP_END = 0xc0010133;
/**
 * Where RMP_END sits in a fake root's dev/cpu/0/msr: that is a regular file holding each
 * MSR's 8 bytes at the MSR number, and the adjacent RMP_BASE/RMP_END would overlap there.
 */
export const FAKE_RMP_END_OFFSET = MSR_RMP_BASE + 8;

/** An errno-style failure as sevctl would print it: "Permission denied (os error 13)". */
export interface IoFailure {
  code: string;
  errno: number;
  /** Rust io::Error Display text, which sevctl's messages embed. */
  text: string;
}

const STRERROR: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EBUSY: 'Device or resource busy',
  ENXIO: 'No such device or address',
  ENODEV: 'No such device',
  EIO: 'Input/output error',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ENOTTY: 'Inappropriate ioctl for device',
  EROFS: 'Read-only file system',
  EINVAL: 'Invalid argument',
  ELOOP: 'Too many levels of symbolic links',
  EMFILE: 'Too many open files',
};

export function ioFailure(e: unknown): IoFailure {
  const err = e as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : 'EIO';
  const errno = (os.constants.errno as Record<string, number>)[code] ?? (typeof err?.errno === 'number' ? Math.abs(err.errno) : 5);
  const text = `${STRERROR[code] ?? code} (os error ${errno})`;
  return { code, errno, text };
}

/** The result of one HostFs access: the value, or the errno-style failure (never thrown). */
export type Read<T> = { ok: true; value: T } | { ok: false; error: IoFailure };

/** Options of HostFs. */
export interface HostFsOptions {
  /**
   * Test seam: refuse open() of a logical path for reading and/or writing with an errno code,
   * as a non-root user would see it (tests often run as root, which bypasses mode bits).
   */
  deny?: Record<string, { read?: string; write?: string }>;
}

/**
 * File access below a root prefix. `root` '' (or '/') is the real host; default SEVKIT_HOST_ROOT.
 * Synchronous on purpose: every read is a tiny sysfs/procfs file, and sync reads
 * keep sev-status free of event-loop overhead at start-up. Reads never throw: they return a Read.
 */
export class HostFs {
  readonly root: string;
  readonly #deny: NonNullable<HostFsOptions['deny']>;

  constructor(root?: string, options: HostFsOptions = {}) {
    const r = root ?? '';
    this.root = r === '/' ? '' : r.replace(/\/+$/, '');
    this.#deny = options.deny ?? {};
  }

  #denied(p: string, flags: number): IoFailure | null {
    const d = this.#deny[p];
    if (!d) return null;
    const acc = flags & 3;
    const code = (acc === fs.constants.O_RDONLY || acc === fs.constants.O_RDWR ? d.read : undefined) ?? (acc !== fs.constants.O_RDONLY ? d.write : undefined);
    return code ? ioFailure(Object.assign(new Error(code), { code })) : null;
  }

  /** Where a logical host path really lives. */
  resolve(p: string): string {
    return this.root ? path.join(this.root, p) : p;
  }

  get isFake(): boolean {
    return this.root !== '';
  }

  exists(p: string): boolean {
    return fs.existsSync(this.resolve(p));
  }

  readText(p: string): Read<string> {
    const denied = this.#denied(p, fs.constants.O_RDONLY);
    if (denied) return { ok: false, error: denied };
    try {
      return { ok: true, value: fs.readFileSync(this.resolve(p), 'utf8') };
    } catch (e) {
      return { ok: false, error: ioFailure(e) };
    }
  }

  /** open(2) then close: the access test sevctl does for /dev/sev and /dev/kvm. */
  canOpen(p: string, flags: number): Read<true> {
    const denied = this.#denied(p, flags);
    if (denied) return { ok: false, error: denied };
    try {
      // O_NONBLOCK: a FIFO where a device node should be must not hang the probe in open(2).
      fs.closeSync(fs.openSync(this.resolve(p), flags | fs.constants.O_NONBLOCK));
      return { ok: true, value: true };
    } catch (e) {
      return { ok: false, error: ioFailure(e) };
    }
  }

  isCharDevice(p: string): boolean {
    try {
      return fs.statSync(this.resolve(p)).isCharacterDevice();
    } catch {
      return false;
    }
  }

  /** pread of `len` bytes at `offset` (MSR reads: offset = MSR number). */
  readAt(p: string, offset: number, len: number): Read<Buffer> {
    const denied = this.#denied(p, fs.constants.O_RDONLY);
    if (denied) return { ok: false, error: denied };
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.resolve(p), 'r');
      const buf = Buffer.alloc(len);
      const n = fs.readSync(fd, buf, 0, len, offset);
      if (n !== len) return { ok: false, error: { code: 'EIO', errno: 5, text: `short read (${n} of ${len} bytes)` } };
      return { ok: true, value: buf };
    } catch (e) {
      return { ok: false, error: ioFailure(e) };
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
}
