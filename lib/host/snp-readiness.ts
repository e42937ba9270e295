/**
 * `sev-status`'s SEV-SNP readiness: what SNP needs beyond the SEV checks, judged into
 * checks with a fix each (snp-launch.md §3.5). The CPUID bit, kvm_amd `sev_snp`, QEMU
 * >= 9.1 and the OVMF metadata are checked in status.ts with the other guest types;
 * here: the CPU generation, SNP and the RMP table set up by the BIOS, the IOMMU,
 * SNP_INIT (SNP_PLATFORM_STATUS state and RMP), and the SNP firmware's API and TCB.
 *
 * Signals are read without dmesg (which needs root and may have rotated): the SYSCFG
 * and RMP_BASE/RMP_END MSRs (/dev/cpu/0/msr, root + `modprobe msr`), the `sev_snp`
 * flag in /proc/cpuinfo (the kernel clears it when it could not set up the RMP or the
 * IOMMU for SNP), /sys/class/iommu, and SNP_PLATFORM_STATUS through lib/platform.
 */
import { familyModel, sevLeaf, vendorString } from '../platform/cpuid.js';
import { cmdlineParam, SYSCFG_SNP_EN } from './probes.js';
import type { HostFacts } from './gather.js';

/** The lowest SNP firmware API KVM launches guests with [hedge: snp-launch.md §3.5]. */
export const MIN_SNP_API = { major: 1, minor: 51 } as const;

/**
 * One SNP check, in status.ts's Check shape (group "snp", a failure blocks sev-snp only);
 * declared here so this module needs nothing from status.ts, which calls it.
 */
export interface SnpCheck {
  id: string;
  group: 'snp';
  title: string;
  status: 'pass' | 'fail' | 'warn' | 'info' | 'skip';
  detail: string;
  fix: string | null;
  blocks: Array<'sev-snp'>;
}

/** Fix lines, in the style of fixes.ts's FIXES. */
export const SNP_FIXES = {
  generation: 'SEV-SNP needs an AMD EPYC 7003 (Milan) or later processor (family 0x19+); this CPU cannot run SNP guests: use a Milan, Genoa or Turin host',
  bios: 'BIOS: enable "SEV-SNP Support" and "SNP Memory (RMP Table) Coverage", set "SEV-ES ASID Space Limit" above 1, enable SMEE and the IOMMU, then reboot (SYSCFG.SNPEn and RMP_BASE/RMP_END are set by the BIOS)',
  kernelRmp:
    'the kernel did not set up SNP (no sev_snp in /proc/cpuinfo although the BIOS set up the RMP): boot a kernel >= 6.11 with CONFIG_KVM_AMD_SEV=y and the IOMMU on (no amd_iommu=off / iommu=off), then reboot',
  iommu:
    'enable the IOMMU in BIOS ("IOMMU" / "AMD-Vi") and remove amd_iommu=off / iommu=off from the kernel command line: SNP_INIT needs the AMD IOMMU; then reboot',
  init: 'SNP_INIT has not run or failed: load kvm_amd with sev_snp=1 (modprobe -r kvm_amd && modprobe kvm_amd sev_snp=1), check dmesg for ccp / "SEV-SNP" errors, update the SEV firmware; a failed RMP initialization needs a reboot',
  firmware:
    "update the SEV firmware to SNP API >= 1.51: install the board vendor's latest BIOS, or a newer linux-firmware (amd/amd_sev_fam19h_model*.sbin, loaded by the ccp driver at boot)",
} as const;

/** TCB_VERSION bytes by layout (snp-launch.md §4.1): Milan/Genoa vs Turin. */
export function tcbText(tcb: bigint, family: number): string {
  const b = (i: number) => Number((tcb >> BigInt(8 * i)) & 0xffn);
  if (family >= 0x1a) return `fmc ${b(0)} bootloader ${b(1)} tee ${b(2)} snp ${b(3)} microcode ${b(7)}`;
  return `bootloader ${b(0)} tee ${b(1)} snp ${b(6)} microcode ${b(7)}`;
}

function bigintField(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if ((typeof v === 'string' && /^(0x[0-9a-f]+|[0-9]+)$/i.test(v)) || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) {
    const n = BigInt(v);
    return n < 1n << 64n ? n : undefined;
  }
  return undefined;
}

const byteField = (v: unknown): number | undefined => (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255 ? (v as number) : undefined);

/**
 * The SNP readiness checks (group "snp"), in display order. Every failure blocks
 * sev-snp only and carries a fix. Pure over the facts.
 */
export function snpReadinessChecks(f: HostFacts): SnpCheck[] {
  const out: SnpCheck[] = [];
  const add = (id: string, title: string, status: SnpCheck['status'], detail: string, fix: string | null = null): void => {
    out.push({
      id,
      group: 'snp',
      title,
      status,
      detail,
      fix: status === 'fail' || status === 'warn' ? fix : null,
      blocks: status === 'fail' ? ['sev-snp'] : [],
    });
  };
  const { family, model } = familyModel(f.cpuid);
  const amd = vendorString(f.cpuid) === 'AuthenticAMD';
  const snpCpuid = sevLeaf(f.cpuid).snp;
  const s = f.snpHost;

  // CPU generation: Rome (0x17) and Naples have no SNP at all, whatever the BIOS says.
  if (!amd) add('snp.cpu', 'SNP-capable CPU generation', 'skip', 'not an AMD CPU');
  else if (family < 0x19)
    add(
      'snp.cpu',
      'SNP-capable CPU generation',
      'fail',
      `family 0x${family.toString(16)} model 0x${model.toString(16)} is older than EPYC 7003 (Milan)`,
      SNP_FIXES.generation,
    );
  else
    add(
      'snp.cpu',
      'SNP-capable CPU generation',
      'pass',
      `family 0x${family.toString(16)} (${family >= 0x1a ? 'Turin' : model >= 0x10 ? 'Genoa' : 'Milan'} or later)`,
    );

  // BIOS: SNPEn in SYSCFG and an RMP table; the kernel's view through /proc/cpuinfo.
  if (!amd || family < 0x19 || !snpCpuid)
    add(
      'snp.bios',
      'SNP and RMP table set up by the BIOS',
      'skip',
      !snpCpuid && amd && family >= 0x19 ? 'CPUID 0x8000001F EAX bit 4 clear (see cpu.snp)' : 'no SNP-capable CPU',
    );
  else {
    const problems: string[] = [];
    const seen: string[] = [];
    if (f.syscfg.value !== null) {
      if ((f.syscfg.value & SYSCFG_SNP_EN) === 0n) problems.push('SYSCFG SNPEn (bit 24) clear');
      else seen.push('SYSCFG SNPEn set');
    }
    if (s?.rmp) {
      const { base, end } = s.rmp;
      if (base === 0n || end <= base) problems.push(`no RMP table (RMP_BASE 0x${base.toString(16)}, RMP_END 0x${end.toString(16)})`);
      else seen.push(`RMP table 0x${base.toString(16)}..0x${end.toString(16)} (${(end - base + 1n) >> 20n} MiB)`);
    }
    let fix: string = SNP_FIXES.bios;
    if (s?.cpuinfoSevSnp === false) {
      // With SNPEn and an RMP in place the BIOS did its part: the kernel declined SNP.
      if (problems.length === 0 && seen.length > 0) fix = SNP_FIXES.kernelRmp;
      problems.push('/proc/cpuinfo has no sev_snp flag (the kernel disabled SNP)');
    } else if (s?.cpuinfoSevSnp) seen.push('sev_snp in /proc/cpuinfo');
    if (problems.length) add('snp.bios', 'SNP and RMP table set up by the BIOS', 'fail', problems.join('; '), fix);
    else if (seen.length) add('snp.bios', 'SNP and RMP table set up by the BIOS', 'pass', seen.join(', '));
    else
      add(
        'snp.bios',
        'SNP and RMP table set up by the BIOS',
        'info',
        `cannot tell: MSRs unreadable (${s?.rmpError ?? f.syscfg.error?.text ?? 'unknown'}; needs root and "modprobe msr") and no /proc/cpuinfo flags; SNP_PLATFORM_STATUS below decides`,
      );
  }

  // IOMMU: SNP_INIT fails without the AMD IOMMU.
  if (!amd || family < 0x19) add('snp.iommu', 'IOMMU (needed by SNP_INIT)', 'skip', 'no SNP-capable CPU');
  else if (!s || s.iommus === null) {
    const off = ['amd_iommu', 'iommu'].map((n) => [n, cmdlineParam(f.kernel.cmdline, n)] as const).filter(([, v]) => v === 'off');
    if (off.length)
      add(
        'snp.iommu',
        'IOMMU (needed by SNP_INIT)',
        'fail',
        `no /sys/class/iommu; kernel command line has ${off.map(([n]) => `${n}=off`).join(' ')}`,
        SNP_FIXES.iommu,
      );
    else add('snp.iommu', 'IOMMU (needed by SNP_INIT)', 'fail', 'no /sys/class/iommu: the IOMMU is off or not supported', SNP_FIXES.iommu);
  } else if (s.iommus.length === 0) add('snp.iommu', 'IOMMU (needed by SNP_INIT)', 'fail', '/sys/class/iommu is empty: the IOMMU is off', SNP_FIXES.iommu);
  else
    add(
      'snp.iommu',
      'IOMMU (needed by SNP_INIT)',
      'pass',
      `${s.iommus.length} IOMMU${s.iommus.length > 1 ? 's' : ''} (${s.iommus.slice(0, 4).join(', ')}${s.iommus.length > 4 ? ', ...' : ''})`,
    );

  // SNP_INIT and the SNP firmware, from SNP_PLATFORM_STATUS (values treated as host-reported: range-checked).
  const fw = f.firmware;
  if (!fw) {
    add('snp.init', 'SNP initialized (SNP_INIT)', 'skip', 'firmware view disabled (--no-firmware)');
    add('snp.firmware', 'SNP firmware API and TCB', 'skip', 'firmware view disabled');
  } else if (!fw.snp) {
    const e = fw.snpError;
    if (!e || e.code === 'ENOTSUP') {
      add('snp.init', 'SNP initialized (SNP_INIT)', 'skip', `SNP_PLATFORM_STATUS not available${e ? `: ${e.message}` : ''}`);
    } else if (e.code === 'EINVAL' || e.code === 'ENODEV') {
      add(
        'snp.init',
        'SNP initialized (SNP_INIT)',
        'fail',
        `SNP_PLATFORM_STATUS refused (${e.code}): SNP is not initialized (kernels before 6.16 answer only after SNP_INIT)`,
        SNP_FIXES.init,
      );
    } else {
      add(
        'snp.init',
        'SNP initialized (SNP_INIT)',
        'fail',
        `SNP_PLATFORM_STATUS failed: ${e.message}${e.fwStatusName ? ` [${e.fwStatusName}]` : ''}`,
        SNP_FIXES.init,
      );
    }
    add('snp.firmware', 'SNP firmware API and TCB', 'skip', 'no SNP_PLATFORM_STATUS');
  } else {
    const snp = fw.snp;
    const state = snp.state;
    const rmp = snp.rmpInitialized;
    if (state !== 'INIT' && state !== 'UNINIT')
      add('snp.init', 'SNP initialized (SNP_INIT)', 'fail', `SNP_PLATFORM_STATUS state ${JSON.stringify(state)} is not a known SNP state`, SNP_FIXES.init);
    else if (state === 'UNINIT')
      add(
        'snp.init',
        'SNP initialized (SNP_INIT)',
        'fail',
        'SNP state UNINIT: SNP_INIT has not run (kvm_amd initializes SNP when it loads with sev_snp=1)',
        SNP_FIXES.init,
      );
    else if (rmp === false) add('snp.init', 'SNP initialized (SNP_INIT)', 'fail', 'SNP state INIT but the RMP is not initialized', SNP_FIXES.init);
    else
      add(
        'snp.init',
        'SNP initialized (SNP_INIT)',
        'pass',
        `state INIT${rmp === true ? ', RMP initialized' : ''}${typeof snp.guestCount === 'number' ? `, ${snp.guestCount} SNP guests` : ''}`,
      );

    const major = byteField(snp.apiMajor);
    const minor = byteField(snp.apiMinor);
    const build = bigintField(snp.buildId);
    const cur = bigintField(snp.currentTcbVersion);
    const rep = bigintField(snp.reportedTcbVersion);
    const tcb = [cur !== undefined ? `current TCB ${tcbText(cur, family)}` : '', rep !== undefined ? `reported TCB ${tcbText(rep, family)}` : '']
      .filter(Boolean)
      .join('; ');
    if (major === undefined || minor === undefined) {
      add(
        'snp.firmware',
        'SNP firmware API and TCB',
        'fail',
        `SNP_PLATFORM_STATUS API ${String(snp.apiMajor)}.${String(snp.apiMinor)} is not two bytes: not a firmware answer`,
        SNP_FIXES.firmware,
      );
    } else {
      const api = `SNP API ${major}.${minor}${build !== undefined ? ` build ${build}` : ''}`;
      const ok = major > MIN_SNP_API.major || (major === MIN_SNP_API.major && minor >= MIN_SNP_API.minor);
      add(
        'snp.firmware',
        'SNP firmware API and TCB',
        ok ? 'pass' : 'fail',
        `${api}${ok ? ` (>= ${MIN_SNP_API.major}.${MIN_SNP_API.minor})` : ` < ${MIN_SNP_API.major}.${MIN_SNP_API.minor}`}${tcb ? `; ${tcb}` : ''}`,
        SNP_FIXES.firmware,
      );
    }
  }
  return out;
}
