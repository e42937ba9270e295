/**
 * Verification of an SNP attestation report against AMD's roots and a
 * verification policy, in the order of the reference spec's list (§6, steps
 * 1–19). Every check is run that can be run, and the verdict lists each one
 * with its outcome (pass / fail / skip, and why), so an operator sees every
 * reason at once, never just the first.
 *
 * Stricter than the peers by default: debug and migration agents refused,
 * VMPL 0 required, provisional firmware (COMMITTED ≠ CURRENT) refused, a VCEK
 * report with a masked (all-zero) CHIP_ID refused, the leaf CN and intermediate
 * must match SIGNING_KEY. Synchronous: fetch a missing VCEK first (kds.ts).
 */
import { createHash, verify as cryptoVerify } from 'node:crypto';
import { clearLinkCache, linkFailure, validityFailure } from './chain.js';
import { crlFailure, parseCrl } from './crl.js';
import type { AmdCrl } from './crl.js';
import { ReportFormatError, SnpError, SnpPolicyError } from './errors.js';
import { encodeGuestPolicy, encodePlatformInfo, setFlags } from './flags.js';
import type { PlatformInfo } from './flags.js';
import { hwidLength, productFromProductName, tcbLayoutOf } from './product.js';
import type { SnpProduct } from './product.js';
import { formatFirmwareVersion, parseReport, reportProduct, signatureIsZero, signatureP1363, signedRegion } from './report.js';
import type { FirmwareVersion, SnpReport } from './report.js';
import { builtinRoots, clearBuiltinRootsCache, productOfIssuer, sha256Hex } from './roots.js';
import type { ProductRoots } from './roots.js';
import { formatTcb, tcbBelow, tcbComponents, tcbJson, tcbLessOrEqual } from './tcb.js';
import type { TcbComponent, TcbVersion } from './tcb.js';
import { parseAmdCert } from './x509.js';
import type { AmdCert } from './x509.js';

/** What the verifier requires beyond a valid chain and signature. Every field is optional; the defaults are strict. */
export interface SnpPolicy {
  /** MEASUREMENT must equal one of these (48 bytes each). */
  measurements?: Uint8Array[];
  /** Accept POLICY.DEBUG = 1 (default false). */
  allowDebug?: boolean;
  /** Accept POLICY.MIGRATE_MA = 1 (default false). */
  allowMigrateMa?: boolean;
  /** Accept POLICY.SMT = 1 (default true: almost every host runs SMT). */
  allowSmt?: boolean;
  /** Accept POLICY.CXL_ALLOW = 1 (default true). */
  allowCxl?: boolean;
  /** Minimum guest policy ABI major.minor (POLICY.ABI_MAJOR/MINOR). */
  minAbi?: { major: number; minor: number };
  /** Minimum SPL per component, applied to REPORTED_TCB and CURRENT_TCB. */
  minTcb?: Partial<Record<TcbComponent, number>>;
  /** Minimum SPL per component for LAUNCH_TCB. */
  minLaunchTcb?: Partial<Record<TcbComponent, number>>;
  /** Minimum CURRENT firmware version (build optional). */
  minFirmware?: { major: number; minor: number; build?: number };
  /** Accepted report VERSION range, inclusive (default 2..5). */
  versions?: { min: number; max: number };
  /** The product the report must come from. */
  product?: SnpProduct;
  /** Required VMPL (default 0). */
  vmpl?: number;
  /** REPORT_DATA must equal these bytes, zero-padded to 64 (at most 64). */
  reportData?: Uint8Array;
  /** REPORT_DATA must equal SHA-512 of these bytes (a nonce and/or key the guest bound into its report). */
  reportDataBoundTo?: Uint8Array;
  /** HOST_DATA must equal these 32 bytes. */
  hostData?: Uint8Array;
  /** ID_KEY_DIGEST must be one of these (48 bytes each); implies an ID block. */
  idKeyDigests?: Uint8Array[];
  /** AUTHOR_KEY_DIGEST must be one of these (48 bytes each) and AUTHOR_KEY_EN set. */
  authorKeyDigests?: Uint8Array[];
  /** FAMILY_ID must equal these 16 bytes. */
  familyId?: Uint8Array;
  /** IMAGE_ID must equal these 16 bytes. */
  imageId?: Uint8Array;
  /** Minimum GUEST_SVN. */
  minGuestSvn?: number;
  /** CHIP_ID must be one of these (64 bytes, or 8 for Turin, compared on the hwID length). */
  chipIds?: Uint8Array[];
  /** Accept COMMITTED_TCB/version < CURRENT (firmware not yet committed); default false. */
  allowProvisional?: boolean;
  /** Accept a VCEK-signed report whose CHIP_ID is all zero (cannot be bound to the VCEK); default false. */
  allowMaskedChipId?: boolean;
  /** Fail when no CRL is given (default: the CRL check is skipped and says so). */
  requireCrl?: boolean;
  /** PLATFORM_INFO flags that must be set. */
  platformRequired?: (keyof Omit<PlatformInfo, 'unknownBits'>)[];
  /** PLATFORM_INFO flags that must be clear. */
  platformForbidden?: (keyof Omit<PlatformInfo, 'unknownBits'>)[];
  /** Bits both mitigation vectors (v5) must contain. */
  requiredMitigations?: bigint;
}

/** What to verify. */
export interface SnpVerifyInput {
  /** The 1184-byte report. */
  report: Uint8Array;
  /** The VCEK or VLEK (DER/PEM, or parsed). */
  vek?: Uint8Array | AmdCert;
  /** Where the VEK came from, for the verdict ("--vcek FILE", "KDS cache", "certificate table"). */
  vekSource?: string;
  /** A supplied ASK/ASVK (cert table, KDS cert_chain, a directory); must verify under the pinned ARK. */
  intermediate?: Uint8Array | AmdCert;
  /** A supplied ARK; must equal the pinned one. */
  ark?: Uint8Array | AmdCert;
  /** A DER CRL (AMD's, for the product); checked against the ARK. */
  crl?: Uint8Array | AmdCrl;
  /** The product, needed for v2 reports (else taken from the VEK issuer); must agree with the CPUID of v3+. */
  product?: SnpProduct;
  /** Verification time for certificate validity (default now). */
  at?: Date;
  /** The policy (default: the strict defaults). */
  policy?: SnpPolicy;
  /** Trust anchors instead of the built-in AMD roots (e.g. the simulator's TEST roots); default builtinRoots(product). */
  roots?: (product: SnpProduct) => ProductRoots;
}

/** Outcome of one check. */
export type CheckOutcome = 'pass' | 'fail' | 'skip';

/** One check of the verdict. */
export interface SnpCheck {
  /** The step of the spec's verification list (1–19). */
  step: number;
  /** Stable id, e.g. `report-signature`, `chip-id`. */
  id: string;
  outcome: CheckOutcome;
  /** What was found, or why it failed or was skipped. */
  detail: string;
}

/** The result of verifySnpReport. `ok` is true only when no check failed. */
export interface SnpVerdict {
  ok: boolean;
  checks: SnpCheck[];
  /** The failed checks, in order. */
  failed: SnpCheck[];
  report: SnpReport | undefined;
  product: SnpProduct | undefined;
  /** Which key signed (from KEY_INFO). */
  signer: 'VCEK' | 'VLEK' | 'NONE' | undefined;
  vek: AmdCert | undefined;
  at: Date;
}

const leafCache = new Map<string, AmdCert>();
const LEAF_CACHE_MAX = 64;

/** Parse a certificate, memoised by its bytes (a verifier sees the same VCEK over and over). */
function cachedCert(b: Uint8Array, name: string): AmdCert {
  const k = `${name}:${sha256Hex(b)}`;
  const hit = leafCache.get(k);
  if (hit) return hit;
  const c = parseAmdCert(b, name);
  if (leafCache.size >= LEAF_CACHE_MAX) leafCache.delete(leafCache.keys().next().value!);
  leafCache.set(k, c);
  return c;
}

/** Forget memoised results (parsed VEKs, verified links and, unless `keepRoots`, the parsed built-in roots): the next verification is cold. */
export function clearSnpCaches(opts: { keepRoots?: boolean } = {}): void {
  leafCache.clear();
  clearLinkCache();
  if (!opts.keepRoots) clearBuiltinRootsCache();
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const short = (b: Uint8Array) => (b.length > 12 ? `${hex(b.subarray(0, 8))}…` : hex(b));
const isZero = (b: Uint8Array) => b.every((x) => x === 0);
const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.from(a).equals(Buffer.from(b));

function fwLess(a: FirmwareVersion, min: { major: number; minor: number; build?: number }): boolean {
  if (a.major !== min.major) return a.major < min.major;
  if (a.minor !== min.minor) return a.minor < min.minor;
  return min.build !== undefined && a.build < min.build;
}

/** Throw SnpPolicyError for values of the wrong size, so a typo is not a silent "never matches". */
export function checkPolicy(p: SnpPolicy): void {
  const len = (v: Uint8Array | undefined, n: number, f: string, upTo = false) => {
    if (v !== undefined && (upTo ? v.length > n : v.length !== n)) throw new SnpPolicyError(f, `must be ${upTo ? 'at most ' : ''}${n} bytes, got ${v.length}`);
  };
  for (const m of p.measurements ?? []) len(m, 48, 'measurement');
  len(p.reportData, 64, 'reportData', true);
  len(p.hostData, 32, 'hostData');
  len(p.familyId, 16, 'familyId');
  len(p.imageId, 16, 'imageId');
  for (const d of p.idKeyDigests ?? []) len(d, 48, 'idKeyDigest');
  for (const d of p.authorKeyDigests ?? []) len(d, 48, 'authorKeyDigest');
  for (const c of p.chipIds ?? []) if (c.length !== 64 && c.length !== 8) throw new SnpPolicyError('chipId', `must be 64 or 8 bytes, got ${c.length}`);
  if (p.versions && (p.versions.min > p.versions.max || p.versions.min < 0))
    throw new SnpPolicyError('versions', `empty range ${p.versions.min}..${p.versions.max}`);
  if (p.vmpl !== undefined && (!Number.isInteger(p.vmpl) || p.vmpl < 0 || p.vmpl > 3)) throw new SnpPolicyError('vmpl', `must be 0..3, got ${p.vmpl}`);
}

/**
 * Verify a report. Never throws for anything about the report or certificates
 * (those are failed checks); throws SnpPolicyError for a malformed policy.
 */
export function verifySnpReport(input: SnpVerifyInput): SnpVerdict {
  const policy = input.policy ?? {};
  checkPolicy(policy);
  const at = input.at ?? new Date();
  const checks: SnpCheck[] = [];
  const add = (step: number, id: string, outcome: CheckOutcome, detail: string) => checks.push({ step, id, outcome, detail });
  const verdict = (report: SnpReport | undefined, product: SnpProduct | undefined, vek: AmdCert | undefined): SnpVerdict => {
    const failed = checks.filter((c) => c.outcome === 'fail');
    return { ok: failed.length === 0, checks, failed, report, product, signer: report?.keyInfo.signingKey, vek, at };
  };

  // A parse failure of a supplied certificate is a failed check, never an exception.
  const certOrError = (v: Uint8Array | AmdCert | undefined, name: string): AmdCert | string | undefined => {
    if (v === undefined) return undefined;
    if (!(v instanceof Uint8Array)) return v;
    try {
      return cachedCert(v, name);
    } catch (e) {
      return e instanceof SnpError ? e.message : String(e);
    }
  };
  const vekIn = certOrError(input.vek, 'VEK');
  const vekParsed = typeof vekIn === 'object' ? vekIn : undefined;

  // Step 1: format. The TCB layout of a v2 report comes from the product the caller names (or the VEK issuer).
  const bytes = input.report;
  const issuerProduct = vekParsed ? productOfIssuer(vekParsed.issuerCn) : undefined;
  let report: SnpReport;
  try {
    const fallbackProduct = input.product ?? issuerProduct;
    report = parseReport(bytes, fallbackProduct ? { layout: tcbLayoutOf(fallbackProduct) } : {});
  } catch (e) {
    add(1, 'report-format', 'fail', e instanceof ReportFormatError ? e.message : String(e));
    return verdict(undefined, undefined, vekParsed);
  }
  add(
    1,
    'report-format',
    'pass',
    `${bytes.length} bytes, version ${report.version}, reserved bytes zero, policy 0x${encodeGuestPolicy(report.policy).toString(16)}`,
  );
  const vr = policy.versions ?? { min: 2, max: 5 };
  add(1, 'report-version', report.version >= vr.min && report.version <= vr.max ? 'pass' : 'fail', `version ${report.version}, accepted ${vr.min}..${vr.max}`);

  // Step 2: signature algorithm and signing key.
  const ki = report.keyInfo;
  const sigProblems: string[] = [];
  if (report.signatureAlgo !== 1) sigProblems.push(`SIGNATURE_ALGO is ${report.signatureAlgo}, not 1 (ECDSA P-384 SHA-384)`);
  if (ki.signingKey === 'NONE') sigProblems.push('SIGNING_KEY is 7: the report is unsigned');
  if (ki.maskChipKey) sigProblems.push('MASK_CHIP_KEY is set: the report is not signed by the chip');
  if (signatureIsZero(report)) sigProblems.push('the signature is all zero');
  add(
    2,
    'signature-algorithm',
    sigProblems.length ? 'fail' : 'pass',
    sigProblems.length ? sigProblems.join('; ') : `ECDSA P-384 SHA-384, signed by the ${ki.signingKey}`,
  );
  const signer = ki.signingKey === 'VLEK' ? 'VLEK' : 'VCEK';

  // Step 3: product (CPUID for v3+, else the caller's, else the VEK issuer's).
  let product: SnpProduct | undefined;
  const cpuidProduct = reportProduct(report);
  if (report.cpuid !== undefined) {
    const { family, model, stepping } = report.cpuid;
    const cp = `CPUID family 0x${family.toString(16)} model 0x${model.toString(16)} stepping ${stepping}`;
    if (cpuidProduct === undefined) add(3, 'product', 'fail', `${cp} is no product with AMD roots (Milan, Genoa incl. Siena/Bergamo, Turin)`);
    else if (input.product !== undefined && input.product !== cpuidProduct)
      add(3, 'product', 'fail', `${cp} is ${cpuidProduct}, but ${input.product} was given`);
    else if (policy.product !== undefined && policy.product !== cpuidProduct)
      add(3, 'product', 'fail', `${cp} is ${cpuidProduct}, the policy requires ${policy.product}`);
    else {
      product = cpuidProduct;
      add(3, 'product', 'pass', `${product} (${cp})`);
    }
  } else {
    const p = input.product ?? issuerProduct;
    const from = input.product !== undefined ? 'given' : 'from the VEK issuer';
    if (p === undefined) add(3, 'product', 'fail', `a version ${report.version} report carries no CPUID: give the product (Milan, Genoa, Turin)`);
    else if (policy.product !== undefined && policy.product !== p) add(3, 'product', 'fail', `${p} (${from}), the policy requires ${policy.product}`);
    else {
      product = p;
      add(3, 'product', 'pass', `${p} (${from}; a v${report.version} report has no CPUID)`);
    }
  }

  // Step 4: TCB layout.
  const layout = report.reportedTcb.layout;
  if (product !== undefined && tcbLayoutOf(product) !== layout)
    add(4, 'tcb-layout', 'fail', `the TCBs were read as ${layout} but ${product} uses the ${tcbLayoutOf(product)} layout`);
  else add(4, 'tcb-layout', 'pass', `${layout === 'turin' ? 'Turin (FMC in byte 0)' : 'Milan/Genoa'} layout; reported ${formatTcb(report.reportedTcb)}`);

  // Step 5: ARK.
  let roots: ProductRoots | undefined;
  let ark: AmdCert | undefined;
  if (product === undefined) add(5, 'ark', 'skip', 'no product, so no root to pin');
  else {
    try {
      roots = (input.roots ?? builtinRoots)(product);
    } catch (e) {
      add(5, 'ark', 'fail', e instanceof SnpError ? e.message : String(e));
    }
    if (roots) {
      const suppliedArk = certOrError(input.ark, 'supplied ARK');
      const self = linkFailure(roots.ark, roots.ark);
      if (typeof suppliedArk === 'string') add(5, 'ark', 'fail', suppliedArk);
      else if (suppliedArk && !suppliedArk.der.equals(roots.ark.der))
        add(5, 'ark', 'fail', `the supplied ARK (${suppliedArk.subjectCn}) is not the pinned ${roots.ark.subjectCn}`);
      else if (self) add(5, 'ark', 'fail', `pinned ARK: ${self}`);
      else {
        ark = roots.ark;
        add(5, 'ark', 'pass', `${ark.subjectCn} (sha256 ${sha256Hex(ark.der).slice(0, 16)}…)${suppliedArk ? ', the supplied ARK equals it' : ''}`);
      }
    }
  }

  // Step 6: intermediate (ASK for a VCEK, ASVK for a VLEK).
  let inter: AmdCert | undefined;
  const interName = signer === 'VLEK' ? 'ASVK' : 'ASK';
  if (!ark || !roots) add(6, 'intermediate', 'skip', 'no trusted ARK');
  else {
    const supplied = certOrError(input.intermediate, `supplied ${interName}`);
    const want = signer === 'VLEK' ? roots.asvk : roots.ask;
    const cand = typeof supplied === 'object' ? supplied : want;
    const why =
      typeof supplied === 'string'
        ? supplied
        : cand.subjectCn !== want.subjectCn
          ? `the supplied intermediate is ${cand.subjectCn}, a ${signer} needs ${want.subjectCn}`
          : linkFailure(cand, ark);
    if (why) add(6, 'intermediate', 'fail', why);
    else {
      inter = cand;
      add(6, 'intermediate', 'pass', `${inter.subjectCn} signed by ${ark.subjectCn} (RSA-PSS SHA-384)${supplied ? ', supplied' : ', built-in'}`);
    }
  }

  // Step 7: leaf source.
  if (typeof vekIn === 'string') add(7, 'vek-source', 'fail', vekIn);
  else if (!vekIn) add(7, 'vek-source', 'fail', `no ${signer} certificate: give one (a file, a certificate directory or table) or fetch it from KDS`);
  else add(7, 'vek-source', 'pass', `${vekIn.subjectCn} from ${input.vekSource ?? 'the caller'}`);
  const vek = vekParsed;

  // Step 8: leaf structure and signature.
  let vekTrusted = false;
  if (!vek) add(8, 'vek', 'skip', 'no VEK');
  else {
    const problems: string[] = [];
    const cnWant = signer === 'VLEK' ? 'SEV-VLEK' : 'SEV-VCEK';
    if (vek.version !== 3) problems.push(`X.509 version ${vek.version}, not 3`);
    if (vek.subjectCn !== cnWant) problems.push(`CN is ${vek.subjectCn || '(none)'}, SIGNING_KEY says ${cnWant}`);
    if (vek.publicKey.asymmetricKeyType !== 'ec' || vek.publicKey.asymmetricKeyDetails?.namedCurve !== 'secp384r1')
      problems.push(`the key is not ECDSA P-384 (${vek.publicKey.asymmetricKeyType ?? '?'} ${vek.publicKey.asymmetricKeyDetails?.namedCurve ?? ''})`.trim());
    if (!inter) {
      add(8, 'vek', problems.length ? 'fail' : 'skip', problems.length ? problems.join('; ') : 'no trusted intermediate to check the signature with');
    } else {
      const link = linkFailure(vek, inter);
      if (link) problems.push(link);
      if (problems.length) add(8, 'vek', 'fail', problems.join('; '));
      else {
        vekTrusted = true;
        add(8, 'vek', 'pass', `${vek.subjectCn} (P-384) signed by ${inter.subjectCn}`);
      }
    }
  }

  // Step 9: validity at `at`.
  const chainCerts = [ark, inter, vek].filter((c): c is AmdCert => c !== undefined);
  if (chainCerts.length === 0) add(9, 'validity', 'skip', 'no certificates');
  else {
    const bad = chainCerts.map((c) => validityFailure(c, at)).filter((x): x is string => x !== undefined);
    add(
      9,
      'validity',
      bad.length ? 'fail' : 'pass',
      bad.length ? bad.join('; ') : `${chainCerts.map((c) => c.subjectCn).join(', ')} valid at ${at.toISOString()}`,
    );
  }

  // Step 10: CRL.
  if (input.crl === undefined)
    add(
      10,
      'crl',
      policy.requireCrl ? 'fail' : 'skip',
      policy.requireCrl ? 'the policy requires a CRL and none was given' : 'no CRL given: revocation not checked',
    );
  else if (!ark || !inter) add(10, 'crl', 'skip', 'no trusted ARK and intermediate');
  else {
    let crl: AmdCrl | undefined;
    let why: string | undefined;
    try {
      crl = input.crl instanceof Uint8Array ? parseCrl(input.crl) : input.crl;
    } catch (e) {
      why = e instanceof SnpError ? e.message : String(e);
    }
    why ??= crlFailure(crl!, ark, [inter], at);
    add(10, 'crl', why ? 'fail' : 'pass', why ?? `CRL signed by ${ark.subjectCn}, ${inter.subjectCn} not revoked`);
  }

  // Step 11: AMD extensions against REPORTED_TCB.
  if (!vek) add(11, 'tcb-binding', 'skip', 'no VEK');
  else {
    const a = vek.amd;
    const rt = report.reportedTcb;
    const problems: string[] = [];
    const pairs: [string, number | undefined, number][] = [
      ['blSPL', a.blSPL, rt.bootloader],
      ['teeSPL', a.teeSPL, rt.tee],
      ['snpSPL', a.snpSPL, rt.snp],
      ['ucodeSPL', a.ucodeSPL, rt.microcode],
    ];
    if (layout === 'turin') pairs.unshift(['fmcSPL', a.fmcSPL, rt.fmc ?? 0]);
    for (const [n, certV, repV] of pairs) {
      if (certV === undefined) problems.push(`${n} extension missing`);
      else if (certV !== repV) problems.push(`${n} ${certV} ≠ REPORTED ${repV}`);
    }
    for (const [n, v] of Object.entries(a.reservedSPLs)) if (v !== 0) problems.push(`reserved ${n} is ${v}, not 0`);
    const pn = a.productName;
    if (pn === undefined) problems.push('productName extension missing');
    else if (product !== undefined && productFromProductName(pn) !== product) problems.push(`productName ${pn} is not ${product}`);
    add(
      11,
      'tcb-binding',
      problems.length ? 'fail' : 'pass',
      problems.length ? problems.join('; ') : `${vek.subjectCn} SPLs equal REPORTED_TCB (${formatTcb(rt)}), productName ${pn}`,
    );
  }

  // Step 12: CHIP_ID ↔ hwID (VCEK) or csp_id (VLEK); chip allow list.
  const chip = report.chipId;
  const hwLen = product !== undefined ? hwidLength(product) : layout === 'turin' ? 8 : 64;
  if (!vek) add(12, 'chip-id', 'skip', 'no VEK');
  else if (signer === 'VLEK') {
    const problems: string[] = [];
    if (vek.amd.cspId === undefined) problems.push('VLEK without csp_id');
    if (vek.amd.hwID !== undefined) problems.push('VLEK with a hwID');
    add(
      12,
      'chip-id',
      problems.length ? 'fail' : 'pass',
      problems.length ? problems.join('; ') : `VLEK of ${vek.amd.cspId}: no chip binding (CHIP_ID ${isZero(chip) ? 'zero' : short(chip)})`,
    );
  } else if (isZero(chip)) {
    add(
      12,
      'chip-id',
      policy.allowMaskedChipId ? 'skip' : 'fail',
      policy.allowMaskedChipId
        ? 'CHIP_ID is masked (all zero): the report is NOT bound to this VCEK’s chip (allowed by the policy)'
        : 'CHIP_ID is masked (all zero), so the report cannot be bound to the VCEK; allow masked chip ids to accept it',
    );
  } else {
    const hw = vek.amd.hwID;
    const problems: string[] = [];
    if (hw === undefined) problems.push('VCEK without a hwID extension');
    else {
      if (hw.length !== hwLen) problems.push(`hwID is ${hw.length} bytes, ${product ?? layout} uses ${hwLen}`);
      if (!eq(chip.subarray(0, hw.length), hw)) problems.push(`CHIP_ID ${short(chip)} ≠ hwID ${short(hw)}`);
      if (!isZero(chip.subarray(hw.length))) problems.push(`CHIP_ID bytes ${hw.length}..63 are not zero`);
    }
    add(
      12,
      'chip-id',
      problems.length ? 'fail' : 'pass',
      problems.length ? problems.join('; ') : `CHIP_ID equals the VCEK hwID (${hw!.length} bytes, ${short(hw!)})`,
    );
  }
  if (!policy.chipIds) add(12, 'chip-id-allowed', 'skip', 'no chip id allow list');
  else {
    const hit = policy.chipIds.some((c) => eq(chip.subarray(0, c.length), c) && isZero(chip.subarray(c.length)));
    add(12, 'chip-id-allowed', hit ? 'pass' : 'fail', `CHIP_ID ${short(chip)} ${hit ? 'is' : 'is not'} on the allow list (${policy.chipIds.length})`);
  }

  // Step 13: the report signature.
  if (!vek) add(13, 'report-signature', 'skip', 'no VEK');
  else {
    let ok = false;
    try {
      ok = cryptoVerify('sha384', signedRegion(bytes), { key: vek.publicKey, dsaEncoding: 'ieee-p1363' }, signatureP1363(report));
    } catch {
      ok = false;
    }
    const trust = vekTrusted ? '' : ' (but the VEK itself is not trusted)';
    add(
      13,
      'report-signature',
      ok ? 'pass' : 'fail',
      ok ? `ECDSA P-384 over 0x000–0x29F verifies with the ${vek.subjectCn}${trust}` : `the signature does not verify with this ${vek.subjectCn}`,
    );
  }

  // Step 14: REPORT_DATA.
  if (policy.reportData !== undefined) {
    const want = Buffer.alloc(64);
    want.set(policy.reportData);
    add(
      14,
      'report-data',
      eq(report.reportData, want) ? 'pass' : 'fail',
      `REPORT_DATA ${short(report.reportData)} ${eq(report.reportData, want) ? '=' : '≠'} expected ${short(want)}`,
    );
  } else if (policy.reportDataBoundTo !== undefined) {
    const want = createHash('sha512').update(policy.reportDataBoundTo).digest();
    add(
      14,
      'report-data',
      eq(report.reportData, want) ? 'pass' : 'fail',
      `REPORT_DATA ${eq(report.reportData, want) ? '=' : '≠'} SHA-512 of the bound value (${short(want)})`,
    );
  } else add(14, 'report-data', 'skip', 'no expected REPORT_DATA: freshness not checked');

  // Step 15: measurement and identity.
  if (policy.measurements?.length) {
    const hit = policy.measurements.some((m) => eq(m, report.measurement));
    add(
      15,
      'measurement',
      hit ? 'pass' : 'fail',
      `MEASUREMENT ${hex(report.measurement)} ${hit ? 'is' : 'is not'} ${policy.measurements.length === 1 ? 'the expected one' : `one of the ${policy.measurements.length} expected`}`,
    );
  } else add(15, 'measurement', 'skip', `no expected measurement (MEASUREMENT ${hex(report.measurement)})`);
  const exact = (id: string, want: Uint8Array | undefined, got: Buffer, name: string) => {
    if (want === undefined) add(15, id, 'skip', `${name} not required by the policy`);
    else add(15, id, eq(want, got) ? 'pass' : 'fail', `${name} ${short(got)} ${eq(want, got) ? '=' : '≠'} expected ${short(want)}`);
  };
  exact('host-data', policy.hostData, report.hostData, 'HOST_DATA');
  exact('family-id', policy.familyId, report.familyId, 'FAMILY_ID');
  exact('image-id', policy.imageId, report.imageId, 'IMAGE_ID');
  const oneOf = (id: string, list: Uint8Array[] | undefined, got: Buffer, name: string, extra?: string) => {
    if (!list) add(15, id, 'skip', `${name} not required by the policy`);
    else {
      const hit = list.some((d) => eq(d, got));
      const ok = hit && extra === undefined;
      add(15, id, ok ? 'pass' : 'fail', `${name} ${short(got)} ${hit ? 'is' : 'is not'} trusted${extra ? `; ${extra}` : ''}`);
    }
  };
  oneOf('id-key-digest', policy.idKeyDigests, report.idKeyDigest, 'ID_KEY_DIGEST');
  oneOf('author-key-digest', policy.authorKeyDigests, report.authorKeyDigest, 'AUTHOR_KEY_DIGEST', ki.authorKeyEn ? undefined : 'AUTHOR_KEY_EN is not set');
  if (policy.minGuestSvn === undefined) add(15, 'guest-svn', 'skip', `GUEST_SVN ${report.guestSvn}, no minimum`);
  else add(15, 'guest-svn', report.guestSvn >= policy.minGuestSvn ? 'pass' : 'fail', `GUEST_SVN ${report.guestSvn}, minimum ${policy.minGuestSvn}`);

  // Step 16: VMPL.
  const wantVmpl = policy.vmpl ?? 0;
  add(
    16,
    'vmpl',
    report.vmpl === wantVmpl ? 'pass' : 'fail',
    report.vmpl === 0xffffffff ? 'VMPL 0xFFFFFFFF: a host-requested report, not guest evidence' : `VMPL ${report.vmpl}, required ${wantVmpl}`,
  );

  // Step 17: guest policy.
  {
    const gp = report.policy;
    const problems: string[] = [];
    if (gp.debug && !policy.allowDebug) problems.push('DEBUG is allowed (the host can read guest memory)');
    if (gp.migrateMa && !policy.allowMigrateMa) problems.push('MIGRATE_MA is allowed');
    if (gp.smt && policy.allowSmt === false) problems.push('SMT is allowed');
    if (gp.cxlAllow && policy.allowCxl === false) problems.push('CXL_ALLOW is set');
    const ma = policy.minAbi;
    if (ma && (gp.abiMajor < ma.major || (gp.abiMajor === ma.major && gp.abiMinor < ma.minor)))
      problems.push(`ABI ${gp.abiMajor}.${gp.abiMinor} < ${ma.major}.${ma.minor}`);
    const flags = setFlags(gp);
    add(
      17,
      'guest-policy',
      problems.length ? 'fail' : 'pass',
      `${problems.length ? `${problems.join('; ')}; ` : ''}policy ABI ${gp.abiMajor}.${gp.abiMinor}, flags ${flags.length ? flags.join(', ') : 'none'}`,
    );
  }

  // Step 18: TCB policy.
  {
    const below = (t: TcbVersion, m: Partial<Record<TcbComponent, number>>) => tcbBelow(t, m).map((c) => `${c} ${t[c] ?? 0} < ${m[c]}`);
    if (!policy.minTcb) add(18, 'min-tcb', 'skip', `no minimum TCB (reported ${formatTcb(report.reportedTcb)})`);
    else {
      const unknown = Object.keys(policy.minTcb).filter((k) => !tcbComponents(layout).includes(k as TcbComponent));
      const bad = [
        ...below(report.reportedTcb, policy.minTcb).map((x) => `REPORTED ${x}`),
        ...below(report.currentTcb, policy.minTcb).map((x) => `CURRENT ${x}`),
        ...unknown.map((k) => `${k} does not exist in the ${layout} layout`),
      ];
      add(18, 'min-tcb', bad.length ? 'fail' : 'pass', bad.length ? bad.join('; ') : `REPORTED ${formatTcb(report.reportedTcb)} and CURRENT meet the minimum`);
    }
    const curOk = tcbLessOrEqual(report.reportedTcb, report.currentTcb);
    add(
      18,
      'current-tcb',
      curOk ? 'pass' : 'fail',
      `CURRENT ${formatTcb(report.currentTcb)} ${curOk ? '≥' : 'is not ≥'} REPORTED ${formatTcb(report.reportedTcb)}`,
    );
    const cEq =
      tcbComponents(layout).every((c) => (report.committedTcb[c] ?? 0) === (report.currentTcb[c] ?? 0)) &&
      formatFirmwareVersion(report.committedVersion) === formatFirmwareVersion(report.currentVersion);
    const cLe = tcbLessOrEqual(report.committedTcb, report.currentTcb) && !fwLess(report.currentVersion, { ...report.committedVersion });
    const cDetail = `COMMITTED ${formatTcb(report.committedTcb)} fw ${formatFirmwareVersion(report.committedVersion)}, CURRENT ${formatTcb(report.currentTcb)} fw ${formatFirmwareVersion(report.currentVersion)}`;
    if (cEq) add(18, 'committed-tcb', 'pass', `${cDetail}: committed`);
    else if (policy.allowProvisional && cLe) add(18, 'committed-tcb', 'pass', `${cDetail}: provisional firmware, allowed by the policy`);
    else
      add(18, 'committed-tcb', 'fail', `${cDetail}: ${cLe ? 'provisional firmware (not committed) is refused unless allowed' : 'COMMITTED is above CURRENT'}`);
    if (!policy.minLaunchTcb) add(18, 'launch-tcb', 'skip', `no minimum launch TCB (launch ${formatTcb(report.launchTcb)})`);
    else {
      const bad = below(report.launchTcb, policy.minLaunchTcb);
      add(18, 'launch-tcb', bad.length ? 'fail' : 'pass', bad.length ? `LAUNCH ${bad.join('; ')}` : `LAUNCH ${formatTcb(report.launchTcb)} meets the minimum`);
    }
    const fwv = formatFirmwareVersion(report.currentVersion);
    if (!policy.minFirmware) add(18, 'firmware-version', 'skip', `no minimum firmware (CURRENT ${fwv})`);
    else {
      const m = policy.minFirmware;
      const low = fwLess(report.currentVersion, m);
      add(
        18,
        'firmware-version',
        low ? 'fail' : 'pass',
        `CURRENT ${fwv} ${low ? '<' : '≥'} ${m.major}.${m.minor}${m.build !== undefined ? `.${m.build}` : ''}`,
      );
    }
  }

  // Step 19: PLATFORM_INFO and mitigation vectors.
  {
    const pi = report.platformInfo;
    const problems: string[] = [];
    for (const f of policy.platformRequired ?? []) if (!pi[f]) problems.push(`${f} is required`);
    for (const f of policy.platformForbidden ?? []) if (pi[f]) problems.push(`${f} is not allowed`);
    const notes = pi.unknownBits ? `; unknown bits 0x${pi.unknownBits.toString(16)} (reported, not fatal)` : '';
    add(
      19,
      'platform-info',
      problems.length ? 'fail' : 'pass',
      `${problems.length ? `${problems.join('; ')}; ` : ''}PLATFORM_INFO 0x${encodePlatformInfo(pi).toString(16)} (${setFlags(pi).join(', ') || 'none'})${notes}`,
    );
    const req = policy.requiredMitigations;
    if (req === undefined)
      add(
        19,
        'mitigations',
        'skip',
        report.version >= 5 ? `no required mitigations (current 0x${(report.currentMitVector ?? 0n).toString(16)})` : 'no required mitigations',
      );
    else if (report.version < 5)
      add(19, 'mitigations', 'fail', `version ${report.version} reports carry no mitigation vectors; required 0x${req.toString(16)}`);
    else {
      const miss = (v: bigint | undefined) => req & ~(v ?? 0n);
      const ml = miss(report.launchMitVector);
      const mc = miss(report.currentMitVector);
      add(
        19,
        'mitigations',
        ml || mc ? 'fail' : 'pass',
        `LAUNCH 0x${(report.launchMitVector ?? 0n).toString(16)}, CURRENT 0x${(report.currentMitVector ?? 0n).toString(16)}, required 0x${req.toString(16)}${ml || mc ? ` (missing 0x${(ml | mc).toString(16)})` : ''}`,
      );
    }
  }
  return verdict(report, product, vek);
}

/** The JSON form of a verdict: the parsed fields operators ask for, then every check. */
export function verdictJson(v: SnpVerdict): Record<string, unknown> {
  const r = v.report;
  return {
    valid: v.ok,
    at: v.at.toISOString(),
    ...(r
      ? {
          version: r.version,
          product: v.product ?? null,
          signer: r.keyInfo.signingKey,
          policy: { raw: `0x${encodeGuestPolicy(r.policy).toString(16)}`, abi: `${r.policy.abiMajor}.${r.policy.abiMinor}`, flags: setFlags(r.policy) },
          vmpl: r.vmpl,
          measurement: hex(r.measurement),
          reportData: hex(r.reportData),
          hostData: hex(r.hostData),
          reportedTcb: tcbJson(r.reportedTcb),
          currentTcb: tcbJson(r.currentTcb),
          committedTcb: tcbJson(r.committedTcb),
          launchTcb: tcbJson(r.launchTcb),
          firmware: formatFirmwareVersion(r.currentVersion),
          chipId: hex(r.chipId),
          platformInfo: { raw: `0x${encodePlatformInfo(r.platformInfo).toString(16)}`, flags: setFlags(r.platformInfo) },
        }
      : {}),
    checks: v.checks,
    failed: v.failed.map((c) => c.id),
  };
}
