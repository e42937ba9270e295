/**
 * TCB_VERSION: the 8-byte security patch levels (SPLs) of the firmware
 * components. The byte layout depends on the generation, not the report version:
 *
 *   byte      0     1     2     3     4     5     6     7
 *   legacy    BL    TEE   rsvd  rsvd  rsvd  rsvd  SNP   UCODE   (Milan, Genoa, Siena)
 *   turin     FMC   BL    TEE   SNP   rsvd  rsvd  rsvd  UCODE   (Turin)
 *
 * Ordering is component-wise (tcbA ≤ tcbB iff every SPL is ≤), never an integer
 * compare of the u64.
 */
import type { TcbLayout } from './product.js';
import { ReportFormatError } from './errors.js';

/** Size of a TCB_VERSION in bytes. */
export const TCB_SIZE = 8;

/** A decoded TCB_VERSION. `fmc` exists only in the Turin layout. */
export interface TcbVersion {
  /** Which byte layout the SPLs were read with. */
  layout: TcbLayout;
  /** BOOT_LOADER SPL. */
  bootloader: number;
  /** TEE SPL. */
  tee: number;
  /** SNP firmware SPL. */
  snp: number;
  /** MICROCODE SPL. */
  microcode: number;
  /** FMC SPL (Turin only). */
  fmc?: number;
  /** The reserved bytes in order (4 legacy: bytes 2–5, KDS spl4–spl7; 3 Turin: bytes 4–6); kept so a TCB re-encodes byte-exact. */
  reserved: number[];
}

/** The named SPLs of a layout, in the order KDS URLs list them. */
export type TcbComponent = 'fmc' | 'bootloader' | 'tee' | 'snp' | 'microcode';

/** The components a layout has. */
export function tcbComponents(layout: TcbLayout): TcbComponent[] {
  return layout === 'turin' ? ['fmc', 'bootloader', 'tee', 'snp', 'microcode'] : ['bootloader', 'tee', 'snp', 'microcode'];
}

/** Decode 8 bytes (at `offset` of `b`) with the given layout. `field` names the report field for errors. */
export function decodeTcb(b: Uint8Array, layout: TcbLayout, offset = 0, field = 'TCB_VERSION'): TcbVersion {
  if (b.length < offset + TCB_SIZE) throw new ReportFormatError(field, `needs ${TCB_SIZE} bytes, got ${Math.max(0, b.length - offset)}`);
  const at = (i: number) => b[offset + i]!;
  if (layout === 'turin') {
    return { layout, fmc: at(0), bootloader: at(1), tee: at(2), snp: at(3), microcode: at(7), reserved: [at(4), at(5), at(6)] };
  }
  return { layout, bootloader: at(0), tee: at(1), snp: at(6), microcode: at(7), reserved: [at(2), at(3), at(4), at(5)] };
}

function spl(v: number | undefined, name: string): number {
  const n = v ?? 0;
  if (!Number.isInteger(n) || n < 0 || n > 255) throw new ReportFormatError(`TCB_VERSION.${name}`, `SPL must be an integer 0..255, got ${String(v)}`);
  return n;
}

/** Encode a TCB_VERSION into 8 bytes with its own layout. Throws ReportFormatError for an SPL outside 0..255. */
export function encodeTcb(t: TcbVersion): Buffer {
  const out = Buffer.alloc(TCB_SIZE);
  const r = t.reserved;
  if (t.layout === 'turin') {
    out[0] = spl(t.fmc, 'FMC');
    out[1] = spl(t.bootloader, 'BOOT_LOADER');
    out[2] = spl(t.tee, 'TEE');
    out[3] = spl(t.snp, 'SNP');
    out[4] = spl(r[0], 'reserved');
    out[5] = spl(r[1], 'reserved');
    out[6] = spl(r[2], 'reserved');
  } else {
    out[0] = spl(t.bootloader, 'BOOT_LOADER');
    out[1] = spl(t.tee, 'TEE');
    for (let i = 0; i < 4; i++) out[2 + i] = spl(r[i], 'reserved');
    out[6] = spl(t.snp, 'SNP');
  }
  out[7] = spl(t.microcode, 'MICROCODE');
  return out;
}

/** Build a TCB from SPLs (reserved bytes zero). */
export function makeTcb(layout: TcbLayout, spls: { bootloader: number; tee: number; snp: number; microcode: number; fmc?: number }): TcbVersion {
  return layout === 'turin'
    ? { layout, fmc: spls.fmc ?? 0, bootloader: spls.bootloader, tee: spls.tee, snp: spls.snp, microcode: spls.microcode, reserved: [0, 0, 0] }
    : { layout, bootloader: spls.bootloader, tee: spls.tee, snp: spls.snp, microcode: spls.microcode, reserved: [0, 0, 0, 0] };
}

/** The components of `a` that are below `min` (component-wise); empty when a ≥ min. Layouts must agree. */
export function tcbBelow(a: TcbVersion, min: Partial<Record<TcbComponent, number>>): TcbComponent[] {
  return tcbComponents(a.layout).filter((c) => min[c] !== undefined && (a[c] ?? 0) < min[c]!);
}

/** Whether every named SPL of `a` equals `b`'s. */
export function tcbEqual(a: TcbVersion, b: TcbVersion): boolean {
  return a.layout === b.layout && tcbComponents(a.layout).every((c) => (a[c] ?? 0) === (b[c] ?? 0));
}

/** Whether a ≤ b component-wise (same layout). */
export function tcbLessOrEqual(a: TcbVersion, b: TcbVersion): boolean {
  return a.layout === b.layout && tcbComponents(a.layout).every((c) => (a[c] ?? 0) <= (b[c] ?? 0));
}

/** `fmc0 bl3 tee0 snp8 ucode115`-style one-line rendering. */
export function formatTcb(t: TcbVersion): string {
  const short: Record<TcbComponent, string> = { fmc: 'fmc', bootloader: 'bl', tee: 'tee', snp: 'snp', microcode: 'ucode' };
  return tcbComponents(t.layout)
    .map((c) => `${short[c]}${t[c] ?? 0}`)
    .join(' ');
}

/** JSON shape of a TCB: SPLs plus the raw bytes in report order (hex). */
export function tcbJson(t: TcbVersion): Record<string, number | string> {
  const o: Record<string, number | string> = {};
  for (const c of tcbComponents(t.layout)) o[c] = t[c] ?? 0;
  o.raw = encodeTcb(t).toString('hex');
  return o;
}
