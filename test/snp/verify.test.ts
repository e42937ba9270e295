import { describe, expect, it } from 'vitest';
import { amdSignatureFailure, linkFailure } from '../../lib/snp/chain.js';
import { SnpPolicyError } from '../../lib/snp/errors.js';
import { encodeReport, parseReport } from '../../lib/snp/report.js';
import { builtinRoots, productOfIssuer, ROOT_SHA256 } from '../../lib/snp/roots.js';
import { makeTcb } from '../../lib/snp/tcb.js';
import { verdictJson, verifySnpReport } from '../../lib/snp/verify.js';
import type { SnpPolicy, SnpVerdict } from '../../lib/snp/verify.js';
import { parseAmdCert } from '../../lib/snp/x509.js';
import { realVectors, snpFile, validTime } from './vectors.js';
import type { RealVector } from './vectors.js';

const vectors = realVectors();
const byName = (n: string): RealVector => vectors.find((v) => v.name === n)!;
/** What each vector legitimately needs beyond the strict defaults (known answers: debug on gsg, provisional firmware, VMPL 1). */
function lenient(v: RealVector): SnpPolicy {
  return { allowDebug: true, allowProvisional: true, vmpl: v.known.parsed.vmpl };
}
const outcome = (v: SnpVerdict, id: string) => v.checks.find((c) => c.id === id)?.outcome;
const failedIds = (v: SnpVerdict) => v.failed.map((c) => c.id);

describe('every real report verifies to the built-in AMD roots', () => {
  for (const v of vectors) {
    it(`${v.name}`, () => {
      const r = verifySnpReport({
        report: v.report,
        vek: v.vek,
        at: validTime(v),
        policy: { ...lenient(v), measurements: [Buffer.from(v.known.measurement, 'hex')] },
      });
      expect(failedIds(r)).toEqual([]);
      expect(r.ok).toBe(true);
      expect(r.product).toBe(v.known.kds_product);
      for (const id of ['ark', 'intermediate', 'vek', 'validity', 'tcb-binding', 'chip-id', 'report-signature', 'measurement'])
        expect(outcome(r, id)).toBe('pass');
      // The checks come in the spec's order.
      const steps = r.checks.map((c) => c.step);
      expect([...steps].sort((a, b) => a - b)).toEqual(steps);
      const j = verdictJson(r);
      expect(j.measurement).toBe(v.known.measurement);
      expect((j.reportedTcb as { raw: string }).raw).toBe(v.known.parsed.reported_tcb.raw);
      expect(j.chipId).toBe(v.known.chip_id);
      expect(j.product).toBe(v.known.kds_product);
    });

    it(`${v.name}: fails after one flipped byte (REPORT_DATA[0] and MEASUREMENT[47])`, () => {
      for (const off of [0x50, 0x90 + 47]) {
        const b = Buffer.from(v.report);
        b[off]! ^= 1;
        const r = verifySnpReport({ report: b, vek: v.vek, at: validTime(v), policy: lenient(v) });
        expect(r.ok).toBe(false);
        expect(failedIds(r)).toEqual(['report-signature']);
      }
    });

    it(`${v.name}: fails with the wrong product's roots`, () => {
      for (const other of (['Milan', 'Genoa', 'Turin'] as const).filter((p) => p !== v.known.kds_product)) {
        const r = verifySnpReport({ report: v.report, vek: v.vek, at: validTime(v), policy: lenient(v), roots: () => builtinRoots(other) });
        expect(r.ok).toBe(false);
        expect(outcome(r, 'vek')).toBe('fail');
      }
    });
  }
});

describe('the strict defaults refuse what the vectors really have', () => {
  it('debug, provisional firmware and VMPL 1 are refused by default, and nothing else', () => {
    const at = (v: RealVector) => ({ report: v.report, vek: v.vek, at: validTime(v) });
    const got = Object.fromEntries(vectors.map((v) => [v.name, failedIds(verifySnpReport(at(v)))]));
    expect(got).toEqual({
      virtee_milan_v2: [],
      gsg_milan_v2: ['guest-policy'],
      trustee_milan_v2_reported_lt_current: ['committed-tcb'],
      trustee_aws_milan_v3_vlek_vmpl1: ['vmpl', 'committed-tcb'],
      constellation_azure_milan_v2: [],
      constellation_aws_milan_v3_vlek: ['committed-tcb'],
      azure_milan_v2_hcl: ['committed-tcb'],
      azure_milan_v3_hcl: [],
      oak_milan_v3: [],
      azure_genoa_v3_hcl: [],
    });
  });
  it('the AWS VLEKs are expired at 2026-12-06', () => {
    const v = byName('constellation_aws_milan_v3_vlek');
    const r = verifySnpReport({ report: v.report, vek: v.vek, at: new Date('2026-12-06T00:00:00Z'), policy: lenient(v) });
    expect(failedIds(r)).toEqual(['validity']);
    expect(r.failed[0]!.detail).toMatch(/SEV-VLEK\) expired 2025-12-10/);
  });
});

describe('foreign and malformed certificates', () => {
  it("another chip's VCEK: signature and chip id both fail", () => {
    const v = byName('virtee_milan_v2');
    const other = byName('oak_milan_v3');
    const r = verifySnpReport({ report: v.report, vek: other.vek, at: validTime(v), policy: lenient(v) });
    expect(failedIds(r)).toEqual(expect.arrayContaining(['tcb-binding', 'chip-id', 'report-signature']));
  });
  it('the Milan report with the Turin VCEK fails (known negative)', () => {
    const v = byName('oak_milan_v3');
    const r = verifySnpReport({ report: v.report, vek: snpFile('virtee-sev/tests/certs_data/vcek_turin.der'), at: validTime(v) });
    expect(outcome(r, 'report-signature')).toBe('fail');
    expect(outcome(r, 'vek')).toBe('fail'); // issued by SEV-Turin, not SEV-Milan
  });
  it("trustee's synthetic VCEKs do not verify under the Milan ASK; their raw and wrapped hwIDs both parse", () => {
    const want = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
    for (const f of ['test-vcek-invalid-legacy.der', 'test-vcek-invalid-new.der']) {
      const c = parseAmdCert(snpFile(`confidential-containers-trustee/deps/verifier/test_data/snp/${f}`), f);
      expect(c.amd.hwID).toEqual(want);
      expect(linkFailure(c, builtinRoots('Milan').ask)).toMatch(/does not verify/);
    }
  });
  it('the Milan VCEK under the Turin ASK fails; the Turin VCEK under the Turin ASK verifies', () => {
    const milan = parseAmdCert(snpFile('virtee-sev/tests/certs_data/vcek_milan.der'), 'VCEK');
    expect(linkFailure(milan, builtinRoots('Turin').ask)).toMatch(/names issuer SEV-Milan/);
    expect(amdSignatureFailure(milan, builtinRoots('Turin').ask)).toMatch(/does not verify/);
    const turin = parseAmdCert(snpFile('virtee-sev/tests/certs_data/vcek_turin.der'), 'VCEK');
    expect(linkFailure(turin, builtinRoots('Turin').ask)).toBeUndefined();
  });
  it('a VLEK under the ASK fails, under the ASVK verifies', () => {
    const vlek = parseAmdCert(snpFile('confidential-containers-trustee/deps/verifier/test_data/snp/test-vlek.der'), 'VLEK');
    expect(amdSignatureFailure(vlek, builtinRoots('Milan').ask)).toMatch(/does not verify/);
    expect(linkFailure(vlek, builtinRoots('Milan').asvk)).toBeUndefined();
  });
  it('a VLEK passed for a VCEK-signed report is refused by its CN (the chain kind follows SIGNING_KEY)', () => {
    const v = byName('virtee_milan_v2');
    const r = verifySnpReport({
      report: v.report,
      vek: snpFile('confidential-containers-trustee/deps/verifier/test_data/snp/test-vlek.der'),
      at: new Date('2025-06-01T00:00:00Z'),
    });
    const vek = r.checks.find((c) => c.id === 'vek')!;
    expect(vek.outcome).toBe('fail');
    expect(vek.detail).toMatch(/CN is SEV-VLEK, SIGNING_KEY says SEV-VCEK/);
  });
  it('a supplied intermediate must be the one the signing key needs, and a supplied ARK the pinned one', () => {
    const v = byName('oak_milan_v3');
    const roots = builtinRoots('Milan');
    const r1 = verifySnpReport({ report: v.report, vek: v.vek, intermediate: roots.asvk.der });
    expect(r1.checks.find((c) => c.id === 'intermediate')!.detail).toMatch(/needs SEV-Milan/);
    const r2 = verifySnpReport({ report: v.report, vek: v.vek, ark: builtinRoots('Genoa').ark.der });
    expect(outcome(r2, 'ark')).toBe('fail');
    const r3 = verifySnpReport({ report: v.report, vek: v.vek, ark: roots.ark.der, intermediate: roots.ask.der });
    expect(r3.ok).toBe(true);
  });
  it('garbage instead of a VCEK is a failed check, not an exception', () => {
    const v = byName('oak_milan_v3');
    const r = verifySnpReport({ report: v.report, vek: Buffer.from('not a certificate') });
    expect(outcome(r, 'vek-source')).toBe('fail');
    expect(r.ok).toBe(false);
  });
  it('a v2 report takes its product from --product or the VEK issuer; a wrong product fails', () => {
    const v = byName('virtee_milan_v2');
    expect(verifySnpReport({ report: v.report, vek: v.vek }).checks.find((c) => c.id === 'product')!.detail).toMatch(/Milan \(from the VEK issuer/);
    const r = verifySnpReport({ report: v.report, vek: v.vek, product: 'Genoa' });
    expect(r.ok).toBe(false);
    expect(outcome(r, 'vek')).toBe('fail');
    expect(verifySnpReport({ report: v.report, product: 'Milan' }).failed.map((c) => c.id)).toEqual(['vek-source']);
    expect(verifySnpReport({ report: v.report }).failed.map((c) => c.id)).toEqual(['product', 'vek-source']);
  });
});

describe('Turin bindings (the real Turin VCEK with a Turin-layout report built from it)', () => {
  // No public Turin report matches this VCEK, so the signature fails; the bindings are what is tested.
  const vcek = snpFile('virtee-sev/tests/certs_data/vcek_turin.der');
  const base = parseReport(byName('oak_milan_v3').report);
  const tcb = makeTcb('turin', { fmc: 0, bootloader: 0, tee: 0, snp: 0, microcode: 9 });
  const chip = Buffer.alloc(64);
  Buffer.from('1e550a8ee5cf9f4d', 'hex').copy(chip);
  const turin = {
    ...base,
    version: 5,
    cpuid: { family: 0x1a, model: 0x02, stepping: 1 },
    reportedTcb: tcb,
    currentTcb: tcb,
    committedTcb: tcb,
    launchTcb: tcb,
    chipId: chip,
    launchMitVector: 0n,
    currentMitVector: 0n,
  };
  it('fmcSPL and the 8-byte hwID bind; the signature (another report) does not', () => {
    const r = verifySnpReport({ report: encodeReport(turin), vek: vcek, at: new Date('2026-12-06T00:00:00Z') });
    expect(r.product).toBe('Turin');
    expect(outcome(r, 'vek')).toBe('pass');
    expect(outcome(r, 'tcb-binding')).toBe('pass');
    expect(outcome(r, 'chip-id')).toBe('pass');
    expect(failedIds(r)).toEqual(['report-signature']);
  });
  it('an fmc mismatch, non-zero CHIP_ID[8..63] and a masked chip id are refused', () => {
    const r1 = verifySnpReport({ report: encodeReport({ ...turin, reportedTcb: { ...tcb, fmc: 1 } }), vek: vcek });
    expect(r1.checks.find((c) => c.id === 'tcb-binding')!.detail).toMatch(/fmcSPL 0 ≠ REPORTED 1/);
    const c2 = Buffer.from(chip);
    c2[9] = 1;
    expect(verifySnpReport({ report: encodeReport({ ...turin, chipId: c2 }), vek: vcek }).checks.find((c) => c.id === 'chip-id')!.detail).toMatch(
      /bytes 8..63 are not zero/,
    );
    const masked = encodeReport({ ...turin, chipId: Buffer.alloc(64) });
    expect(outcome(verifySnpReport({ report: masked, vek: vcek }), 'chip-id')).toBe('fail');
    const allowed = verifySnpReport({ report: masked, vek: vcek, policy: { allowMaskedChipId: true } }).checks.find((c) => c.id === 'chip-id')!;
    expect(allowed.outcome).toBe('skip');
    expect(allowed.detail).toMatch(/NOT bound/);
  });
});

describe('policy checks', () => {
  const v = byName('azure_genoa_v3_hcl');
  const run = (policy: SnpPolicy) => verifySnpReport({ report: v.report, vek: v.vek, at: validTime(v), policy });
  const m = Buffer.from(v.known.measurement, 'hex');
  it('measurement: one of several pinned passes, a pin it does not have fails', () => {
    expect(run({ measurements: [Buffer.alloc(48), m] }).ok).toBe(true);
    expect(failedIds(run({ measurements: [Buffer.alloc(48, 1)] }))).toEqual(['measurement']);
  });
  it('REPORT_DATA exact, zero-padded, and bound by SHA-512', () => {
    const rd = Buffer.from(v.known.report_data, 'hex');
    expect(run({ reportData: rd }).ok).toBe(true);
    expect(failedIds(run({ reportData: rd.subarray(0, 32) }))).toEqual(rd.subarray(32).every((x) => x === 0) ? [] : ['report-data']);
    expect(failedIds(run({ reportDataBoundTo: Buffer.from('nonce') }))).toEqual(['report-data']);
  });
  it('HOST_DATA, ID key digest, author key, FAMILY_ID, IMAGE_ID, guest SVN', () => {
    expect(
      run({
        hostData: Buffer.from(v.known.host_data, 'hex'),
        idKeyDigests: [Buffer.from(v.known.id_key_digest, 'hex')],
        familyId: parseReport(v.report).familyId,
      }).ok,
    ).toBe(true);
    expect(
      failedIds(
        run({
          hostData: Buffer.alloc(32, 1),
          idKeyDigests: [Buffer.alloc(48)],
          authorKeyDigests: [Buffer.alloc(48)],
          imageId: Buffer.alloc(16, 9),
          minGuestSvn: 1 << 30,
        }),
      ),
    ).toEqual(['host-data', 'image-id', 'id-key-digest', 'author-key-digest', 'guest-svn']);
  });
  it('minimum TCB per component, minimum firmware, report versions, product, VMPL, chip allow list', () => {
    const r = parseReport(v.report);
    expect(run({ minTcb: { snp: r.reportedTcb.snp, microcode: r.reportedTcb.microcode }, minFirmware: { major: 1, minor: 55 } }).ok).toBe(true);
    const bad = run({
      minTcb: { snp: r.reportedTcb.snp + 1 },
      minFirmware: { major: 1, minor: 56 },
      versions: { min: 5, max: 5 },
      product: 'Turin',
      vmpl: 2,
      chipIds: [Buffer.alloc(64, 7)],
    });
    expect(failedIds(bad)).toEqual(['report-version', 'product', 'chip-id-allowed', 'vmpl', 'min-tcb', 'firmware-version']);
    expect(run({ chipIds: [r.chipId] }).ok).toBe(true);
    expect(failedIds(run({ minTcb: { fmc: 1 } }))).toEqual(['min-tcb']);
  });
  it('debug refused unless allowed; SMT refused when the policy says so; platform flags', () => {
    const g = byName('gsg_milan_v2');
    expect(failedIds(verifySnpReport({ report: g.report, vek: g.vek }))).toEqual(['guest-policy']);
    expect(verifySnpReport({ report: g.report, vek: g.vek, policy: { allowDebug: true } }).ok).toBe(true);
    expect(failedIds(run({ allowSmt: false }))).toEqual(['guest-policy']);
    expect(failedIds(run({ platformRequired: ['tioEn'], platformForbidden: ['smtEn'] }))).toEqual(['platform-info']);
    expect(failedIds(run({ requiredMitigations: 1n }))).toEqual(['mitigations']);
  });
  it('the CRL is skipped and said, or required', () => {
    expect(run({}).checks.find((c) => c.id === 'crl')!.detail).toMatch(/revocation not checked/);
    expect(failedIds(run({ requireCrl: true }))).toEqual(['crl']);
    expect(failedIds(verifySnpReport({ report: v.report, vek: v.vek, crl: Buffer.from('junk') }))).toEqual(['crl']);
  });
  it('a malformed policy is a typed error', () => {
    expect(() => run({ measurements: [Buffer.alloc(47)] })).toThrow(SnpPolicyError);
    expect(() => run({ vmpl: 4 })).toThrow(SnpPolicyError);
  });
});

describe('built-in roots', () => {
  it('each product has ARK, ASK, ASVK matching the pins and naming the product', () => {
    for (const p of ['Milan', 'Genoa', 'Turin'] as const) {
      const r = builtinRoots(p);
      expect([r.ark.subjectCn, r.ask.subjectCn, r.asvk.subjectCn]).toEqual([`ARK-${p}`, `SEV-${p}`, `SEV-VLEK-${p}`]);
      for (const c of [r.ark, r.ask, r.asvk]) expect(productOfIssuer(c.subjectCn)).toBe(p);
      expect(ROOT_SHA256[p].ark).toHaveLength(64);
    }
  });
});
