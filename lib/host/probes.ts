/**
 * Host probes: each a small function over an injectable environment (a HostFs root,
 * a CPUID reader, a platform factory) returning plain facts. Deciding what the facts
 * mean (PASS/FAIL, fixes, verdicts) is done elsewhere (okTree.ts, status.ts), so the
 * same facts drive `sevkit ok` and `sev-status`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OVMF_GUIDS, parseOvmfFooterTable } from '../firmware/ovmf.js';
import { HOST_PATHS, MSR_SYSCFG, ioFailure, type HostFs, type IoFailure, type Read } from './fs.js';
import { parseQemuVersion } from '../qmp/version.js';

// ── kvm_amd module parameters ────────────────────────────────────────────────

/** One kvm_amd module parameter file (sev, sev_es, sev_snp) as found on the host. */
export interface ParamFact {
  /** Logical path, as printed. */
  path: string;
  /** enabled: "Y"/"1"; disabled: any other content; missing: no such file; error: unreadable. */
  state: 'enabled' | 'disabled' | 'missing' | 'error';
  /** Trimmed file content when readable. */
  value?: string;
  error?: IoFailure;
}

export function probeParam(hfs: HostFs, p: string): ParamFact {
  if (!hfs.exists(p)) return { path: p, state: 'missing' };
  const r = hfs.readText(p);
  if (!r.ok) return { path: p, state: 'error', error: r.error };
  const value = r.value.trim();
  return { path: p, state: value === '1' || value === 'Y' ? 'enabled' : 'disabled', value };
}

/** Whether kvm_amd is loaded, and its sev / sev_es / sev_snp parameters. */
export interface KvmAmdFact {
  loaded: boolean;
  sev: ParamFact;
  sevEs: ParamFact;
  sevSnp: ParamFact;
}

export function probeKvmAmd(hfs: HostFs): KvmAmdFact {
  return {
    loaded: hfs.exists(HOST_PATHS.kvmAmdModule),
    sev: probeParam(hfs, HOST_PATHS.kvmAmdSev),
    sevEs: probeParam(hfs, HOST_PATHS.kvmAmdSevEs),
    sevSnp: probeParam(hfs, HOST_PATHS.kvmAmdSevSnp),
  };
}

// ── SYSCFG MSR ───────────────────────────────────────────────────────────────

/** The SYSCFG MSR of CPU 0 (memory-encryption and SNP enable bits), read through /dev/cpu/0/msr. */
export interface MsrFact {
  /** SYSCFG (MSR 0xC0010010) of CPU 0, or null when /dev/cpu/0/msr cannot be read. */
  value: bigint | null;
  error?: IoFailure;
}

export function probeSyscfg(hfs: HostFs): MsrFact {
  const r = hfs.readAt(HOST_PATHS.msrCpu0, MSR_SYSCFG, 8);
  return r.ok ? { value: r.value.readBigUInt64LE(0) } : { value: null, error: r.error };
}

/** SYSCFG bits sevctl and the kernel look at. */
export const SYSCFG_MEM_ENCRYPT = 1n << 23n;
export const SYSCFG_SNP_EN = 1n << 24n;
export const SYSCFG_VMPL_EN = 1n << 25n;

// ── device nodes ─────────────────────────────────────────────────────────────

/** The /dev/sev node: whether it exists and opens read-only and write-only for this user. */
export interface DevSevFact {
  path: string;
  exists: boolean;
  readable: Read<true>;
  writable: Read<true>;
}

export function probeDevSev(hfs: HostFs): DevSevFact {
  const p = HOST_PATHS.devSev;
  return {
    path: p,
    exists: hfs.exists(p),
    readable: hfs.canOpen(p, fs.constants.O_RDONLY),
    writable: hfs.canOpen(p, fs.constants.O_WRONLY),
  };
}

/** KVM_API_VERSION: 12 since Linux 2.6.22 and frozen; KVM_GET_API_VERSION always returns it. */
export const KVM_API_VERSION = 12;

/** The /dev/kvm node: whether it opens (O_RDONLY as sevctl, O_RDWR as QEMU) and its KVM API version. */
export interface KvmFact {
  path: string;
  /** open O_RDONLY, as sevctl does. */
  open: Read<true>;
  /** open O_RDWR, as QEMU needs. */
  openRw: Read<true>;
  apiVersion: number | null;
  /**
   * ioctl: KVM_GET_API_VERSION was issued (the addon's `kvmApiVersion`), apiVersion is its
   * answer or null when it failed. assumed: the node opened but the ioctl was not issued
   * (a fixture root whose dev/kvm is a regular file, or no addon), so the frozen
   * KVM_API_VERSION is reported. none: the node did not open.
   */
  apiSource: 'ioctl' | 'assumed' | 'none';
  /** Why KVM_GET_API_VERSION gave no version (sevctl: "Error - accessing KVM device node failed"). */
  ioctlError?: string;
}

export type KvmApiVersionFn = (path: string) => number | Promise<number>;

/**
 * Whether to issue KVM_GET_API_VERSION: always on the real root; under a fixture root
 * (SEVKIT_HOST_ROOT, tests) only when the fixture's dev/kvm is a character device, i.e. the
 * fixture asks for it. The ioctl goes to the resolved node under the root, so a fixture never
 * reaches the machine's own /dev/kvm unless its dev/kvm points there.
 */
export function kvmIoctlWanted(hfs: HostFs): boolean {
  return !hfs.isFake || hfs.isCharDevice(HOST_PATHS.devKvm);
}

export async function probeKvm(hfs: HostFs, kvmApiVersion?: KvmApiVersionFn): Promise<KvmFact> {
  const p = HOST_PATHS.devKvm;
  let open = hfs.canOpen(p, fs.constants.O_RDONLY);
  const openRw = hfs.canOpen(p, fs.constants.O_RDWR);
  if (!open.ok) return { path: p, open, openRw, apiVersion: null, apiSource: 'none' };
  if (kvmApiVersion && kvmIoctlWanted(hfs)) {
    try {
      const v = await kvmApiVersion(hfs.resolve(p));
      if (Number.isInteger(v) && v >= 0) return { path: p, open, openRw, apiVersion: v, apiSource: 'ioctl' };
      return { path: p, open, openRw, apiVersion: null, apiSource: 'ioctl', ioctlError: `KVM_GET_API_VERSION returned ${String(v)}` };
    } catch (e) {
      const err = e as { code?: unknown; syscall?: unknown; message?: unknown };
      const sys = typeof err?.code === 'string' && /^E[A-Z0-9]+$/.test(err.code);
      if (sys && err.syscall === 'open') {
        // The node went away or changed between the access test and the ioctl's own open:
        // that is sevctl's open failure ("Error reading /dev/kvm: (E)").
        open = { ok: false, error: ioFailure(e) };
        return { path: p, open, openRw, apiVersion: null, apiSource: 'ioctl', ioctlError: `open: ${open.error.text}` };
      }
      const why = sys ? `${typeof err.syscall === 'string' ? err.syscall : 'ioctl'}: ${ioFailure(e).text}` : String(err?.message ?? e).split('\n')[0]!;
      return { path: p, open, openRw, apiVersion: null, apiSource: 'ioctl', ioctlError: why };
    }
  }
  return { path: p, open, openRw, apiVersion: KVM_API_VERSION, apiSource: 'assumed' };
}

// ── RLIMIT_MEMLOCK ───────────────────────────────────────────────────────────

/** getrlimit's RLIM_INFINITY as sevctl prints it. */
export const RLIM_INFINITY = 18446744073709551615n;

/** This process's RLIMIT_MEMLOCK (bytes), from /proc/self/limits. */
export interface MemlockFact {
  /** Soft/hard limit in bytes; RLIM_INFINITY for "unlimited". null if unknown. */
  soft: bigint | null;
  hard: bigint | null;
  error?: string;
}

export function parseLimits(text: string): { soft: bigint; hard: bigint } | null {
  const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(text);
  if (!m) return null;
  const v = (s: string): bigint | null => (s === 'unlimited' ? RLIM_INFINITY : /^[0-9]+$/.test(s) ? BigInt(s) : null);
  const soft = v(m[1]!);
  const hard = v(m[2]!);
  return soft === null || hard === null ? null : { soft, hard };
}

/** Node has no getrlimit; /proc/self/limits is the same kernel value for this process. */
export function probeMemlock(hfs: HostFs): MemlockFact {
  const r = hfs.readText(HOST_PATHS.limits);
  if (!r.ok) return { soft: null, hard: null, error: `cannot read ${HOST_PATHS.limits}: ${r.error.text}` };
  const lim = parseLimits(r.value);
  return lim ?? { soft: null, hard: null, error: `${HOST_PATHS.limits}: no "Max locked memory" line` };
}

// ── kernel ───────────────────────────────────────────────────────────────────

/** The kernel release and command line, null when unreadable. */
export interface KernelFact {
  release: string | null;
  cmdline: string | null;
}

export function probeKernel(hfs: HostFs): KernelFact {
  const rel = hfs.readText(HOST_PATHS.osrelease);
  const cmd = hfs.readText(HOST_PATHS.cmdline);
  return { release: rel.ok ? rel.value.trim() : null, cmdline: cmd.ok ? cmd.value.trim() : null };
}

/** Value of `name=` on a kernel command line (last one wins, as in the kernel). */
export function cmdlineParam(cmdline: string | null, name: string): string | undefined {
  if (!cmdline) return undefined;
  let found: string | undefined;
  for (const tok of cmdline.split(/\s+/)) {
    if (tok === name) found = '';
    else if (tok.startsWith(`${name}=`)) found = tok.slice(name.length + 1);
  }
  return found;
}

// ── firmware (PLATFORM_STATUS through the addon) ─────────────────────────────

/** PLATFORM_STATUS as the host probes use it (the fields of lib/platform's PlatformStatus without the raw flags). */
export interface FirmwareStatus {
  apiMajor: number;
  apiMinor: number;
  build: number;
  state: string;
  owner: string;
  esEnabled: boolean;
  guestCount: number;
}

/** What the host probes need from lib/platform's SevPlatform. */
export interface PlatformLike {
  status(): Promise<FirmwareStatus>;
  snpPlatformStatus?(): Promise<unknown>;
}

/** Why the firmware view failed: the SevError code and message, and the firmware status when there was one. */
export interface FirmwareError {
  /** SevError code (ENOENT, EACCES, EIO, ...) or a sevkit code. */
  code: string;
  message: string;
  fwStatus?: number;
  fwStatusName?: string;
}

/**
 * The SEV firmware as PLATFORM_STATUS (and SNP_PLATFORM_STATUS when answered) reported it, or why it could not
 * be asked.
 */
export interface FirmwareFact {
  device: string;
  status: FirmwareStatus | null;
  error?: FirmwareError;
  /** SNP_PLATFORM_STATUS fields, when the kernel/firmware answer it. */
  snp: Record<string, unknown> | null;
  snpError?: FirmwareError;
}

export function firmwareError(e: unknown): FirmwareError {
  const err = e as { code?: unknown; message?: unknown; fwStatus?: unknown; fwStatusName?: unknown };
  const out: FirmwareError = {
    code: typeof err?.code === 'string' ? err.code : 'ERR_FIRMWARE',
    message: String(err?.message ?? e).split('\n')[0]!,
  };
  if (typeof err?.fwStatus === 'number') out.fwStatus = err.fwStatus;
  if (typeof err?.fwStatusName === 'string') out.fwStatusName = err.fwStatusName;
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} did not answer within ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function plainFields(v: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (typeof x === 'number' || typeof x === 'string' || typeof x === 'boolean') out[k] = x;
      else if (typeof x === 'bigint') out[k] = x.toString();
      else if (Buffer.isBuffer(x)) out[k] = x.toString('hex');
    }
  }
  return out;
}

export async function probeFirmware(device: string, platform: PlatformLike, timeoutMs = 10_000): Promise<FirmwareFact> {
  const fact: FirmwareFact = { device, status: null, snp: null };
  // Both asked at once: the kernel runs them one after the other (sev_cmd_mutex), but each
  // caller's open and round trip overlap (sev-status's start-up; a simulated /dev/sev is a socket).
  const status = (async () => {
    try {
      fact.status = await withTimeout(platform.status(), timeoutMs, `PLATFORM_STATUS on ${device}`);
    } catch (e) {
      fact.error = firmwareError(e);
    }
  })();
  const snp = (async () => {
    if (typeof platform.snpPlatformStatus !== 'function') {
      fact.snpError = { code: 'ENOTSUP', message: 'the addon offers no SNP_PLATFORM_STATUS' };
      return;
    }
    try {
      fact.snp = plainFields(await withTimeout(platform.snpPlatformStatus(), timeoutMs, `SNP_PLATFORM_STATUS on ${device}`));
    } catch (e) {
      fact.snpError = firmwareError(e);
    }
  })();
  await Promise.all([status, snp]);
  return fact;
}

// ── QEMU ─────────────────────────────────────────────────────────────────────

/** The QEMU binary: whether it runs and the version its --version prints. */
export interface QemuFact {
  command: string;
  found: boolean;
  /** "7.2.22" */
  version: string | null;
  /** First line of --version. */
  banner: string | null;
  error?: string;
  /** Answer taken from the sev-status cache for this unchanged binary (qemuCache.ts). */
  cached?: boolean;
}

// One home for QEMU version texts (the supervisor's SNP check uses them too).
export { parseQemuVersion, versionAtLeast } from '../qmp/version.js';

export async function probeQemu(command: string, timeoutMs = 3000): Promise<QemuFact> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile(command, ['--version'], { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 64 * 1024 }, (err, stdout) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string | null }) | null;
      if (e && e.code === 'ENOENT') {
        resolve({ command, found: false, version: null, banner: null, error: `${command}: not found` });
        return;
      }
      const banner = (stdout ?? '').split('\n')[0]?.trim() || null;
      const version = parseQemuVersion(stdout ?? '');
      if (e) {
        const why = e.killed ? `timed out after ${timeoutMs} ms` : e.code === 'EACCES' ? 'not executable' : `exited with ${e.code ?? e.signal}`;
        resolve({ command, found: true, version, banner, error: `${command} --version ${why}` });
      } else if (!version) {
        resolve({ command, found: true, version: null, banner, error: `${command} --version printed no "QEMU emulator version"` });
      } else {
        resolve({ command, found: true, version, banner });
      }
    });
  });
}

// ── OVMF ─────────────────────────────────────────────────────────────────────

export const DEFAULT_OVMF_DIRS = ['/usr/share/OVMF', '/usr/share/ovmf', '/usr/share/edk2/ovmf', '/usr/share/edk2/x64'];
/** Images worth reporting, best for SEV first (AmdSev builds carry the secret area and hashes table). */
export const OVMF_NAMES = ['OVMF.amdsev.fd', 'OVMF.inteltdx.fd', 'OVMF_CODE_4M.fd', 'OVMF_CODE.fd', 'OVMF.fd', 'OVMF_CODE.cc.fd'];

/** One OVMF image found on the host and the SEV features its footer GUID table advertises. */
export interface OvmfImage {
  path: string;
  size: number;
  /** Footer GUID table present (OVMF built with SEV support). */
  guidTable: boolean;
  /** SEV-ES reset block GUID: needed for SEV-ES/SNP guests. */
  sevEsResetBlock: boolean;
  /** Secret area with a non-zero base (launch secret injection). */
  secretArea: boolean;
  /** Kernel hashes table with a non-zero base (measured direct boot). */
  kernelHashes: boolean;
  /** SEV metadata (SNP launch). */
  snpMetadata: boolean;
}

/** The OVMF images found in the searched directories, and the distribution package version. */
export interface OvmfFact {
  dirs: string[];
  images: OvmfImage[];
  /** Debian `ovmf` package version from dpkg's status file, if installed that way. */
  packageVersion: string | null;
}

/** Entries of the OVMF footer GUID table in the image's tail (kernel-qemu.md §5.2); null when there is none or it is malformed. */
export function ovmfGuidTable(tail: Buffer): Map<string, Buffer> | null {
  try {
    return new Map(parseOvmfFooterTable(tail).map((e) => [e.guid, e.data]));
  } catch {
    return null;
  }
}

export function inspectOvmf(file: string): OvmfImage | null {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const n = Math.min(size, 4096);
    const tail = Buffer.alloc(n);
    fs.readSync(fd, tail, 0, n, size - n);
    const t = ovmfGuidTable(tail);
    const base = (g: string) => (t?.get(g)?.length ?? 0) >= 4 && t!.get(g)!.readUInt32LE(0) !== 0;
    return {
      path: file,
      size,
      guidTable: t !== null,
      sevEsResetBlock: t?.has(OVMF_GUIDS.SEV_ES_RESET_BLOCK) ?? false,
      secretArea: base(OVMF_GUIDS.SEV_SECRET),
      kernelHashes: base(OVMF_GUIDS.SEV_HASH_TABLE),
      snpMetadata: t?.has(OVMF_GUIDS.SEV_METADATA) ?? false,
    };
  } catch {
    return null;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The installed version of Debian package `pkg` from dpkg's status file, or null when it is not installed (or there is no such file). */
export function dpkgVersion(statusFile: string, pkg: string): string | null {
  let data: Buffer;
  try {
    data = fs.readFileSync(statusFile);
  } catch {
    return null;
  }
  // Searched as bytes and only the package's stanza decoded: the file is ~1 MB on a desktop, and
  // sev-status's start-up is measured against a bare node.
  const at = data.indexOf(`\nPackage: ${pkg}\n`, 0, 'latin1');
  const from = at >= 0 ? at + 1 : data.subarray(0, pkg.length + 10).equals(Buffer.from(`Package: ${pkg}\n`, 'latin1')) ? 0 : -1;
  if (from < 0) return null;
  const stanzaEnd = data.indexOf('\n\n', from, 'latin1');
  const stanza = data.subarray(from, stanzaEnd < 0 ? undefined : stanzaEnd).toString('latin1');
  if (!/^Status: .* installed$/m.test(stanza)) return null;
  return /^Version: (.+)$/m.exec(stanza)?.[1]?.trim() ?? null;
}

export function probeOvmf(dirs: string[], dpkgStatus = '/var/lib/dpkg/status'): OvmfFact {
  const images: OvmfImage[] = [];
  const seen = new Set<string>();
  for (const dir of dirs) {
    for (const name of OVMF_NAMES) {
      const file = path.join(dir, name);
      let real: string;
      try {
        // realpath(3) in one call: the JS walk lstat()s every component of the 24 candidate paths.
        real = fs.realpathSync.native(file);
      } catch {
        continue;
      }
      if (seen.has(real)) continue;
      seen.add(real);
      const img = inspectOvmf(file);
      if (img) images.push(img);
    }
  }
  return { dirs, images, packageVersion: dpkgVersion(dpkgStatus, 'ovmf') };
}
