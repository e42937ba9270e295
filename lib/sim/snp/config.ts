/**
 * The simulated SNP guest's launch values: what the firmware would have
 * recorded at SNP_LAUNCH_FINISH (measurement, policy, host data, ID block
 * fields). Configured in `<state>/snp-guest.json`, read before every request
 * (like faults.json), so a test can change them while the simulator runs; a
 * guest the QEMU wrapper launched has its own launch values on top of it
 * (launch-link.ts). Every value is TEST data.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SevkitError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { parseProduct, type SnpProduct } from '../../snp/product.js';

/** File name of the configuration inside the state dir. */
export const SNP_GUEST_CONFIG_FILE = 'snp-guest.json';

/** The configuration as written to snp-guest.json (hex strings for byte fields). */
export interface SnpGuestConfig {
  /** Product line whose report layout, CPUID, TCB layout and hwID length are played (default Genoa, the simulated EPYC 9654). */
  product?: SnpProduct;
  /** Report VERSION (2..5; default 3 for Milan, 5 for Genoa and Turin). */
  reportVersion?: number;
  /** MEASUREMENT, 48 bytes hex (default: SHA-384 of a fixed TEST label). */
  measurement?: string;
  /** POLICY u64 as hex or number (default 0x30000: SMT allowed, bit 17). */
  policy?: string | number;
  /** HOST_DATA, 32 bytes hex (default zero). */
  hostData?: string;
  /** FAMILY_ID / IMAGE_ID, 16 bytes hex each (default zero). */
  familyId?: string;
  imageId?: string;
  /** GUEST_SVN (default 0). */
  guestSvn?: number;
  /** ID_KEY_DIGEST / AUTHOR_KEY_DIGEST, 48 bytes hex each (default zero: no ID block). */
  idKeyDigest?: string;
  authorKeyDigest?: string;
  /** KEY_INFO.AUTHOR_KEY_EN: the ID block was signed by an author key (default false). */
  authorKeyEn?: boolean;
  /** REPORT_ID, 32 bytes hex (default derived from the platform seed). */
  reportId?: string;
  /** The driver's VMPL (privlevel_floor; vmpck_id): requests below it are INVALID_PARAM (default 0). */
  vmplFloor?: number;
  /** Which key signs: the chip's VCEK (default) or a VLEK the host loaded. */
  signingKey?: 'VCEK' | 'VLEK';
  /** Whether the host answers extended requests with ARK/ASK/VCEK (default true; false = an empty table, as upstream KVM). */
  certTable?: boolean;
}

/** The configuration resolved to bytes and numbers. */
export interface ResolvedSnpGuestConfig {
  product: SnpProduct;
  reportVersion: number;
  measurement: Buffer;
  policy: bigint;
  hostData: Buffer;
  familyId: Buffer;
  imageId: Buffer;
  guestSvn: number;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
  authorKeyEn: boolean;
  /** undefined: the guest side derives it from the platform seed */
  reportId: Buffer | undefined;
  vmplFloor: number;
  signingKey: 'VCEK' | 'VLEK';
  certTable: boolean;
}

/** A snp-guest.json that cannot be used. */
export class SnpGuestConfigError extends SevkitError {
  constructor(message: string) {
    super('ERR_SIM_SNP_CONFIG', message);
  }
}

function hexField(v: string | undefined, len: number, name: string, dflt: Buffer): Buffer {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(v) || v.length !== 2 * len) {
    throw new SnpGuestConfigError(`${SNP_GUEST_CONFIG_FILE}: ${name} must be ${len} bytes of hex`);
  }
  return Buffer.from(v, 'hex');
}

/** Resolve a configuration (missing fields take their defaults). Throws SnpGuestConfigError naming the bad field. */
export function resolveSnpGuestConfig(c: SnpGuestConfig, defaultProduct: SnpProduct = 'Genoa'): ResolvedSnpGuestConfig {
  const product = c.product === undefined ? defaultProduct : parseProduct(String(c.product));
  if (!product) throw new SnpGuestConfigError(`${SNP_GUEST_CONFIG_FILE}: product must be Milan, Genoa or Turin, got ${String(c.product)}`);
  const reportVersion = c.reportVersion ?? (product === 'Milan' ? 3 : 5);
  if (!Number.isInteger(reportVersion) || reportVersion < 2 || reportVersion > 5)
    throw new SnpGuestConfigError(`${SNP_GUEST_CONFIG_FILE}: reportVersion must be 2..5`);
  if (reportVersion === 2 && product === 'Turin') throw new SnpGuestConfigError(`${SNP_GUEST_CONFIG_FILE}: Turin firmware makes no version 2 reports`);
  let policy: bigint;
  try {
    policy = BigInt(c.policy ?? 0x30000);
  } catch {
    throw new SnpGuestConfigError(`${SNP_GUEST_CONFIG_FILE}: policy must be a number or 0x-hex`);
  }
  const u = (v: number | undefined, name: string, max: number, dflt: number) => {
    const n = v ?? dflt;
    if (!Number.isInteger(n) || n < 0 || n > max) throw new SnpGuestConfigError(`${SNP_GUEST_CONFIG_FILE}: ${name} must be an integer 0..${max}`);
    return n;
  };
  if (c.authorKeyEn !== undefined && typeof c.authorKeyEn !== 'boolean')
    throw new SnpGuestConfigError(`${SNP_GUEST_CONFIG_FILE}: authorKeyEn must be true or false`);
  const signingKey = c.signingKey ?? 'VCEK';
  if (signingKey !== 'VCEK' && signingKey !== 'VLEK') throw new SnpGuestConfigError(`${SNP_GUEST_CONFIG_FILE}: signingKey must be VCEK or VLEK`);
  return {
    product,
    reportVersion,
    measurement: hexField(c.measurement, 48, 'measurement', crypto.createHash('sha384').update('sevkit simulated SNP launch (TEST)').digest()),
    policy,
    hostData: hexField(c.hostData, 32, 'hostData', Buffer.alloc(32)),
    familyId: hexField(c.familyId, 16, 'familyId', Buffer.alloc(16)),
    imageId: hexField(c.imageId, 16, 'imageId', Buffer.alloc(16)),
    guestSvn: u(c.guestSvn, 'guestSvn', 0xffffffff, 0),
    idKeyDigest: hexField(c.idKeyDigest, 48, 'idKeyDigest', Buffer.alloc(48)),
    authorKeyDigest: hexField(c.authorKeyDigest, 48, 'authorKeyDigest', Buffer.alloc(48)),
    authorKeyEn: c.authorKeyEn ?? false,
    reportId: c.reportId === undefined ? undefined : hexField(c.reportId, 32, 'reportId', Buffer.alloc(32)),
    vmplFloor: u(c.vmplFloor, 'vmplFloor', 3, 0),
    signingKey,
    certTable: c.certTable ?? true,
  };
}

/** Read `<stateDir>/snp-guest.json` (empty object when absent). Throws SnpGuestConfigError for unreadable JSON. */
export function readSnpGuestConfig(stateDir: string): SnpGuestConfig {
  const file = path.join(stateDir, SNP_GUEST_CONFIG_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new SnpGuestConfigError(`${file}: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as SnpGuestConfig;
  } catch (e) {
    throw new SnpGuestConfigError(`${file}: not a JSON object (${(e as Error).message})`);
  }
}

/** Write the simulated guest's launch values (atomically; the daemon reads them on its next request). */
export function writeSnpGuestConfig(stateDir: string, config: SnpGuestConfig): void {
  resolveSnpGuestConfig(config); // refuse what the daemon would refuse
  writeFileAtomic(path.join(stateDir, SNP_GUEST_CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
}
