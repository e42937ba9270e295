/**
 * CPUID for the host probes and the QEMU supervisor (cbitpos / reduced-phys-bits).
 *
 * Sources, in order:
 *  1. the `file` option (the CLI passes `SEVKIT_CPUID`): a JSON file `{ "0x8000001f:0": [eax, ebx, ecx, edx], ... }`
 *     (the simulator's fake host; tests). Missing leaves read as zeros, like CPUID beyond the max leaf.
 *  2. the native addon's `cpuid(leaf, subleaf)` (real hardware; x86-64 only).
 *  3. `/proc/cpuinfo` (the caller's reader, e.g. under a fake host root): vendor, brand, family/model and the `sme sev sev_es sev_snp`
 *     flags are turned back into the leaves the probes read. C-bit position and the ASID counts are not
 *     in /proc/cpuinfo, so they read as 0 and `source` says `cpuinfo` — callers report that honestly.
 */
import fs from 'node:fs';
import { SevkitError } from '../errors.js';

/** One CPUID answer: the four 32-bit registers [eax, ebx, ecx, edx]. */
export type CpuidRegs = readonly [eax: number, ebx: number, ecx: number, edx: number];

/** A CPUID source that cannot be read or parsed (a bad SEVKIT_CPUID file, a malformed leaf). */
export class CpuidError extends SevkitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_HOST_CPUID_FILE', message, options);
  }
}

/**
 * Where a CpuidReader's answers come from: a JSON file, the native addon, leaves rebuilt from /proc/cpuinfo, or
 * nothing (all zeros).
 */
export type CpuidSourceKind = 'file' | 'native' | 'cpuinfo' | 'none';

/**
 * A CPUID source: get(leaf, subleaf) answers like the instruction (zeros for leaves it does not know) and says
 * which source it is.
 */
export interface CpuidReader {
  readonly source: CpuidSourceKind;
  /** Why a better source was not used (e.g. the addon failed to load); for diagnostics. */
  readonly note?: string;
  get(leaf: number, subleaf?: number): CpuidRegs;
}

const ZERO: CpuidRegs = [0, 0, 0, 0];

export function cpuidKey(leaf: number, subleaf = 0): string {
  return `0x${(leaf >>> 0).toString(16)}:${subleaf >>> 0}`;
}

function parseRegValue(v: unknown, where: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
  if (typeof v === 'string' && /^(0x[0-9a-f]{1,8}|[0-9]+)$/i.test(v.trim())) {
    const n = Number(v.trim());
    if (n <= 0xffffffff) return n;
  }
  throw new CpuidError(`${where}: register value must be a u32 number or 0x-hex string, got ${JSON.stringify(v)}`);
}

/** Parse the SEVKIT_CPUID JSON text into a leaf map. Keys: "0xLEAF:SUBLEAF" (hex or decimal; ":0" optional). */
export function parseCpuidJson(text: string, file = 'CPUID file'): Map<string, CpuidRegs> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CpuidError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new CpuidError(`${file}: expected an object of "0xLEAF:SUBLEAF": [eax, ebx, ecx, edx]`);
  const out = new Map<string, CpuidRegs>();
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const m = /^\s*(0x[0-9a-f]+|[0-9]+)\s*(?::\s*(0x[0-9a-f]+|[0-9]+))?\s*$/i.exec(k);
    if (!m) throw new CpuidError(`${file}: bad leaf key ${JSON.stringify(k)} (want "0x8000001f:0")`);
    if (!Array.isArray(v) || v.length !== 4) throw new CpuidError(`${file}: leaf ${k} must be [eax, ebx, ecx, edx]`);
    const regs = v.map((x, i) => parseRegValue(x, `${file}: leaf ${k} ${['eax', 'ebx', 'ecx', 'edx'][i]}`)) as unknown as CpuidRegs;
    out.set(cpuidKey(Number(m[1]), m[2] ? Number(m[2]) : 0), regs);
  }
  return out;
}

export function mapCpuid(map: Map<string, CpuidRegs>, source: CpuidSourceKind, note?: string): CpuidReader {
  return { source, note, get: (leaf, subleaf = 0) => map.get(cpuidKey(leaf, subleaf)) ?? ZERO };
}

function u32le(s: string): number {
  const b = Buffer.alloc(4);
  b.write(s.slice(0, 4), 'latin1');
  return b.readUInt32LE(0);
}

/** Leaves 0x80000002..4 for a brand string (48 bytes, NUL padded). */
export function brandLeaves(brand: string): Array<[number, CpuidRegs]> {
  const b = Buffer.alloc(48);
  b.write(brand.slice(0, 47), 'latin1');
  const out: Array<[number, CpuidRegs]> = [];
  for (let i = 0; i < 3; i++) {
    const o = i * 16;
    out.push([0x80000002 + i, [b.readUInt32LE(o), b.readUInt32LE(o + 4), b.readUInt32LE(o + 8), b.readUInt32LE(o + 12)]]);
  }
  return out;
}

/** Leaf 0 registers for a 12-character vendor id. */
export function vendorLeaf(vendor: string, maxLeaf = 0x10): CpuidRegs {
  const v = vendor.padEnd(12, '\0');
  return [maxLeaf, u32le(v.slice(0, 4)), u32le(v.slice(8, 12)), u32le(v.slice(4, 8))];
}

/** CPUID(0x80000001).EAX / CPUID(1).EAX signature from family/model/stepping. */
export function signature(family: number, model: number, stepping = 1): number {
  const baseFamily = Math.min(family, 0xf);
  const extFamily = family > 0xf ? family - 0xf : 0;
  return (((extFamily & 0xff) << 20) | (((model >> 4) & 0xf) << 16) | ((baseFamily & 0xf) << 8) | ((model & 0xf) << 4) | (stepping & 0xf)) >>> 0;
}

/** Rebuild the probed leaves from /proc/cpuinfo text (no C-bit / ASIDs available there). */
export function cpuidFromCpuinfo(text: string): Map<string, CpuidRegs> {
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const map = new Map<string, CpuidRegs>();
  const vendor = field('vendor_id');
  if (vendor) map.set(cpuidKey(0), vendorLeaf(vendor));
  const family = Number(field('cpu family') ?? 'NaN');
  const model = Number(field('model') ?? 'NaN');
  const stepping = Number(field('stepping') ?? '0');
  map.set(cpuidKey(0x80000000), [0x80000020, 0, 0, 0]);
  if (Number.isInteger(family) && Number.isInteger(model))
    map.set(cpuidKey(0x80000001), [signature(family, model, Number.isInteger(stepping) ? stepping : 0), 0, 0, 0]);
  const brand = field('model name');
  if (brand) for (const [leaf, regs] of brandLeaves(brand)) map.set(cpuidKey(leaf), regs);
  const flags = new Set((field('flags') ?? '').split(/\s+/));
  const eax = (flags.has('sme') ? 1 : 0) | (flags.has('sev') ? 2 : 0) | (flags.has('sev_es') ? 8 : 0) | (flags.has('sev_snp') ? 16 : 0);
  map.set(cpuidKey(0x8000001f), [eax, 0, 0, 0]);
  return map;
}

/** Where openCpuid reads CPUID from: a JSON file, a /proc/cpuinfo reader, a reader to use as is, or no native addon. */
export interface CpuidOptions {
  /** CPUID JSON file (the simulator's fake host; the CLI passes $SEVKIT_CPUID). */
  file?: string;
  /** Reads /proc/cpuinfo for the last-resort fallback (the host probes pass their root-prefixed reader); default: the real file. */
  readCpuinfo?: () => string;
  /** A reader to use as is (tests). */
  reader?: CpuidReader;
  /** Skip the native addon (tests; hosts without the addon built). */
  noNative?: boolean;
}

/**
 * The CPUID reader the probes use. The addon is imported lazily and only when
 * no file is given, so sev-status on a fake host never loads native code.
 */
export async function openCpuid(opts: CpuidOptions = {}): Promise<CpuidReader> {
  if (opts.reader) return opts.reader;
  const file = opts.file || undefined;
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new CpuidError(`${file}: cannot read CPUID file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    return mapCpuid(parseCpuidJson(text, file), 'file');
  }
  let note: string | undefined;
  if (!opts.noNative && (process.arch === 'x64' || process.arch === 'ia32')) {
    try {
      const { getBinding } = await import('../binding.js');
      const b = getBinding() as unknown as { cpuid?: (leaf: number, subleaf: number) => ArrayLike<number> };
      if (typeof b.cpuid !== 'function') throw new Error('the addon has no cpuid()');
      const cpuid = b.cpuid.bind(b);
      const cache = new Map<string, CpuidRegs>();
      return {
        source: 'native',
        get(leaf, subleaf = 0) {
          const k = cpuidKey(leaf, subleaf);
          let r = cache.get(k);
          if (!r) {
            const v = cpuid(leaf >>> 0, subleaf >>> 0);
            r = [v[0]! >>> 0, v[1]! >>> 0, v[2]! >>> 0, v[3]! >>> 0];
            cache.set(k, r);
          }
          return r;
        },
      };
    } catch (e) {
      note = `native CPUID unavailable: ${(e as Error).message.split('\n')[0]}`;
    }
  } else if (!opts.noNative) {
    note = `no CPUID on ${process.arch}`;
  }
  try {
    const text = opts.readCpuinfo ? opts.readCpuinfo() : fs.readFileSync('/proc/cpuinfo', 'utf8');
    return mapCpuid(cpuidFromCpuinfo(text), 'cpuinfo', note);
  } catch (e) {
    return mapCpuid(new Map(), 'none', note ?? `cannot read /proc/cpuinfo: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

// ── decoding ─────────────────────────────────────────────────────────────────

/** The 12-character CPU vendor id from leaf 0 ('AuthenticAMD'). */
export function vendorString(r: CpuidReader): string {
  const [, ebx, ecx, edx] = r.get(0);
  const b = Buffer.alloc(12);
  b.writeUInt32LE(ebx, 0);
  b.writeUInt32LE(edx, 4);
  b.writeUInt32LE(ecx, 8);
  return b.toString('latin1');
}

/** The processor brand string from leaves 0x80000002..4, trimmed (NULs and spaces). */
export function brandString(r: CpuidReader): string {
  const b = Buffer.alloc(48);
  for (let i = 0; i < 3; i++) {
    const regs = r.get(0x80000002 + i);
    for (let j = 0; j < 4; j++) b.writeUInt32LE(regs[j]! >>> 0, i * 16 + j * 4);
  }
  return (
    b
      .toString('latin1')
      // eslint-disable-next-line no-control-regex
      .replace(/\u0000+$/g, '')
      // eslint-disable-next-line no-control-regex
      .replace(/\u0000/g, '')
      .trim()
  );
}

/** Family and model as sevctl computes them from CPUID 0x80000001 EAX. */
export function familyModel(r: CpuidReader): { family: number; model: number; stepping: number } {
  const eax = r.get(0x80000001)[0];
  const baseModel = (eax >>> 4) & 0xf;
  const baseFamily = (eax >>> 8) & 0xf;
  const extModel = (eax >>> 16) & 0xf;
  const extFamily = (eax >>> 20) & 0xff;
  return { family: baseFamily + extFamily, model: (extModel << 4) | baseModel, stepping: eax & 0xf };
}

/** AMD's memory-encryption capabilities (CPUID 0x8000001F), decoded. */
export interface SevCpuInfo {
  /** EAX bit 0 */
  sme: boolean;
  /** EAX bit 1 */
  sev: boolean;
  /** EAX bit 2: VM_PAGE_FLUSH MSR */
  pageFlush: boolean;
  /** EAX bit 3 */
  sevEs: boolean;
  /** EAX bit 4 */
  snp: boolean;
  /** EAX bit 5 */
  vmpl: boolean;
  /** EBX[5:0]: C-bit position in guest page tables; QEMU's `cbitpos` must equal it. */
  cbitpos: number;
  /** EBX[11:6]: physical address bits lost when memory encryption is on. */
  reducedPhysBits: number;
  /** EBX[15:12] */
  numVmpls: number;
  /** ECX: number of encrypted guests supported simultaneously (= highest SEV ASID). */
  maxAsids: number;
  /** EDX: minimum ASID of an SEV (non-ES) guest; ASIDs 1..EDX-1 belong to SEV-ES/SNP. */
  minSevAsid: number;
  /** Plain-SEV ASIDs, KVM's "SEV supported: N ASIDs" (ECX - EDX + 1, 0 if none). */
  sevAsids: number;
  /** SEV-ES/SNP ASIDs, KVM's "SEV-ES supported: N ASIDs" (EDX - 1, 0 if none). */
  sevEsAsids: number;
  raw: { eax: number; ebx: number; ecx: number; edx: number };
}

/** Decodes the registers of CPUID leaf 0x8000001F (memory-encryption features, C-bit position, ASID ranges). */
export function decodeSevLeaf(regs: CpuidRegs): SevCpuInfo {
  const [eax, ebx, ecx, edx] = regs.map((x) => x >>> 0) as [number, number, number, number];
  const sevAsids = ecx >= edx && edx >= 1 ? ecx - edx + 1 : 0;
  return {
    sme: (eax & 1) !== 0,
    sev: (eax & 2) !== 0,
    pageFlush: (eax & 4) !== 0,
    sevEs: (eax & 8) !== 0,
    snp: (eax & 16) !== 0,
    vmpl: (eax & 32) !== 0,
    cbitpos: ebx & 0x3f,
    reducedPhysBits: (ebx >>> 6) & 0x3f,
    numVmpls: (ebx >>> 12) & 0xf,
    maxAsids: ecx,
    minSevAsid: edx,
    sevAsids,
    sevEsAsids: edx > 1 ? Math.min(edx - 1, ecx) : 0,
    raw: { eax, ebx, ecx, edx },
  };
}

/** Leaf 0x8000001F, or all-false when the CPU's max extended leaf is below it (Intel, old AMD). */
export function sevLeaf(r: CpuidReader): SevCpuInfo {
  // Only real CPUID needs the max-leaf guard: Intel answers out-of-range leaves with other data.
  const maxExt = r.get(0x80000000)[0] >>> 0;
  if (r.source === 'native' && maxExt < 0x8000001f) return decodeSevLeaf(ZERO);
  return decodeSevLeaf(r.get(0x8000001f));
}

/**
 * The host's SEV CPU facts for QEMU's `sev-guest` (cbitpos, reduced-phys-bits) and for the
 * probes. Reads SEVKIT_CPUID when set, else the addon, else /proc/cpuinfo.
 */
export async function sevCpuInfo(opts: CpuidOptions = {}): Promise<SevCpuInfo & { source: CpuidSourceKind }> {
  const r = await openCpuid(opts);
  return { ...sevLeaf(r), source: r.source };
}
