/**
 * The SEV-SNP host signals sev-status reads beyond the SEV ones, without dmesg: the
 * RMP_BASE/RMP_END MSRs (/dev/cpu/0/msr, root + `modprobe msr`), the `sev_snp` flag of
 * /proc/cpuinfo (the kernel clears it when it could not set up the RMP or the IOMMU for
 * SNP) and /sys/class/iommu. Judged in snp-readiness.ts.
 */
import fs from 'node:fs';
import { FAKE_RMP_END_OFFSET, MSR_RMP_BASE, MSR_RMP_END, type HostFs } from './fs.js';

/** Paths this module reads, as on a real host. */
export const SNP_PATHS = { iommuClass: '/sys/class/iommu' } as const;

/** What the SNP checks read beyond HostFacts' SEV facts. */
export interface SnpHostFact {
  /** RMP_BASE / RMP_END MSRs; null when the MSR file cannot be read. */
  rmp: { base: bigint; end: bigint } | null;
  rmpError?: string;
  /** The `sev_snp` flag of /proc/cpuinfo; null when the file or its flags line is missing. */
  cpuinfoSevSnp: boolean | null;
  /** Entries of /sys/class/iommu (ivhd0, ...); null when the directory cannot be read. */
  iommus: string[] | null;
}

/** Reads the SNP host facts below `hfs`'s root. Never throws: what cannot be read is null. */
export function probeSnpHost(hfs: HostFs): SnpHostFact {
  const fact: SnpHostFact = { rmp: null, cpuinfoSevSnp: null, iommus: null };
  const base = hfs.readAt('/dev/cpu/0/msr', MSR_RMP_BASE, 8);
  const fake = hfs.isFake && !hfs.isCharDevice('/dev/cpu/0/msr');
  const end = hfs.readAt('/dev/cpu/0/msr', fake ? FAKE_RMP_END_OFFSET : MSR_RMP_END, 8);
  if (base.ok && end.ok) fact.rmp = { base: base.value.readBigUInt64LE(0), end: end.value.readBigUInt64LE(0) };
  else if (!base.ok) fact.rmpError = base.error.text;
  else if (!end.ok) fact.rmpError = end.error.text;
  const info = hfs.readText('/proc/cpuinfo');
  if (info.ok) {
    const flags = /^flags\s*:(.*)$/m.exec(info.value);
    if (flags) fact.cpuinfoSevSnp = flags[1]!.trim().split(/\s+/).includes('sev_snp');
  }
  const dir = hfs.resolve(SNP_PATHS.iommuClass);
  try {
    // Synchronous like every other host probe (a tiny sysfs directory).
    fact.iommus = fs.readdirSync(dir).sort();
  } catch {
    fact.iommus = null;
  }
  return fact;
}
