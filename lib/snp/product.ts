/**
 * SNP product lines as AMD's KDS names them, and how a report's CPUID bytes
 * map to one. Siena and Bergamo are "Genoa" at KDS (their VCEKs are issued by
 * SEV-Genoa), so they are never a product of their own here.
 */
/** A KDS product line; selects the AMD roots and, through the generation, the TCB byte layout. */
export type SnpProduct = 'Milan' | 'Genoa' | 'Turin';

/** Every product sevkit knows, in generation order. */
export const SNP_PRODUCTS: readonly SnpProduct[] = ['Milan', 'Genoa', 'Turin'];

/** Byte layout of a TCB_VERSION: Milan/Genoa ('legacy') or Turin (FMC in byte 0). */
export type TcbLayout = 'legacy' | 'turin';

/** The TCB layout of a product's generation. */
export function tcbLayoutOf(product: SnpProduct): TcbLayout {
  return product === 'Turin' ? 'turin' : 'legacy';
}

/**
 * The product of a CPU from the v3+ CPUID bytes (family = ext + base family,
 * model = ext_model << 4 | base model), or undefined for a part KDS has no chain
 * for (e.g. Venice) or all-zero bytes (v2 reports).
 */
export function productFromCpuid(family: number, model: number): SnpProduct | undefined {
  if (family === 0x19) {
    if (model <= 0x0f) return 'Milan';
    if ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)) return 'Genoa';
    return undefined;
  }
  if (family === 0x1a && model <= 0x11) return 'Turin';
  return undefined;
}

/** Parse a product name as a user types it (case-insensitive; Siena and Bergamo mean Genoa); undefined when unknown. */
export function parseProduct(name: string): SnpProduct | undefined {
  const n = name.trim().toLowerCase();
  if (n === 'milan') return 'Milan';
  if (n === 'genoa' || n === 'siena' || n === 'bergamo') return 'Genoa';
  if (n === 'turin') return 'Turin';
  return undefined;
}

/** The product line of a VCEK/VLEK productName extension ("Milan-B0" → Milan); the stepping is ignored on purpose (KDS says B0 for stepping-1 parts). */
export function productFromProductName(productName: string): SnpProduct | undefined {
  return parseProduct(productName.split('-')[0] ?? '');
}

/** Length of the hwID / CHIP_ID prefix KDS identifies a chip by: 64 bytes, 8 on Turin. */
export function hwidLength(product: SnpProduct): number {
  return product === 'Turin' ? 8 : 64;
}
