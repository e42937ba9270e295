/**
 * SNP report verification benchmark, each next to its primitives measured in the same run:
 *  - hot: reports/s through verifySnpReport with the chain already verified (memoised links and
 *    parsed VCEK), next to ONE ECDSA P-384 verify of the same report with a prepared key
 *    (goal: ≤ 1.2× its time);
 *  - cold: every cache cleared (built-in roots parsed and sha-checked, VCEK parsed, three RSA-PSS
 *    links, the report signature), next to the primitives it is made of (3 × RSA-4096 PSS
 *    SHA-384 + 1 × ECDSA P-384). No public AMD CRL exists (see the vectors' SOURCE.md), so the
 *    cold path is measured without one.
 *
 *   node --import tsx bench/snp-verify.ts [--seconds S]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { opsPerCpuSecond } from './cpu-bench.js';
import { parseReport, signatureP1363, signedRegion } from '../lib/snp/report.js';
import { builtinRoots } from '../lib/snp/roots.js';
import { clearSnpCaches, verifySnpReport } from '../lib/snp/verify.js';
import { parseAmdCert } from '../lib/snp/x509.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const V = (rel: string) => fs.readFileSync(path.join(ROOT, 'test/fixtures/vectors/snp-attestation', rel));

const cases = [
  { name: 'Milan v3 (oak)', report: V('derived/oak_milan_v3_report.bin'), vek: V('derived/oak_milan_vcek.der'), product: 'Milan' as const },
  { name: 'Genoa v3 (azure)', report: V('derived/azure_genoa_v3_report.bin'), vek: V('derived/azure_genoa_vcek.pem'), product: 'Genoa' as const },
];
const at = new Date('2026-12-06T00:00:00Z');
const measurementPin = (r: Buffer) => [Buffer.from(r.subarray(0x90, 0xc0))];

for (const c of cases) {
  const rep = parseReport(c.report);
  const vekCert = parseAmdCert(c.vek, 'VCEK');
  const key = vekCert.publicKey;
  const region = signedRegion(c.report);
  const sig = signatureP1363(rep);
  const policy = { measurements: measurementPin(c.report) };
  const ecdsa = () => {
    if (!crypto.verify('sha384', region, { key, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('ecdsa failed');
  };
  const hot = () => {
    if (!verifySnpReport({ report: c.report, vek: c.vek, at, policy }).ok) throw new Error('verify failed');
  };
  const hotParsed = () => {
    if (!verifySnpReport({ report: c.report, vek: vekCert, at, policy }).ok) throw new Error('verify failed');
  };
  const cold = () => {
    clearSnpCaches();
    if (!verifySnpReport({ report: c.report, vek: c.vek, at, policy }).ok) throw new Error('verify failed');
  };
  const coldLeaf = () => {
    clearSnpCaches({ keepRoots: true });
    if (!verifySnpReport({ report: c.report, vek: c.vek, at, policy }).ok) throw new Error('verify failed');
  };
  const roots = builtinRoots(c.product);
  const pss = (child: { tbs: Buffer; signature: Buffer }, issuer: crypto.KeyObject) =>
    crypto.verify('sha384', child.tbs, { key: issuer, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, child.signature);
  const primitives = () => {
    const ok =
      pss(roots.ark, roots.ark.publicKey) &&
      pss(roots.ask, roots.ark.publicKey) &&
      pss(vekCert, roots.ask.publicKey) &&
      crypto.verify('sha384', region, { key, dsaEncoding: 'ieee-p1363' }, sig);
    if (!ok) throw new Error('primitives failed');
  };
  // The machine is shared: measure the hot pair interleaved in rounds and keep each one's best round.
  const rounds = 5;
  let e = 0;
  let h = 0;
  let hp = 0;
  for (let i = 0; i < rounds; i++) {
    e = Math.max(e, opsPerCpuSecond(ecdsa, SECONDS / rounds));
    h = Math.max(h, opsPerCpuSecond(hot, SECONDS / rounds));
    hp = Math.max(hp, opsPerCpuSecond(hotParsed, SECONDS / rounds));
  }
  const p = opsPerCpuSecond(primitives, SECONDS);
  const k = opsPerCpuSecond(cold, SECONDS);
  const kl = opsPerCpuSecond(coldLeaf, SECONDS);
  const vekParse = opsPerCpuSecond(() => parseAmdCert(c.vek, 'VCEK'), SECONDS);
  clearSnpCaches();
  console.log(`${c.name}:`);
  console.log(`  primitive: 1 × ECDSA P-384 verify               ${e.toFixed(0).padStart(8)} ops/s`);
  console.log(
    `  verify, cached chain, VCEK as bytes             ${h.toFixed(0).padStart(8)} reports/s   ratio ${(e / h).toFixed(2)}x ECDSA time (goal ≤ 1.2x)`,
  );
  console.log(`  verify, cached chain, VCEK parsed by caller     ${hp.toFixed(0).padStart(8)} reports/s   ratio ${(e / hp).toFixed(2)}x ECDSA time`);
  console.log(`  primitives: 3 × RSA-PSS-4096 + 1 × ECDSA P-384  ${p.toFixed(0).padStart(8)} ops/s`);
  console.log(`  verify, cold (roots, VCEK, links, signature)    ${k.toFixed(0).padStart(8)} reports/s   ratio ${(p / k).toFixed(2)}x primitives time`);
  console.log(`  verify, new VCEK (roots parsed once)            ${kl.toFixed(0).padStart(8)} reports/s   ratio ${(p / kl).toFixed(2)}x primitives time`);
  console.log(`  of which: parse one VCEK (asn1-x509)            ${vekParse.toFixed(0).padStart(8)} ops/s`);
}
