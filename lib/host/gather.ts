/**
 * Runs the probes against one environment (a host root, a CPUID source, a
 * platform) and collects the facts `sevkit ok` and `sev-status` judge.
 */
import { HostFs } from './fs.js';
import { openCpuid, type CpuidReader } from '../platform/cpuid.js';
import {
  DEFAULT_OVMF_DIRS,
  probeDevSev,
  probeFirmware,
  probeKernel,
  kvmIoctlWanted,
  probeKvm,
  probeKvmAmd,
  probeMemlock,
  probeOvmf,
  probeQemu,
  probeSyscfg,
  type FirmwareFact,
  type KernelFact,
  type KvmApiVersionFn,
  type OvmfFact,
  type PlatformLike,
  type QemuFact,
} from './probes.js';
import type { OkFacts } from './okTree.js';
import { probeSnpHost, type SnpHostFact } from './snp-probe.js';

/** Where the probes look: the host root (or a HostFs), the CPUID source, and the KVM_GET_API_VERSION implementation. */
export interface HostProbeOptions {
  /** The host file access to use as is (tests: a HostFs with `deny`). */
  fs?: HostFs;
  /** Host root prefixed to /sys, /proc, /dev paths (the simulator's fake host; the CLI passes $SEVKIT_HOST_ROOT); default the real host. */
  root?: string;
  /** CPUID JSON file (the CLI passes $SEVKIT_CPUID). */
  cpuidFile?: string;
  /** CPUID reader to use as is. */
  cpuid?: CpuidReader;
  /** Do not load the native addon for CPUID. */
  noNative?: boolean;
  /** KVM_GET_API_VERSION implementation; default the addon's `kvmApiVersion`. Without one the frozen value 12 is reported ("assumed") for an openable node. */
  kvmApiVersion?: KvmApiVersionFn;
}

/** The facts `sevkit ok` judges, plus the HostFs they were read through. */
export interface OkHostFacts extends OkFacts {
  fs: HostFs;
}

/**
 * KVM_GET_API_VERSION through the addon's `kvmApiVersion(path)`. Loaded only when the probe
 * will ask (kvmIoctlWanted: the real root, or a fixture whose dev/kvm is a character device),
 * so fixture runs with a regular-file dev/kvm never load the addon for this. Resolves undefined when the addon
 * cannot be loaded or is an older build without the entry point; the probe then reports
 * the frozen KVM_API_VERSION as "assumed".
 */
async function nativeKvmApiVersion(): Promise<KvmApiVersionFn | undefined> {
  try {
    const { getBinding } = await import('../binding.js');
    const b = getBinding() as { kvmApiVersion?: (path: string) => Promise<number> };
    return typeof b.kvmApiVersion === 'function' ? (p: string) => b.kvmApiVersion!(p) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Gathers the facts `sevkit ok` judges (CPUID, SYSCFG, kvm_amd, /dev/sev, /dev/kvm, memlock); probe failures are
 * recorded in the facts, not thrown (CpuidError only for a bad CPUID file).
 */
export async function probeOkFacts(opts: HostProbeOptions = {}): Promise<OkHostFacts> {
  const hfs = opts.fs ?? new HostFs(opts.root);
  const readCpuinfo = (): string => {
    const r = hfs.readText('/proc/cpuinfo');
    if (!r.ok) throw new Error(r.error.text);
    return r.value;
  };
  const cpuid = await openCpuid({ file: opts.cpuidFile, reader: opts.cpuid, readCpuinfo, noNative: opts.noNative });
  return {
    fs: hfs,
    cpuid,
    syscfg: probeSyscfg(hfs),
    kvmAmd: probeKvmAmd(hfs),
    devSev: probeDevSev(hfs),
    kvm: await probeKvm(hfs, opts.kvmApiVersion ?? (kvmIoctlWanted(hfs) ? await nativeKvmApiVersion() : undefined)),
    memlock: probeMemlock(hfs),
  };
}

/**
 * HostProbeOptions plus what `sev-status` also asks: the SEV device and platform, QEMU, the OVMF directories, a
 * per-command timeout (ms).
 */
export interface StatusProbeOptions extends HostProbeOptions {
  /** SEV device for the firmware view; default /dev/sev (not prefixed by the root: the simulator's shim answers there). */
  device?: string;
  /** Platform to query; null skips the firmware view. Default: lib/platform's SevPlatform on `device`. */
  platform?: PlatformLike | null;
  /** QEMU binary; default qemu-system-x86_64 on PATH. null skips. */
  qemu?: string | null;
  /** An already started QEMU probe (the CLI starts it before loading the rest); overrides `qemu`. null skips. */
  qemuFact?: Promise<QemuFact> | null;
  /** OVMF directories; default the distribution paths (the CLI passes $SEVKIT_OVMF_DIRS, ':'-separated). */
  ovmfDirs?: string[];
  /** dpkg status file for the ovmf package version. */
  dpkgStatus?: string;
  /** Per firmware command / QEMU timeout in ms. */
  timeoutMs?: number;
  /** Effective uid (default process.geteuid()). */
  euid?: number;
}

/** Everything `sev-status` judges: the `sevkit ok` facts plus kernel, firmware, QEMU, OVMF and the effective uid. */
export interface HostFacts extends OkHostFacts {
  kernel: KernelFact;
  firmware: FirmwareFact | null;
  qemu: QemuFact | null;
  ovmf: OvmfFact;
  euid: number;
  /** The SNP-only host signals (RMP MSRs, cpuinfo sev_snp, IOMMUs); absent: not probed. */
  snpHost?: SnpHostFact;
}

/** The SEV device probed when none is given. */
export const DEFAULT_SEV_DEVICE = '/dev/sev';

async function defaultPlatform(device: string): Promise<PlatformLike> {
  // Lazy: the addon is only loaded when the firmware view is wanted.
  const { SevPlatform } = await import('../platform/platform.js');
  return new SevPlatform({ device });
}

/**
 * Gathers HostFacts (the firmware and QEMU probes run concurrently); probe failures are recorded in the facts, not
 * thrown (CpuidError only for a bad CPUID file).
 */
export async function probeHost(opts: StatusProbeOptions = {}): Promise<HostFacts> {
  const device = opts.device || DEFAULT_SEV_DEVICE;
  const timeoutMs = opts.timeoutMs ?? 10_000;

  const firmwareP: Promise<FirmwareFact | null> = (async () => {
    if (opts.platform === null) return null;
    let platform: PlatformLike;
    try {
      platform = opts.platform ?? (await defaultPlatform(device));
    } catch (e) {
      return {
        device,
        status: null,
        snp: null,
        error: { code: 'ERR_NO_ADDON', message: `the sevkit native addon could not be loaded: ${(e as Error).message.split('\n')[0]}` },
      };
    }
    return probeFirmware(device, platform, timeoutMs);
  })();
  const qemuCmd = opts.qemu === undefined ? 'qemu-system-x86_64' : opts.qemu;
  const qemuP = opts.qemuFact !== undefined ? Promise.resolve(opts.qemuFact) : qemuCmd === null ? Promise.resolve(null) : probeQemu(qemuCmd, timeoutMs);
  const ovmfDirs = opts.ovmfDirs ?? DEFAULT_OVMF_DIRS;
  // The firmware commands run on the addon's thread and QEMU in its own process: started first,
  // they answer while the file probes below read /sys and /proc on this one.
  firmwareP.catch(() => undefined);
  qemuP.catch(() => undefined);
  const base = await probeOkFacts(opts);
  const ovmf = probeOvmf(ovmfDirs, opts.dpkgStatus);
  const kernel = probeKernel(base.fs);
  const [firmware, qemu] = await Promise.all([firmwareP, qemuP]);
  return {
    ...base,
    kernel,
    firmware,
    qemu,
    ovmf,
    snpHost: probeSnpHost(base.fs),
    euid: opts.euid ?? (typeof process.geteuid === 'function' ? process.geteuid() : -1),
  };
}
