/**
 * SEV-ES VMSA pages (`struct vmcb_save_area` of an SEV-ES guest, APM vol. 2
 * table B-4), built the way KVM/QEMU initialise a vCPU at reset so the owner
 * can predict LAUNCH_UPDATE_VMSA's contribution to the launch digest, plus
 * sevctl's `vmsa build|update|show` file format (0x408-byte struct padded to
 * a 4096-byte page).
 */
import { VmsaError } from './errors.js';
import { cpuSignature } from './cpus.js';

// The CPU model table lives in cpus.ts; re-exported here for existing importers.
export { VCPU_SIGNATURES, vcpuSignature, cpuSignature } from './cpus.js';

/** Size of a VMSA page: 4096 bytes. */
export const VMSA_SIZE = 4096;
/** Size of the save-area struct sevctl serialises (x87_state_gpa ends at 0x408). */
export const VMSA_STRUCT_SIZE = 0x408;

type FieldKind = 'seg' | 'u8' | 'u32' | 'u64' | 'bytes';
interface FieldDef {
  name: string;
  off: number;
  kind: FieldKind;
  /** Length in bytes for 'bytes'. */
  len?: number;
}

/** sevctl/virtee `Vmsa` field order; names and offsets mirror `struct sev_es_save_area`. */
const FIELDS: FieldDef[] = (() => {
  const f: FieldDef[] = [];
  const segs = ['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'gdtr', 'ldtr', 'idtr', 'tr'];
  segs.forEach((n, i) => f.push({ name: n, off: i * 16, kind: 'seg' }));
  const add = (name: string, off: number, kind: FieldKind, len?: number) => f.push(len === undefined ? { name, off, kind } : { name, off, kind, len });
  add('reserved_1', 0xa0, 'bytes', 43);
  add('cpl', 0xcb, 'u8');
  add('reserved_2', 0xcc, 'bytes', 4);
  add('efer', 0xd0, 'u64');
  add('reserved_3', 0xd8, 'bytes', 104);
  ['xss', 'cr4', 'cr3', 'cr0', 'dr7', 'dr6', 'rflags', 'rip'].forEach((n, i) => add(n, 0x140 + i * 8, 'u64'));
  add('reserved_4', 0x180, 'bytes', 88);
  add('rsp', 0x1d8, 'u64');
  add('reserved_5', 0x1e0, 'bytes', 24);
  ['rax', 'star', 'lstar', 'cstar', 'sfmask', 'kernel_gs_base', 'sysenter_cs', 'sysenter_esp', 'sysenter_eip', 'cr2'].forEach((n, i) =>
    add(n, 0x1f8 + i * 8, 'u64'),
  );
  add('reserved_6', 0x248, 'bytes', 32);
  ['g_pat', 'dbgctl', 'br_from', 'br_to', 'last_excp_from', 'last_excp_to'].forEach((n, i) => add(n, 0x268 + i * 8, 'u64'));
  add('reserved_7', 0x298, 'bytes', 72);
  add('spec_ctrl', 0x2e0, 'u32');
  add('reserved_7b', 0x2e4, 'bytes', 4);
  add('pkru', 0x2e8, 'u32');
  add('reserved_7a', 0x2ec, 'bytes', 20);
  add('reserved_8', 0x300, 'u64');
  add('rcx', 0x308, 'u64');
  add('rdx', 0x310, 'u64');
  add('rbx', 0x318, 'u64');
  add('reserved_9', 0x320, 'u64');
  ['rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'].forEach((n, i) => add(n, 0x328 + i * 8, 'u64'));
  add('reserved_10', 0x380, 'bytes', 16);
  ['sw_exit_code', 'sw_exit_info_1', 'sw_exit_info_2', 'sw_scratch'].forEach((n, i) => add(n, 0x390 + i * 8, 'u64'));
  add('reserved_11', 0x3b0, 'bytes', 56);
  add('xcr0', 0x3e8, 'u64');
  add('valid_bitmap', 0x3f0, 'bytes', 16);
  add('x87_state_gpa', 0x400, 'u64');
  return f;
})();

/** Offsets used when building pages. */
const OFF = {
  es: 0x00,
  cs: 0x10,
  ss: 0x20,
  ds: 0x30,
  fs: 0x40,
  gs: 0x50,
  gdtr: 0x60,
  ldtr: 0x70,
  idtr: 0x80,
  tr: 0x90,
  efer: 0xd0,
  cr4: 0x148,
  cr0: 0x158,
  dr7: 0x160,
  dr6: 0x168,
  rflags: 0x170,
  rip: 0x178,
  rsp: 0x1d8,
  g_pat: 0x268,
  rdx: 0x310,
  rbp: 0x328,
  rsi: 0x330,
  sev_features: 0x3b0,
  xcr0: 0x3e8,
  /** Beyond sevctl's struct: FPU state KVM_SEV_INIT2 syncs into the VMSA. */
  mxcsr: 0x408,
  x87_fcw: 0x410,
} as const;

const G_PAT = 0x0007040600070406n;

function setSeg(b: Buffer, off: number, s: { selector?: number; attrib?: number; limit?: number; base?: bigint | number }) {
  if (s.selector !== undefined) b.writeUInt16LE(s.selector, off);
  if (s.attrib !== undefined) b.writeUInt16LE(s.attrib, off + 2);
  if (s.limit !== undefined) b.writeUInt32LE(s.limit >>> 0, off + 4);
  if (s.base !== undefined) b.writeBigUInt64LE(BigInt(s.base), off + 8);
}
const u64 = (b: Buffer, off: number, v: number | bigint) => b.writeBigUInt64LE(BigInt(v), off);

/** The VMM whose vCPU reset state a sevctl VMSA reproduces. */
export type VmmUserspace = 'qemu' | 'krun';

/** Reset state shared by every variant: sevctl init_amd64 + init_kvm. */
function baseState(): Buffer {
  const b = Buffer.alloc(VMSA_SIZE);
  for (const s of ['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'gdtr', 'ldtr', 'idtr', 'tr'] as const) setSeg(b, OFF[s], { limit: 0xffff });
  setSeg(b, OFF.cs, { selector: 0xf000, base: 0xffff0000 });
  u64(b, OFF.cr0, 0x10);
  u64(b, OFF.rip, 0xfff0);
  u64(b, OFF.dr6, 0xffff0ff0);
  u64(b, OFF.dr7, 0x400);
  u64(b, OFF.rflags, 2);
  u64(b, OFF.xcr0, 1);
  u64(b, OFF.cr4, 0x40);
  u64(b, OFF.efer, 0x1000);
  setSeg(b, OFF.ldtr, { attrib: 0x82 });
  setSeg(b, OFF.tr, { attrib: 0x83 });
  u64(b, OFF.g_pat, G_PAT);
  return b;
}

function applyQemu(b: Buffer) {
  setSeg(b, OFF.ldtr, { attrib: 0x82 });
  setSeg(b, OFF.tr, { attrib: 0x8b });
  setSeg(b, OFF.cs, { attrib: 0x9b });
  for (const s of ['ds', 'es', 'ss', 'fs', 'gs'] as const) setSeg(b, OFF[s], { attrib: 0x93 });
}

function applyKrun(b: Buffer, cpu: number) {
  setSeg(b, OFF.cs, { attrib: 0x9a });
  for (const s of ['ds', 'es', 'fs', 'gs'] as const) setSeg(b, OFF[s], { attrib: 0x93 });
  setSeg(b, OFF.ss, { attrib: 0x92 });
  u64(b, OFF.rsi, 0x7000);
  u64(b, OFF.rbp, 0x8ff0);
  u64(b, OFF.rsp, 0x8ff0);
  if (cpu > 0) {
    u64(b, OFF.rip, 0);
    u64(b, OFF.rsp, 0);
    u64(b, OFF.rbp, 0);
    u64(b, OFF.rsi, 0);
    setSeg(b, OFF.cs, { selector: 0x9100, base: 0x91000 });
  }
}

/** sevctl `cpu_sku`: RDX = CPUID signature from family/model/stepping. */
export function setCpuSku(page: Buffer, family: number, model: number, stepping: number): void {
  u64(page, OFF.rdx, cpuSignature(family, model, stepping));
}

/** Point an AP at the OVMF reset address: RIP = low 16 bits, CS.base = the 64 KiB-aligned rest. */
export function setResetAddress(page: Buffer, resetAddress: number): void {
  u64(page, OFF.rip, resetAddress & 0xffff);
  setSeg(page, OFF.cs, { base: (resetAddress & 0xffff0000) >>> 0 });
}

/** Options of `sevctl vmsa build|update`: the vCPU index, VMM, CPU family/model/stepping and the AP reset address. */
export interface SevctlVmsaOptions {
  cpu: number;
  userspace?: VmmUserspace;
  family?: number;
  model?: number;
  stepping?: number;
  /**
   * AP reset address from the firmware. Applied for qemu and cpu != 0, as
   * sevctl does; sevctl reads only the low 3 bytes of the OVMF entry (see
   * sevctlResetAddress).
   */
  resetAddress?: number;
}

/** `sevctl vmsa build`: a 4096-byte page, byte-identical to sevctl's. */
export function buildSevctlVmsa(o: SevctlVmsaOptions): Buffer {
  const b = baseState();
  if ((o.userspace ?? 'qemu') === 'qemu') applyQemu(b);
  else applyKrun(b, o.cpu);
  return updateSevctlVmsa(b, o);
}

/** `sevctl vmsa update`: re-apply SKU and reset address on an existing page (in place; returns it). */
export function updateSevctlVmsa(page: Buffer, o: SevctlVmsaOptions): Buffer {
  if (page.length !== VMSA_SIZE) throw new VmsaError(`VMSA has ${page.length} bytes, expected ${VMSA_SIZE}`, 'ERR_VMSA_SIZE');
  const f = o.family ?? 0,
    m = o.model ?? 0,
    s = o.stepping ?? 0;
  if (f > 0 || m > 0 || s > 0) setCpuSku(page, f, m, s);
  if (o.resetAddress !== undefined && (o.userspace ?? 'qemu') === 'qemu' && o.cpu !== 0) setResetAddress(page, o.resetAddress);
  return page;
}

/** sevctl's reading of the OVMF reset block: only the first 3 bytes (b0 | b1<<8 | b2<<16). */
export function sevctlResetAddress(fullResetVector: number): number {
  return fullResetVector & 0xffffff;
}

/** How KVM fills the VMSA's FPU fields: legacy KVM_SEV_ES_INIT (QEMU < 9.1) leaves them 0, KVM_SEV_INIT2 sets MXCSR/FCW. */
export type VmType = 'legacy' | 'init2';

/** Options of buildEsVmsa: boot CPU or AP, the AP reset address, the vCPU signature, the VM type and SEV_FEATURES. */
export interface EsVmsaOptions {
  /** Boot CPU (reset at CS 0xF000:0xFFF0, base 0xFFFF0000) or AP (OVMF reset block). */
  ap: boolean;
  /** AP reset address (full u32 from the OVMF SEV-ES reset block); required for APs. */
  resetEip?: number;
  /** CPUID(1).EAX of the guest CPU model, placed in RDX. */
  vcpuSig: number;
  vmType?: VmType;
  /** SEV_FEATURES (0 for a plain SEV-ES guest; KVM may set DebugSwap 0x20 on some kernels). */
  sevFeatures?: bigint | number;
}

/** The VMSA page a QEMU/KVM host hands to LAUNCH_UPDATE_VMSA for one vCPU. */
export function buildEsVmsa(o: EsVmsaOptions): Buffer {
  const b = baseState();
  applyQemu(b);
  if (o.ap) {
    if (o.resetEip === undefined) throw new VmsaError('AP VMSA needs the firmware reset address', 'ERR_VMSA_RESET');
    setResetAddress(b, o.resetEip);
  }
  u64(b, OFF.rdx, o.vcpuSig >>> 0);
  if (o.sevFeatures) u64(b, OFF.sev_features, o.sevFeatures);
  if ((o.vmType ?? 'legacy') === 'init2') {
    b.writeUInt32LE(0x1f80, OFF.mxcsr);
    b.writeUInt16LE(0x037f, OFF.x87_fcw);
  } else if (o.vmType !== 'legacy' && o.vmType !== undefined) {
    throw new VmsaError(`unknown VM type '${String(o.vmType)}' (expected legacy or init2)`, 'ERR_VM_TYPE');
  }
  return b;
}

/** 'legacy' or 'init2'; throws VmsaError (ERR_VM_TYPE) on anything else. */
export function parseVmType(s: string): VmType {
  if (s === 'legacy' || s === 'init2') return s;
  throw new VmsaError(`unknown VM type '${s}' (expected legacy or init2)`, 'ERR_VM_TYPE');
}

/** A segment register in a VMSA: selector, attributes, limit and base. */
export interface VmsaSegment {
  selector: number;
  attrib: number;
  limit: number;
  base: bigint;
}
/** A decoded VMSA field: an integer, a u64 (bigint), a segment or raw bytes. */
export type VmsaValue = number | bigint | VmsaSegment | number[];

/** Decode a VMSA page into sevctl's field names (u64s as bigint). */
export function decodeVmsa(page: Uint8Array): Record<string, VmsaValue> {
  if (page.length !== VMSA_SIZE && page.length < VMSA_STRUCT_SIZE) {
    throw new VmsaError(`VMSA has ${page.length} bytes, expected ${VMSA_SIZE}`, 'ERR_VMSA_SIZE');
  }
  const b = Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  const out: Record<string, VmsaValue> = {};
  for (const f of FIELDS) {
    switch (f.kind) {
      case 'seg':
        out[f.name] = {
          selector: b.readUInt16LE(f.off),
          attrib: b.readUInt16LE(f.off + 2),
          limit: b.readUInt32LE(f.off + 4),
          base: b.readBigUInt64LE(f.off + 8),
        };
        break;
      case 'u8':
        out[f.name] = b[f.off]!;
        break;
      case 'u32':
        out[f.name] = b.readUInt32LE(f.off);
        break;
      case 'u64':
        out[f.name] = b.readBigUInt64LE(f.off);
        break;
      case 'bytes':
        out[f.name] = [...b.subarray(f.off, f.off + f.len!)];
        break;
    }
  }
  return out;
}

/** `sevctl vmsa show` output: serde_json pretty-printed struct (2-space indent), plus a newline. */
export function formatVmsaShow(page: Uint8Array): string {
  const v = decodeVmsa(page);
  const lines: string[] = ['{'];
  const names = FIELDS.map((f) => f.name);
  names.forEach((name, i) => {
    const comma = i < names.length - 1 ? ',' : '';
    const val = v[name]!;
    if (Array.isArray(val)) {
      lines.push(`  "${name}": [`);
      val.forEach((x, j) => lines.push(`    ${x}${j < val.length - 1 ? ',' : ''}`));
      lines.push(`  ]${comma}`);
    } else if (typeof val === 'object') {
      lines.push(
        `  "${name}": {`,
        `    "selector": ${val.selector},`,
        `    "attrib": ${val.attrib},`,
        `    "limit": ${val.limit},`,
        `    "base": ${val.base}`,
        `  }${comma}`,
      );
    } else {
      lines.push(`  "${name}": ${val}${comma}`);
    }
  });
  // Beyond sevctl's struct: the FPU fields KVM_SEV_INIT2 fills; shown only when set, so sevctl's files print identically.
  const b = Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  if (b.length >= 0x412) {
    const mxcsr = b.readUInt32LE(OFF.mxcsr),
      fcw = b.readUInt16LE(OFF.x87_fcw),
      features = b.readBigUInt64LE(OFF.sev_features);
    const extra: string[] = [];
    if (features) extra.push(`  "sev_features": ${features}`);
    if (mxcsr) extra.push(`  "mxcsr": ${mxcsr}`);
    if (fcw) extra.push(`  "x87_fcw": ${fcw}`);
    if (extra.length) {
      lines[lines.length - 1] += ',';
      lines.push(extra.join(',\n'));
    }
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
