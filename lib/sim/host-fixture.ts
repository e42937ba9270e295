/**
 * Writes a fake host (the layout documented at the top of fs.ts) plus a CPUID
 * JSON file: the simulated EPYC 9004 host by default, or a preset/variant for
 * tests (Intel, AMD without SEV, Rome, single failures). The simulator's state
 * dir holds the same layout; keep both in step with fs.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { brandLeaves, cpuidKey, signature, vendorLeaf, type CpuidRegs } from '../platform/cpuid.js';
import { OVMF_GUIDS, placeOvmfFooterTable, type OvmfEntry } from '../firmware/ovmf.js';
import { FAKE_RMP_END_OFFSET, MSR_RMP_BASE, MSR_SYSCFG } from '../host/fs.js';

/** The CPUs a host fixture can simulate. */
export type CpuPreset = 'genoa' | 'milan' | 'rome' | 'intel' | 'amd-nosev' | 'ryzen';

interface CpuDef {
  vendor: string;
  brand: string;
  family: number;
  model: number;
  stepping: number;
  maxExt: number;
  leaf1f: CpuidRegs;
  syscfg: bigint | null;
  /** RMP_BASE / RMP_END as the BIOS programs them for SNP; zeros where it does not. */
  rmp?: { base: bigint; end: bigint };
}

/** An RMP table of 258 MiB (about 1 TiB of memory covered), as a Genoa BIOS with SNP enabled sets it. */
export const FIXTURE_RMP = { base: 0x7ee00000n, end: 0x8f0fffffn };

/** SYSCFG with bits 18..25 set: MemEncryptionModEn (23), SNPEn (24), VMPLEn (25) and the MTRR/TOM2 bits below. */
export const GENOA_SYSCFG = 0x3fc0000n;

/** The CPUID and SYSCFG values of each CpuPreset. */
export const CPU_PRESETS: Record<CpuPreset, CpuDef> = {
  // The simulated host: EPYC 9004, C-bit 51, reduced-phys-bits 1, 4 VMPLs, 1006 ASIDs, SEV ASIDs from 100.
  genoa: {
    vendor: 'AuthenticAMD',
    brand: 'AMD EPYC 9654 96-Core Processor',
    family: 0x19,
    model: 0x11,
    stepping: 1,
    maxExt: 0x80000028,
    leaf1f: [0x0001fdff, 51 | (1 << 6) | (4 << 12), 1006, 100],
    syscfg: GENOA_SYSCFG,
    rmp: FIXTURE_RMP,
  },
  milan: {
    vendor: 'AuthenticAMD',
    brand: 'AMD EPYC 7763 64-Core Processor',
    family: 0x19,
    model: 0x01,
    stepping: 1,
    maxExt: 0x80000023,
    leaf1f: [0x0001fdff, 51 | (5 << 6) | (4 << 12), 509, 100],
    syscfg: GENOA_SYSCFG,
    rmp: FIXTURE_RMP,
  },
  // Rome without page-flush MSR: reproduces sevctl's documented example output.
  rome: {
    vendor: 'AuthenticAMD',
    brand: 'AMD EPYC 7702 64-Core Processor',
    family: 0x17,
    model: 0x31,
    stepping: 0,
    maxExt: 0x80000020,
    leaf1f: [0x0000000b, 47 | (5 << 6), 509, 1],
    syscfg: 0x840000n,
  },
  intel: {
    vendor: 'GenuineIntel',
    brand: 'Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz',
    family: 6,
    model: 0x6a,
    stepping: 6,
    maxExt: 0x80000008,
    leaf1f: [0, 0, 0, 0],
    syscfg: null,
  },
  // An AMD EPYC guest or a host with SEV hidden: no 0x8000001F features (like a cloud VM).
  'amd-nosev': {
    vendor: 'AuthenticAMD',
    brand: 'AMD EPYC',
    family: 0x19,
    model: 0x01,
    stepping: 1,
    maxExt: 0x8000001f,
    leaf1f: [0, 0, 0, 0],
    syscfg: 0x40000n,
  },
  ryzen: {
    vendor: 'AuthenticAMD',
    brand: 'AMD Ryzen 9 7950X 16-Core Processor',
    family: 0x19,
    model: 0x61,
    stepping: 2,
    maxExt: 0x80000028,
    leaf1f: [0x0001780f, 51 | (1 << 6), 0, 0],
    syscfg: 0x40000n,
  },
};

/** The EPYC products the simulator can play (the host fixture and the platform agree through this one table). */
export type SimProduct = 'genoa' | 'milan' | 'rome';

/** ASIDs a product's CPUs have (CPUID 0x8000001F ECX): the guests its SEV firmware can hold at once. */
export function productAsids(product: SimProduct): number {
  return CPU_PRESETS[product].leaf1f[2];
}

export function cpuidFor(def: CpuDef): Record<string, [number, number, number, number]> {
  const out: Record<string, [number, number, number, number]> = {};
  const set = (leaf: number, regs: CpuidRegs) => {
    out[cpuidKey(leaf)] = [regs[0], regs[1], regs[2], regs[3]];
  };
  set(0, vendorLeaf(def.vendor, 0x10));
  // Leaf 1 EAX: the processor signature (the VMSA's RDX for `-cpu host`); same value as 0x80000001 EAX on AMD.
  set(1, [signature(def.family, def.model, def.stepping), 0, 0, 0]);
  set(0x80000000, [def.maxExt, 0, 0, 0]);
  set(0x80000001, [def.vendor === 'AuthenticAMD' ? signature(def.family, def.model, def.stepping) : 0, 0, 0, 0]);
  for (const [leaf, regs] of brandLeaves(def.brand)) set(leaf, regs);
  if (def.maxExt >= 0x8000001f) set(0x8000001f, def.leaf1f);
  return out;
}

/** Which SEV entries buildOvmfImage puts in the image's OVMF footer table. */
export interface OvmfTailOptions {
  resetBlock?: boolean;
  secretArea?: boolean;
  kernelHashes?: boolean;
  snpMetadata?: boolean;
}

/** A 4 KiB image whose tail carries an OVMF footer GUID table with the chosen SEV entries. */
export function buildOvmfImage(o: OvmfTailOptions = {}): Buffer {
  const u32s = (...v: number[]) => {
    const b = Buffer.alloc(4 * v.length);
    v.forEach((x, i) => b.writeUInt32LE(x, i * 4));
    return b;
  };
  const entries: OvmfEntry[] = [];
  if (o.snpMetadata) entries.push({ guid: OVMF_GUIDS.SEV_METADATA, data: u32s(0x400) });
  if (o.kernelHashes !== undefined) entries.push({ guid: OVMF_GUIDS.SEV_HASH_TABLE, data: o.kernelHashes ? u32s(0x810c00, 0x400) : u32s(0, 0) });
  if (o.secretArea !== undefined) entries.push({ guid: OVMF_GUIDS.SEV_SECRET, data: o.secretArea ? u32s(0x810000, 0xc00) : u32s(0, 0) });
  if (o.resetBlock) entries.push({ guid: OVMF_GUIDS.SEV_ES_RESET_BLOCK, data: u32s(0x80b004) });
  return placeOvmfFooterTable(Buffer.alloc(4096), entries);
}

/**
 * What writeHostFixture fakes: CPU preset and CPUID overrides, SYSCFG, kvm_amd parameters, device nodes, limits,
 * QEMU and OVMF.
 */
export interface HostFixtureSpec {
  cpu?: CpuPreset;
  /** Override 0x8000001F registers. */
  leaf1f?: CpuidRegs;
  /** Extra/overriding CPUID leaves ("0x...:0" keys). */
  cpuid?: Record<string, [number, number, number, number]>;
  /** SYSCFG value; null = no /dev/cpu/0/msr (msr module not loaded). Default: the preset's. */
  syscfg?: bigint | null;
  /** RMP_BASE/RMP_END MSRs (written with SYSCFG); null = zeros (the BIOS set up no RMP). Default: the preset's. */
  rmp?: { base: bigint; end: bigint } | null;
  /** /sys/class/iommu/ivhd0 present (default true). */
  iommu?: boolean;
  /** Write proc/cpuinfo with this flags line (default: no proc/cpuinfo). */
  cpuinfoFlags?: string[];
  /** kvm_amd: false = module not loaded; per parameter a content string, or null for "no such file". */
  kvmAmd?: false | { sev?: string | null; sevEs?: string | null; sevSnp?: string | null };
  /** /dev/sev present (default true). */
  devSev?: boolean;
  /** /dev/kvm present (default true). */
  devKvm?: boolean;
  /** Memlock soft/hard ("unlimited" or bytes); null = no /proc/self/limits. */
  memlock?: { soft: string; hard: string } | null;
  cmdline?: string;
  osrelease?: string;
  /** Write bin/qemu-system-x86_64 answering --version with this version; null = none. */
  qemuVersion?: string | null;
  /** OVMF images to write under usr/share/OVMF: 'amdsev' (all entries), 'plain' (OvmfX64: reset block + SNP metadata), 'legacy' (no table), 'none'. */
  ovmf?: 'amdsev' | 'plain' | 'legacy' | 'none';
}

/** A written fake host: the root to probe, the CPUID file, the QEMU stand-in and the OVMF directories. */
export interface HostFixture {
  root: string;
  cpuidFile: string;
  /** QEMU stand-in (a shell script) or a path that does not exist. */
  qemu: string;
  ovmfDirs: string[];
}

function write(root: string, rel: string, data: string | Buffer, mode = 0o644): void {
  const file = path.join(root, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data, { mode });
  fs.chmodSync(file, mode);
}

function limitsText(soft: string, hard: string): string {
  const row = (name: string, s: string, h: string, unit: string) => `${name.padEnd(26)}${s.padEnd(21)}${h.padEnd(21)}${unit.padEnd(10)}\n`;
  return (
    row('Limit', 'Soft Limit', 'Hard Limit', 'Units') +
    row('Max cpu time', 'unlimited', 'unlimited', 'seconds') +
    row('Max stack size', '8388608', 'unlimited', 'bytes') +
    row('Max open files', '1024', '524288', 'files') +
    row('Max locked memory', soft, hard, 'bytes') +
    row('Max address space', 'unlimited', 'unlimited', 'bytes')
  );
}

/** Write the fake host under `dir` (created). Defaults: the all-green simulated EPYC 9004 host. */
export function writeHostFixture(dir: string, spec: HostFixtureSpec = {}): HostFixture {
  const def = CPU_PRESETS[spec.cpu ?? 'genoa'];
  const root = path.join(dir, 'root');
  fs.mkdirSync(root, { recursive: true });

  const leaves = cpuidFor(spec.leaf1f ? { ...def, leaf1f: spec.leaf1f } : def);
  Object.assign(leaves, spec.cpuid ?? {});
  const cpuidFile = path.join(dir, 'cpuid.json');
  fs.writeFileSync(cpuidFile, `${JSON.stringify(leaves, null, 2)}\n`);

  const syscfg = spec.syscfg === undefined ? def.syscfg : spec.syscfg;
  if (syscfg !== null) {
    // Sparse file: only the SYSCFG slot holds data, at offset = MSR number.
    const file = path.join(root, 'dev/cpu/0/msr');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const fd = fs.openSync(file, 'w', 0o600);
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(syscfg);
    fs.writeSync(fd, b, 0, 8, MSR_SYSCFG);
    const rmp = spec.rmp === undefined ? def.rmp : spec.rmp;
    if (rmp !== undefined) {
      for (const [msr, v] of [
        [MSR_RMP_BASE, rmp?.base ?? 0n],
        [FAKE_RMP_END_OFFSET, rmp?.end ?? 0n],
      ] as const) {
        b.writeBigUInt64LE(v);
        fs.writeSync(fd, b, 0, 8, msr);
      }
    }
    fs.closeSync(fd);
  }
  if (spec.iommu !== false) fs.mkdirSync(path.join(root, 'sys/class/iommu/ivhd0'), { recursive: true });
  if (spec.cpuinfoFlags)
    write(root, 'proc/cpuinfo', `processor\t: 0\nvendor_id\t: ${def.vendor}\nmodel name\t: ${def.brand}\nflags\t\t: ${spec.cpuinfoFlags.join(' ')}\n`);

  if (spec.kvmAmd !== false) {
    const p = { sev: 'Y\n', sevEs: 'Y\n', sevSnp: 'Y\n', ...(spec.kvmAmd ?? {}) };
    fs.mkdirSync(path.join(root, 'sys/module/kvm_amd/parameters'), { recursive: true });
    if (p.sev !== null) write(root, 'sys/module/kvm_amd/parameters/sev', p.sev);
    if (p.sevEs !== null) write(root, 'sys/module/kvm_amd/parameters/sev_es', p.sevEs);
    if (p.sevSnp !== null) write(root, 'sys/module/kvm_amd/parameters/sev_snp', p.sevSnp);
  }
  if (spec.devSev !== false) write(root, 'dev/sev', '', 0o660);
  if (spec.devKvm !== false) write(root, 'dev/kvm', '', 0o660);
  const memlock = spec.memlock === undefined ? { soft: 'unlimited', hard: 'unlimited' } : spec.memlock;
  if (memlock) write(root, 'proc/self/limits', limitsText(memlock.soft, memlock.hard));
  write(
    root,
    'proc/cmdline',
    `${spec.cmdline ?? 'BOOT_IMAGE=/vmlinuz-6.12.0-sim root=/dev/vda1 ro mem_encrypt=on kvm_amd.sev=1 kvm_amd.sev_es=1 kvm_amd.sev_snp=1'}\n`,
  );
  write(root, 'proc/sys/kernel/osrelease', `${spec.osrelease ?? '6.12.0-sim'}\n`);

  const qemu = path.join(dir, 'bin/qemu-system-x86_64');
  const qv = spec.qemuVersion === undefined ? '9.2.0' : spec.qemuVersion;
  if (qv !== null) {
    write(
      dir,
      'bin/qemu-system-x86_64',
      `#!/bin/sh\necho "QEMU emulator version ${qv} (sevkit host fixture)"\necho "Copyright (c) 2003-2024 Fabrice Bellard and the QEMU Project developers"\n`,
      0o755,
    );
  }
  const ovmfDir = path.join(dir, 'usr/share/OVMF');
  fs.mkdirSync(ovmfDir, { recursive: true });
  const ovmf = spec.ovmf ?? 'amdsev';
  if (ovmf === 'amdsev')
    fs.writeFileSync(path.join(ovmfDir, 'OVMF.amdsev.fd'), buildOvmfImage({ resetBlock: true, secretArea: true, kernelHashes: true, snpMetadata: true }));
  if (ovmf === 'plain')
    fs.writeFileSync(path.join(ovmfDir, 'OVMF_CODE_4M.fd'), buildOvmfImage({ resetBlock: true, secretArea: false, kernelHashes: false, snpMetadata: true }));
  if (ovmf === 'legacy') fs.writeFileSync(path.join(ovmfDir, 'OVMF_CODE.fd'), Buffer.alloc(4096));
  return { root, cpuidFile, qemu, ovmfDirs: [ovmfDir] };
}
