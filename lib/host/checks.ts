/**
 * `sev-status`'s checks: the host facts (gather.ts) judged into one Check each, with the guest types a failure
 * blocks and the fix to suggest (fixes.ts). Pure over HostFacts, so every failure can be tested from a fixture.
 */
import { brandString, familyModel, sevLeaf, vendorString } from '../platform/cpuid.js';
import type { HostFacts } from './gather.js';
import { snpReadinessChecks } from './snp-readiness.js';
import { cmdlineParam, RLIM_INFINITY, SYSCFG_MEM_ENCRYPT, SYSCFG_SNP_EN, versionAtLeast, type FirmwareError, type ParamFact } from './probes.js';
import { FIXES } from './fixes.js';

/** The guest types a status report gives a verdict for. */
export const GUEST_TYPES = ['sev', 'sev-es', 'sev-snp'] as const;
/** A confidential guest type: 'sev', 'sev-es' or 'sev-snp'. */
export type GuestType = (typeof GUEST_TYPES)[number];
/** Display names of the guest types ('SEV-ES'). */
export const GUEST_LABEL: Record<GuestType, string> = { sev: 'SEV', 'sev-es': 'SEV-ES', 'sev-snp': 'SEV-SNP' };

/** The outcome of one status check; only 'fail' blocks guest types. */
export type CheckStatus = 'pass' | 'fail' | 'warn' | 'info' | 'skip';
/** The section of the report a check is printed in. */
export type CheckGroup = 'cpu' | 'kernel' | 'device' | 'firmware' | 'userspace' | 'limits' | 'snp';

/** One judged check: stable id, outcome, detail, the fix to suggest, and the guest types a failure makes not ready. */
export interface Check {
  id: string;
  group: CheckGroup;
  title: string;
  status: CheckStatus;
  detail: string;
  fix: string | null;
  blocks: GuestType[];
}

/** Firmware API minimums (major.minor as major*1000+minor for comparison). */
export const MIN_API = {
  /** GET_ID/GET_ID2 (chip id for the certificate chain) need 0.16, else the kernel returns errno 524. */
  kernel: { major: 0, minor: 16 },
  /**
   * SEV and SEV-ES launches as sevkit verifies them: the launch measurement and the secret
   * header MAC carry the 0x04‖API‖BUILD prefix from API 0.17 on (kernel-qemu.md §3.3).
   */
  sev: { major: 0, minor: 17 },
  /** SEV-ES additionally needs the firmware configured for ES (PLATFORM_STATUS flags bit 8), checked separately. */
  sevEs: { major: 0, minor: 17 },
} as const;

/** Below this soft RLIMIT_MEMLOCK a non-root QEMU cannot pin a typical guest's memory. */
export const MEMLOCK_WARN_BYTES = 1n << 30n;

/** Every check id, in display order (stable across releases: scripts match on them). */
export const CHECK_IDS = [
  'cpu.vendor',
  'cpu.epyc',
  'cpu.cpuid',
  'cpu.sev',
  'cpu.sme',
  'cpu.sev-asids',
  'cpu.sev-es',
  'cpu.sev-es-asids',
  'cpu.snp',
  'cpu.cbitpos',
  'kernel.kvm-amd',
  'kernel.sev',
  'kernel.sev-es',
  'kernel.sev-snp',
  'device.sev',
  'device.sev-read',
  'device.sev-write',
  'device.kvm',
  'firmware.status',
  'firmware.api',
  'firmware.state',
  'firmware.owner',
  'firmware.sev-es',
  'firmware.guests',
  'firmware.snp',
  'userspace.qemu',
  'userspace.qemu-sev-es',
  'userspace.qemu-sev-snp',
  'userspace.ovmf',
  'userspace.ovmf-sev-es',
  'userspace.ovmf-sev-snp',
  'limits.memlock',
  // SEV-SNP readiness beyond the per-guest-type checks above (snp-readiness.ts).
  'snp.cpu',
  'snp.bios',
  'snp.iommu',
  'snp.init',
  'snp.firmware',
] as const;

const ALL: GuestType[] = ['sev', 'sev-es', 'sev-snp'];
const ES_UP: GuestType[] = ['sev-es', 'sev-snp'];
const SNP: GuestType[] = ['sev-snp'];

function apiAtLeast(maj: number, min: number, want: { major: number; minor: number }): boolean {
  return maj > want.major || (maj === want.major && min >= want.minor);
}

function paramDetail(p: ParamFact, name: string): string {
  switch (p.state) {
    case 'enabled':
      return `kvm_amd ${name}=${p.value}`;
    case 'disabled':
      return `kvm_amd ${name}=${p.value} (${p.path})`;
    case 'error':
      return `cannot read ${p.path}: ${p.error?.text}`;
    default:
      return `${p.path} does not exist`;
  }
}

function fwErrorText(e: FirmwareError): string {
  return e.fwStatusName ? `${e.message} [${e.fwStatusName}]` : e.message;
}

function fwErrorFix(e: FirmwareError): string {
  // The addon's refusal of a path that is not a device node (a FIFO, a file): the path is wrong, not the driver.
  if (e.code === 'ENODEV' && /not a character device/.test(e.message)) return FIXES.notADevice;
  switch (e.code) {
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      return FIXES.devSevMissing;
    case 'EACCES':
    case 'EPERM':
      return FIXES.devSevAccess;
    case 'ERR_NO_ADDON':
    case 'ERR_SEVKIT_BINDING':
      return FIXES.addon;
    case 'ETIMEDOUT':
    case 'EBUSY':
      return FIXES.firmwareTimeout;
    default:
      return FIXES.firmwareError;
  }
}

/** One line from SNP_PLATFORM_STATUS (lib/platform's SnpPlatformStatus fields); the JSON keeps all fields. */
function snpSummary(snp: Record<string, unknown>): string {
  /* eslint-disable @typescript-eslint/no-base-to-string -- numbers/bigints from lib/platform (or a JSON seam); any text will do for one line */
  if (typeof snp.apiMajor !== 'number' || typeof snp.apiMinor !== 'number') {
    return (
      Object.entries(snp)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', ') || 'answered'
    );
  }
  const parts = [`SNP API ${snp.apiMajor}.${snp.apiMinor}${snp.buildId !== undefined ? ` build ${String(snp.buildId)}` : ''}`];
  if (typeof snp.state === 'string') parts.push(`state ${snp.state}`);
  if (typeof snp.rmpInitialized === 'boolean') parts.push(snp.rmpInitialized ? 'RMP initialized' : 'RMP not initialized');
  if (snp.guestCount !== undefined) parts.push(`${String(snp.guestCount)} guests`);
  if (snp.reportedTcbVersion !== undefined) {
    try {
      parts.push(`reported TCB 0x${BigInt(String(snp.reportedTcbVersion)).toString(16).padStart(16, '0')}`);
    } catch {
      parts.push(`reported TCB ${String(snp.reportedTcbVersion)}`);
    }
  }
  /* eslint-enable @typescript-eslint/no-base-to-string */
  return parts.join(', ');
}

/** A resource limit as the report shows it: decimal bytes, 'unlimited', or null when unknown. */
export function limitText(v: bigint | null): string | null {
  if (v === null) return null;
  return v === RLIM_INFINITY ? 'unlimited' : v.toString();
}

/** Judge every check. Order is the display order. */
export function evaluateChecks(f: HostFacts): Check[] {
  const checks: Check[] = [];
  const add = (c: Omit<Check, 'fix' | 'blocks'> & { fix?: string | null; blocks?: GuestType[] }): Check => {
    const full: Check = { ...c, fix: c.fix ?? null, blocks: c.blocks ?? [] };
    if (full.status !== 'fail' && full.status !== 'warn') full.fix = null;
    if (full.status !== 'fail') full.blocks = [];
    checks.push(full);
    return full;
  };
  const skipped = (id: string, group: CheckGroup, title: string, why: string) => add({ id, group, title, status: 'skip', detail: why });

  // ── CPU ──
  const vendor = vendorString(f.cpuid);
  const brand = brandString(f.cpuid);
  const { family, model } = familyModel(f.cpuid);
  const leaf = sevLeaf(f.cpuid);
  const isAmd = vendor === 'AuthenticAMD';
  const vendorShown = vendor.replace(/\0/g, '') || 'unknown';
  add({ id: 'cpu.vendor', group: 'cpu', title: 'AMD CPU', status: isAmd ? 'pass' : 'fail', detail: `${vendorShown}`, fix: FIXES.amdCpu, blocks: ALL });
  if (isAmd) {
    const epyc = brand.toUpperCase().includes('EPYC');
    add({
      id: 'cpu.epyc',
      group: 'cpu',
      title: 'EPYC processor',
      status: epyc ? 'pass' : 'fail',
      detail: `${brand || 'no brand string'} (family 0x${family.toString(16)}, model 0x${model.toString(16)})`,
      fix: FIXES.epyc,
      blocks: ALL,
    });
  } else {
    skipped('cpu.epyc', 'cpu', 'EPYC processor', 'not an AMD CPU');
  }
  if (f.cpuid.source === 'cpuinfo' || f.cpuid.source === 'none') {
    add({
      id: 'cpu.cpuid',
      group: 'cpu',
      title: 'CPUID',
      status: 'warn',
      detail: `read from /proc/cpuinfo, not CPUID${f.cpuid.note ? ` (${f.cpuid.note})` : ''}`,
      fix: FIXES.cpuid,
    });
  } else {
    add({ id: 'cpu.cpuid', group: 'cpu', title: 'CPUID', status: 'info', detail: f.cpuid.source === 'file' ? 'from a CPUID file (simulated)' : 'native' });
  }
  const sevCpu = isAmd && leaf.sev;
  if (isAmd) {
    add({
      id: 'cpu.sev',
      group: 'cpu',
      title: 'SEV in CPUID',
      status: leaf.sev ? 'pass' : 'fail',
      detail: leaf.sev ? 'CPUID 0x8000001F EAX bit 1 set' : 'CPUID 0x8000001F EAX bit 1 clear',
      fix: FIXES.biosSev,
      blocks: ALL,
    });
  } else skipped('cpu.sev', 'cpu', 'SEV in CPUID', 'not an AMD CPU');

  if (!sevCpu) {
    skipped('cpu.sme', 'cpu', 'Memory encryption enabled (SYSCFG)', 'no SEV');
  } else if (f.syscfg.value === null) {
    add({
      id: 'cpu.sme',
      group: 'cpu',
      title: 'Memory encryption enabled (SYSCFG)',
      status: 'info',
      detail: `SYSCFG MSR unreadable (${f.syscfg.error?.text}; needs root and "modprobe msr"); the kernel checks below decide`,
    });
  } else {
    const on = (f.syscfg.value & SYSCFG_MEM_ENCRYPT) !== 0n;
    add({
      id: 'cpu.sme',
      group: 'cpu',
      title: 'Memory encryption enabled (SYSCFG)',
      status: on ? 'pass' : 'fail',
      detail: `SYSCFG 0x${f.syscfg.value.toString(16)}: MemEncryptionModEn (bit 23) ${on ? 'set' : 'clear'}`,
      fix: FIXES.biosSme,
      blocks: ALL,
    });
  }
  const asidsKnown = f.cpuid.source !== 'cpuinfo' && f.cpuid.source !== 'none';
  if (!sevCpu) skipped('cpu.sev-asids', 'cpu', 'SEV ASIDs', 'no SEV');
  else if (!asidsKnown) add({ id: 'cpu.sev-asids', group: 'cpu', title: 'SEV ASIDs', status: 'info', detail: 'unknown without CPUID' });
  else
    add({
      id: 'cpu.sev-asids',
      group: 'cpu',
      title: 'SEV ASIDs',
      status: leaf.sevAsids > 0 ? 'pass' : 'fail',
      detail: `${leaf.sevAsids} for SEV guests (ASIDs ${leaf.minSevAsid}..${leaf.maxAsids})`,
      fix: FIXES.biosSevAsids,
      blocks: ALL,
    });

  if (!sevCpu) skipped('cpu.sev-es', 'cpu', 'SEV-ES in CPUID', 'no SEV');
  else
    add({
      id: 'cpu.sev-es',
      group: 'cpu',
      title: 'SEV-ES in CPUID',
      status: leaf.sevEs ? 'pass' : 'fail',
      detail: `CPUID 0x8000001F EAX bit 3 ${leaf.sevEs ? 'set' : 'clear'}`,
      fix: FIXES.biosSevEs,
      blocks: ES_UP,
    });
  if (!sevCpu || !leaf.sevEs) skipped('cpu.sev-es-asids', 'cpu', 'SEV-ES ASIDs', 'no SEV-ES');
  else if (!asidsKnown) add({ id: 'cpu.sev-es-asids', group: 'cpu', title: 'SEV-ES ASIDs', status: 'info', detail: 'unknown without CPUID' });
  else
    add({
      id: 'cpu.sev-es-asids',
      group: 'cpu',
      title: 'SEV-ES ASIDs',
      status: leaf.sevEsAsids > 0 ? 'pass' : 'fail',
      detail:
        leaf.sevEsAsids > 0 ? `${leaf.sevEsAsids} for SEV-ES/SNP guests (ASIDs 1..${leaf.minSevAsid - 1})` : `none: the minimum SEV ASID is ${leaf.minSevAsid}`,
      fix: FIXES.biosSevEsAsids,
      blocks: ES_UP,
    });
  if (!sevCpu) skipped('cpu.snp', 'cpu', 'SEV-SNP in CPUID', 'no SEV');
  else {
    const msrOk = f.syscfg.value === null || (f.syscfg.value & SYSCFG_SNP_EN) !== 0n;
    const ok = leaf.snp && msrOk;
    const detail = !leaf.snp
      ? 'CPUID 0x8000001F EAX bit 4 clear'
      : !msrOk
        ? 'SYSCFG SNPEn (bit 24) clear'
        : f.syscfg.value === null
          ? 'CPUID 0x8000001F EAX bit 4 set (SYSCFG unreadable)'
          : 'CPUID bit 4 and SYSCFG SNPEn set';
    add({ id: 'cpu.snp', group: 'cpu', title: 'SEV-SNP in CPUID', status: ok ? 'pass' : 'fail', detail, fix: FIXES.biosSnp, blocks: SNP });
  }
  if (sevCpu && asidsKnown)
    add({
      id: 'cpu.cbitpos',
      group: 'cpu',
      title: 'C-bit position',
      status: 'info',
      detail: `${leaf.cbitpos}, physical address reduction ${leaf.reducedPhysBits} (QEMU: cbitpos=${leaf.cbitpos},reduced-phys-bits=1)`,
    });
  else skipped('cpu.cbitpos', 'cpu', 'C-bit position', sevCpu ? 'unknown without CPUID' : 'no SEV');

  // ── kernel ──
  const cmd = f.kernel.cmdline;
  const kernel = f.kernel.release ? `Linux ${f.kernel.release}` : 'the kernel';
  add({
    id: 'kernel.kvm-amd',
    group: 'kernel',
    title: 'kvm_amd loaded',
    status: f.kvmAmd.loaded ? 'pass' : 'fail',
    detail: f.kvmAmd.loaded ? '/sys/module/kvm_amd present' : '/sys/module/kvm_amd missing',
    fix: FIXES.kvmAmd,
    blocks: ALL,
  });
  const hint = (names: string[]): string => {
    const found = names.map((n) => [n, cmdlineParam(cmd, n)] as const).filter(([, v]) => v !== undefined);
    return found.length ? `; kernel command line has ${found.map(([n, v]) => `${n}=${v}`).join(' ')}` : '';
  };
  // One check per kvm_amd parameter; the guest types each one gates.
  const params = [
    {
      id: 'kernel.sev',
      title: 'SEV enabled in KVM',
      fact: f.kvmAmd.sev,
      name: 'sev',
      hints: ['mem_encrypt', 'kvm_amd.sev'],
      fix: FIXES.kernelSev,
      missingFix: FIXES.kernelSevMissing,
      blocks: ALL,
    },
    {
      id: 'kernel.sev-es',
      title: 'SEV-ES enabled in KVM',
      fact: f.kvmAmd.sevEs,
      name: 'sev_es',
      hints: ['kvm_amd.sev_es'],
      fix: FIXES.kernelSevEs,
      missingFix: FIXES.kernelEsTooOld,
      blocks: ES_UP,
    },
    {
      id: 'kernel.sev-snp',
      title: 'SEV-SNP enabled in KVM',
      fact: f.kvmAmd.sevSnp,
      name: 'sev_snp',
      hints: ['kvm_amd.sev_snp'],
      fix: FIXES.kernelSevSnp,
      missingFix: FIXES.kernelSnpTooOld,
      blocks: SNP,
    },
  ];
  for (const p of params) {
    if (!f.kvmAmd.loaded) {
      skipped(p.id, 'kernel', p.title, 'kvm_amd not loaded');
      continue;
    }
    const v = p.fact;
    add({
      id: p.id,
      group: 'kernel',
      title: p.title,
      status: v.state === 'enabled' ? 'pass' : 'fail',
      detail: v.state === 'missing' ? `${kernel} has no kvm_amd ${p.name} parameter` : paramDetail(v, p.name) + (v.state === 'enabled' ? '' : hint(p.hints)),
      fix: v.state === 'missing' ? p.missingFix : p.fix,
      blocks: p.blocks,
    });
  }

  // ── device nodes ──
  const d = f.devSev;
  add({
    id: 'device.sev',
    group: 'device',
    title: '/dev/sev present',
    status: d.exists ? 'pass' : 'fail',
    detail: d.exists ? d.path : `${d.path} does not exist`,
    fix: FIXES.devSevMissing,
    blocks: ALL,
  });
  const who = f.euid === 0 ? 'root' : `uid ${f.euid}`;
  if (!d.exists) {
    skipped('device.sev-read', 'device', '/dev/sev readable', 'no /dev/sev');
    skipped('device.sev-write', 'device', '/dev/sev writable', 'no /dev/sev');
  } else {
    add({
      id: 'device.sev-read',
      group: 'device',
      title: '/dev/sev readable',
      status: d.readable.ok ? 'pass' : 'fail',
      detail: d.readable.ok ? `by ${who}` : `not by ${who}: ${d.readable.error.text}`,
      fix: FIXES.devSevAccess,
      blocks: ALL,
    });
    add({
      id: 'device.sev-write',
      group: 'device',
      title: '/dev/sev writable',
      status: d.writable.ok ? 'pass' : 'fail',
      detail: d.writable.ok ? `by ${who} (QEMU opens it read-write)` : `not by ${who}: ${d.writable.error.text} (QEMU opens it read-write)`,
      fix: FIXES.devSevAccess,
      blocks: ALL,
    });
  }
  const k = f.kvm;
  {
    const api =
      k.apiVersion === null
        ? ''
        : k.apiSource === 'assumed'
          ? `API version ${k.apiVersion} (KVM_API_VERSION; ioctl not issued)`
          : `API version ${k.apiVersion}`;
    let status: CheckStatus = 'pass';
    let detail = `${k.path} read-write by ${who}, ${api}`;
    let fix: string = FIXES.kvmAccess;
    if (!k.open.ok && k.open.error.code === 'ENOENT') {
      status = 'fail';
      detail = `${k.path} does not exist`;
      fix = FIXES.kvmAmd;
    } else if (!k.openRw.ok) {
      status = 'fail';
      detail = `${k.path} not read-write by ${who}: ${k.openRw.error.text}`;
    } else if (k.apiVersion === null) {
      status = 'fail';
      detail = `KVM_GET_API_VERSION failed: ${k.ioctlError}`;
      fix = FIXES.kvmApi;
    } else if (k.apiVersion !== 12) {
      status = 'fail';
      detail = `unexpected ${api}`;
      fix = FIXES.kvmApi;
    }
    add({ id: 'device.kvm', group: 'device', title: 'KVM device', status, detail, fix, blocks: ALL });
  }

  // ── firmware ──
  const fw = f.firmware;
  const fwIds: Array<[string, string]> = [
    ['firmware.api', 'Firmware API version'],
    ['firmware.state', 'Platform state'],
    ['firmware.owner', 'Platform owner'],
    ['firmware.sev-es', 'SEV-ES configured in firmware'],
    ['firmware.guests', 'Guests'],
    ['firmware.snp', 'SNP platform status'],
  ];
  if (!fw) {
    skipped('firmware.status', 'firmware', 'PLATFORM_STATUS', 'firmware view disabled (--no-firmware)');
    for (const [id, t] of fwIds) skipped(id, 'firmware', t, 'firmware view disabled');
  } else if (!fw.status) {
    const e = fw.error ?? { code: 'ERR_FIRMWARE', message: 'no answer' };
    add({
      id: 'firmware.status',
      group: 'firmware',
      title: 'PLATFORM_STATUS',
      status: 'fail',
      detail: e.message.includes(fw.device) ? fwErrorText(e) : `${fw.device}: ${fwErrorText(e)}`,
      fix: fwErrorFix(e),
      blocks: ALL,
    });
    for (const [id, t] of fwIds) skipped(id, 'firmware', t, 'no PLATFORM_STATUS');
  } else {
    const s = fw.status;
    add({ id: 'firmware.status', group: 'firmware', title: 'PLATFORM_STATUS', status: 'pass', detail: `answered on ${fw.device}` });
    const api = `${s.apiMajor}.${s.apiMinor}`;
    const failsFor: GuestType[] = [];
    const needs: string[] = [];
    if (!apiAtLeast(s.apiMajor, s.apiMinor, MIN_API.kernel)) needs.push(`GET_ID needs >= ${MIN_API.kernel.major}.${MIN_API.kernel.minor}`);
    if (!apiAtLeast(s.apiMajor, s.apiMinor, MIN_API.sev)) {
      failsFor.push(...ALL);
      needs.push(`SEV launch measurement needs >= ${MIN_API.sev.major}.${MIN_API.sev.minor}`);
    } else if (!apiAtLeast(s.apiMajor, s.apiMinor, MIN_API.sevEs)) {
      failsFor.push(...ES_UP);
      needs.push(`SEV-ES needs >= ${MIN_API.sevEs.major}.${MIN_API.sevEs.minor}`);
    }
    const apiOk = needs.length === 0;
    add({
      id: 'firmware.api',
      group: 'firmware',
      title: 'Firmware API version',
      status: apiOk ? 'pass' : 'fail',
      detail: `${api} build ${s.build}${apiOk ? ` (>= ${MIN_API.sev.major}.${MIN_API.sev.minor})` : `: ${needs.join('; ')}`}`,
      fix: FIXES.firmwareUpdate,
      blocks: failsFor.length ? failsFor : ALL,
    });
    const stateNote = s.state === 'UNINIT' ? ' (normal before kvm_amd loads on Linux >= 6.16, or with psp_init_on_probe=0; KVM initializes it)' : '';
    add({ id: 'firmware.state', group: 'firmware', title: 'Platform state', status: 'info', detail: `${s.state}${stateNote}` });
    add({
      id: 'firmware.owner',
      group: 'firmware',
      title: 'Platform owner',
      status: 'info',
      detail: s.owner === 'external' ? 'external (PEK signed by an imported OCA)' : 'self (self-signed OCA)',
    });
    if (s.state === 'UNINIT') {
      add({
        id: 'firmware.sev-es',
        group: 'firmware',
        title: 'SEV-ES configured in firmware',
        status: 'info',
        detail: 'decided when the platform is initialized (UNINIT now)',
      });
    } else {
      add({
        id: 'firmware.sev-es',
        group: 'firmware',
        title: 'SEV-ES configured in firmware',
        status: s.esEnabled ? 'pass' : 'fail',
        detail: s.esEnabled ? 'PLATFORM_STATUS flags bit 8 set' : 'PLATFORM_STATUS flags bit 8 clear: QEMU refuses SEV-ES guests',
        fix: FIXES.firmwareEs,
        blocks: ES_UP,
      });
    }
    add({ id: 'firmware.guests', group: 'firmware', title: 'Guests', status: 'info', detail: `${s.guestCount} active` });
    if (fw.snp) {
      add({ id: 'firmware.snp', group: 'firmware', title: 'SNP platform status', status: 'info', detail: snpSummary(fw.snp) });
    } else {
      add({
        id: 'firmware.snp',
        group: 'firmware',
        title: 'SNP platform status',
        status: 'info',
        detail: `not available: ${fw.snpError ? fwErrorText(fw.snpError) : 'not asked'}`,
      });
    }
  }

  // ── userspace ──
  const q = f.qemu;
  if (!q) {
    skipped('userspace.qemu', 'userspace', 'QEMU', 'QEMU check disabled');
    skipped('userspace.qemu-sev-es', 'userspace', 'QEMU for SEV-ES', 'QEMU check disabled');
    skipped('userspace.qemu-sev-snp', 'userspace', 'QEMU for SEV-SNP', 'QEMU check disabled');
  } else if (!q.found || !q.version) {
    add({
      id: 'userspace.qemu',
      group: 'userspace',
      title: 'QEMU',
      status: 'fail',
      detail: q.error ?? `${q.command}: no version`,
      fix: FIXES.qemu,
      blocks: ALL,
    });
    skipped('userspace.qemu-sev-es', 'userspace', 'QEMU for SEV-ES', 'no QEMU');
    skipped('userspace.qemu-sev-snp', 'userspace', 'QEMU for SEV-SNP', 'no QEMU');
  } else {
    const v = q.version;
    const base = versionAtLeast(v, '2.12');
    add({
      id: 'userspace.qemu',
      group: 'userspace',
      title: 'QEMU',
      status: base ? 'pass' : 'fail',
      detail: `${q.command} ${v}`,
      fix: FIXES.qemuOld,
      blocks: ALL,
    });
    const es = versionAtLeast(v, '6.0');
    add({
      id: 'userspace.qemu-sev-es',
      group: 'userspace',
      title: 'QEMU for SEV-ES',
      status: es ? 'pass' : 'fail',
      detail: es ? `${v} >= 6.0` : `${v} < 6.0`,
      fix: FIXES.qemuEs,
      blocks: ES_UP,
    });
    const snp = versionAtLeast(v, '9.1');
    add({
      id: 'userspace.qemu-sev-snp',
      group: 'userspace',
      title: 'QEMU for SEV-SNP',
      status: snp ? 'pass' : 'fail',
      detail: snp ? `${v} >= 9.1` : `${v} < 9.1: no sev-snp-guest object`,
      fix: FIXES.qemuSnp,
      blocks: SNP,
    });
  }
  const imgs = f.ovmf.images;
  const pkg = f.ovmf.packageVersion ? ` (ovmf ${f.ovmf.packageVersion})` : '';
  if (!imgs.length) {
    add({
      id: 'userspace.ovmf',
      group: 'userspace',
      title: 'OVMF',
      status: 'fail',
      detail: `no OVMF image in ${f.ovmf.dirs.join(', ')}`,
      fix: FIXES.ovmf,
      blocks: ALL,
    });
    skipped('userspace.ovmf-sev-es', 'userspace', 'OVMF for SEV-ES', 'no OVMF');
    skipped('userspace.ovmf-sev-snp', 'userspace', 'OVMF for SEV-SNP', 'no OVMF');
  } else {
    const amdsev = imgs.find((i) => i.secretArea);
    add({
      id: 'userspace.ovmf',
      group: 'userspace',
      title: 'OVMF',
      status: 'pass',
      detail: `${imgs[0]!.path}${pkg}${amdsev ? `; ${amdsev.path} has a secret area and kernel hashes` : '; no AmdSev build (launch secrets need an explicit GPA, no measured direct boot)'}`,
    });
    const es = imgs.find((i) => i.sevEsResetBlock);
    add({
      id: 'userspace.ovmf-sev-es',
      group: 'userspace',
      title: 'OVMF for SEV-ES',
      status: es ? 'pass' : 'fail',
      detail: es ? `${es.path} has the SEV-ES reset block` : 'no image has the SEV-ES reset block',
      fix: FIXES.ovmfEs,
      blocks: ES_UP,
    });
    const snp = imgs.find((i) => i.snpMetadata);
    add({
      id: 'userspace.ovmf-sev-snp',
      group: 'userspace',
      title: 'OVMF for SEV-SNP',
      status: snp ? 'pass' : 'fail',
      detail: snp ? `${snp.path} has SEV metadata` : 'no image has SEV metadata',
      fix: FIXES.ovmfSnp,
      blocks: SNP,
    });
  }

  // ── limits ──
  const m = f.memlock;
  if (m.soft === null) {
    add({ id: 'limits.memlock', group: 'limits', title: 'Memlock limit', status: 'warn', detail: m.error ?? 'unknown', fix: FIXES.memlock });
  } else {
    const text = `soft ${limitText(m.soft)}, hard ${limitText(m.hard)}`;
    const enough = m.soft === RLIM_INFINITY || m.soft >= MEMLOCK_WARN_BYTES;
    if (enough) add({ id: 'limits.memlock', group: 'limits', title: 'Memlock limit', status: 'pass', detail: text });
    else if (f.euid === 0)
      add({ id: 'limits.memlock', group: 'limits', title: 'Memlock limit', status: 'info', detail: `${text} (root: CAP_IPC_LOCK exempts QEMU run as root)` });
    else
      add({
        id: 'limits.memlock',
        group: 'limits',
        title: 'Memlock limit',
        status: 'warn',
        detail: `${text}: a non-root QEMU cannot pin more than ${limitText(m.soft)} bytes of guest memory`,
        fix: FIXES.memlock,
      });
  }
  for (const c of snpReadinessChecks(f)) add(c);
  return checks;
}
