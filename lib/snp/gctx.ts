/**
 * The SNP guest-context launch digest (GCTX.LD): 48 bytes, zero at LAUNCH_START, replaced on every measured
 * 4 KiB page by SHA-384 of the 0x70-byte PAGE_INFO (current LD ‖ contents ‖ length ‖ page type ‖ IMI ‖ VMPL
 * permissions ‖ GPA), as the SNP firmware and sev-snp-measure compute it (shared/specs/snp-launch.md §1.1).
 *
 * The whole state is the 48-byte LD, so forking it for a variant (diagnosis) is a 48-byte copy: `clone()`.
 */
import crypto from 'node:crypto';
import { LaunchInputError } from '../launch/errors.js';

/** SNP_LAUNCH_UPDATE page types (PAGE_INFO.PAGE_TYPE). */
export const SnpPageType = {
  NORMAL: 1,
  VMSA: 2,
  ZERO: 3,
  UNMEASURED: 4,
  SECRETS: 5,
  CPUID: 6,
} as const;
/** One of SnpPageType's values. */
export type SnpPageType = (typeof SnpPageType)[keyof typeof SnpPageType];

/** Name of a page type ("NORMAL", ...), as the vectors spell it. */
export function snpPageTypeName(t: number): string {
  return Object.entries(SnpPageType).find(([, v]) => v === t)?.[0] ?? `type ${t}`;
}

/** Size of the launch digest in bytes (SHA-384). */
export const SNP_LD_SIZE = 48;
/** Size of PAGE_INFO in bytes. */
export const PAGE_INFO_SIZE = 0x70;
/** One measured page. */
export const SNP_PAGE_SIZE = 4096;
/** The GPA KVM records VMSA pages at: (u64)−1, page-aligned, bits above 51 cleared. */
export const SNP_VMSA_GPA = 0x0000_ffff_ffff_f000n;

const ZERO_CONTENTS = Buffer.alloc(SNP_LD_SIZE);

/** One GCTX update, for traces (the vectors carry them per page). */
export interface GctxStep {
  /** 0-based index of the update. */
  index: number;
  pageType: SnpPageType;
  gpa: bigint;
  /** SHA-384 of the page (NORMAL, VMSA) or 48 zero bytes. */
  contents: Buffer;
  /** LD after this update. */
  ldAfter: Buffer;
}

/** SHA-384 of one 4 KiB page. */
export function sha384(data: Uint8Array): Buffer {
  return crypto.createHash('sha384').update(data).digest();
}

/** A running SNP launch digest. */
export class SnpGctx {
  private ld: Buffer;
  private readonly info = Buffer.alloc(PAGE_INFO_SIZE);
  /** Number of updates so far. */
  updates = 0;
  /** Called after every update when set (traces, tests); the buffers are the caller's. */
  onStep: ((s: GctxStep) => void) | undefined;

  /** Start from 48 zero bytes, or from `seed` (sev-snp-measure's `--snp-ovmf-hash`: the LD after the firmware pages). */
  constructor(seed?: Uint8Array) {
    if (seed !== undefined && seed.length !== SNP_LD_SIZE)
      throw new LaunchInputError(`SNP launch digest seed has ${seed.length} bytes, expected ${SNP_LD_SIZE}`, 'ERR_SNP_SEED', 'INVALID_LEN');
    this.ld = seed ? Buffer.from(seed) : Buffer.alloc(SNP_LD_SIZE);
    this.info.writeUInt16LE(PAGE_INFO_SIZE, 0x60);
  }

  /** The current LD (a copy). */
  digest(): Buffer {
    return Buffer.from(this.ld);
  }

  /** An independent copy of the state (the trace hook is not copied). */
  clone(): SnpGctx {
    const c = new SnpGctx(this.ld);
    c.updates = this.updates;
    return c;
  }

  /** One PAGE_INFO step: `contents` is the 48-byte field (page hash or zeros). */
  update(pageType: SnpPageType, gpa: bigint | number, contents: Uint8Array): this {
    if (contents.length !== SNP_LD_SIZE)
      throw new LaunchInputError(`PAGE_INFO contents has ${contents.length} bytes, expected ${SNP_LD_SIZE}`, 'ERR_SNP_PAGE_INFO', 'INVALID_LEN');
    const info = this.info;
    this.ld.copy(info, 0);
    info.set(contents, 0x30);
    info[0x62] = pageType;
    // IMI_PAGE, VMPL3..1 permissions and the reserved byte stay 0, as the calculators (and QEMU's launches) have them.
    info.writeBigUInt64LE(BigInt(gpa), 0x68);
    this.ld = crypto.createHash('sha384').update(info).digest();
    if (this.onStep) this.onStep({ index: this.updates, pageType, gpa: BigInt(gpa), contents: Buffer.from(contents), ldAfter: Buffer.from(this.ld) });
    this.updates++;
    return this;
  }

  /** The raw PAGE_INFO the next update with these values would hash (for byte-order checks). */
  pageInfo(pageType: SnpPageType, gpa: bigint | number, contents: Uint8Array): Buffer {
    const b = Buffer.alloc(PAGE_INFO_SIZE);
    this.ld.copy(b, 0);
    b.set(contents, 0x30);
    b.writeUInt16LE(PAGE_INFO_SIZE, 0x60);
    b[0x62] = pageType;
    b.writeBigUInt64LE(BigInt(gpa), 0x68);
    return b;
  }

  /** NORMAL pages: `data` (a multiple of 4 KiB) measured page by page from `gpa` up. */
  updateNormalPages(gpa: number, data: Uint8Array): this {
    requirePages(data.length, 'measured data');
    for (let off = 0; off < data.length; off += SNP_PAGE_SIZE) {
      this.update(SnpPageType.NORMAL, gpa + off, sha384(data.subarray(off, off + SNP_PAGE_SIZE)));
    }
    return this;
  }

  /** `size` bytes (a multiple of 4 KiB) of pages of a contents-free type (ZERO, UNMEASURED, SECRETS, CPUID). */
  updateEmptyPages(pageType: SnpPageType, gpa: number, size: number): this {
    requirePages(size, `${snpPageTypeName(pageType)} range at 0x${gpa.toString(16)}`);
    for (let off = 0; off < size; off += SNP_PAGE_SIZE) this.update(pageType, gpa + off, ZERO_CONTENTS);
    return this;
  }

  /** One VMSA page (4 KiB) at the VMSA GPA. */
  updateVmsaPage(page: Uint8Array): this {
    if (page.length !== SNP_PAGE_SIZE) throw new LaunchInputError(`VMSA page has ${page.length} bytes, expected ${SNP_PAGE_SIZE}`, 'ERR_LENGTH', 'INVALID_LEN');
    return this.updateVmsaHash(sha384(page));
  }

  /** A VMSA page given by its SHA-384 (the per-vCPU loop hashes each distinct page once). */
  updateVmsaHash(pageHash: Uint8Array): this {
    return this.update(SnpPageType.VMSA, SNP_VMSA_GPA, pageHash);
  }
}

function requirePages(size: number, what: string): void {
  if (!Number.isSafeInteger(size) || size < 0 || size % SNP_PAGE_SIZE !== 0) {
    throw new LaunchInputError(
      `${what}: ${size} bytes is not a multiple of ${SNP_PAGE_SIZE} (SNP measures whole 4 KiB pages)`,
      'ERR_SNP_PAGE_SIZE',
      'INVALID_LEN',
    );
  }
}
