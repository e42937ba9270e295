/**
 * Certificates benchmark: full-chain verification next to the raw signature
 * verifications it is made of (4 × ECDSA P-384, 3 × RSA-PSS with prepared
 * keys), measured in the same run; plus decode/encode of a full chain and
 * generation detection. Prints ops/s and operation/primitive time ratios.
 *
 *   node --import tsx bench/certs.ts [--seconds S]
 */
import { opsPerCpuSecond } from './cpu-bench.js';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  caCertBody,
  caCertPublicKey,
  caHashFor,
  decodeFullChain,
  detectGeneration,
  encodeFullChain,
  sevCertBody,
  sevCertPublicKey,
  verifyChain,
} from '../lib/certs/index.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const bench = opsPerCpuSecond;

for (const gen of ['naples', 'rome'] as const) {
  const raw = fs.readFileSync(path.resolve(ROOT, `test/fixtures/vectors/virtee-derived/${gen}/full_chain.cert`));
  const chain = decodeFullChain(raw);
  const { sev, ca } = chain;
  // Primitive: the 7 signature checks with keys and signatures already converted.
  const le2be = (b: Buffer) => Buffer.from(b).reverse();
  const ecSig = (slot: Buffer) => Buffer.concat([le2be(slot.subarray(0, 48)), le2be(slot.subarray(72, 120))]);
  const ec = [
    [sevCertPublicKey(sev.pek), sevCertBody(sev.pdh), ecSig(sev.pdh.sigs[0].value)],
    [sevCertPublicKey(sev.oca), sevCertBody(sev.pek), ecSig(sev.pek.sigs[0].value)],
    [sevCertPublicKey(sev.oca), sevCertBody(sev.oca), ecSig(sev.oca.sigs[0].value)],
    [sevCertPublicKey(sev.cek), sevCertBody(sev.pek), ecSig(sev.pek.sigs[1].value)],
  ] as const;
  const { hash, saltLength } = caHashFor(ca.ark.modulusSize);
  const n = ca.ark.modulusSize / 8;
  const rsa = [
    [caCertPublicKey(ca.ask), sevCertBody(sev.cek), le2be(sev.cek.sigs[0].value).subarray(512 - n)],
    [caCertPublicKey(ca.ark), caCertBody(ca.ask), le2be(ca.ask.signature)],
    [caCertPublicKey(ca.ark), caCertBody(ca.ark), le2be(ca.ark.signature)],
  ] as const;
  const primitive = () => {
    let ok = true;
    for (const [k, d, s] of ec) ok &&= crypto.verify('sha256', d, { key: k, dsaEncoding: 'ieee-p1363' }, s);
    for (const [k, d, s] of rsa) ok &&= crypto.verify(hash, d, { key: k, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength }, s);
    if (!ok) throw new Error('primitive verification failed');
  };
  const full = () => {
    if (!verifyChain({ sev, ca }).ok) throw new Error('chain failed');
  };
  const fromBytes = () => {
    const c = decodeFullChain(raw);
    if (!verifyChain({ sev: c.sev, ca: c.ca }).ok) throw new Error('chain failed');
  };
  const detect = () => detectGeneration(sev.cek);
  const codec = () => encodeFullChain(decodeFullChain(raw));
  const p = bench(primitive, SECONDS);
  const f = bench(full, SECONDS);
  const fb = bench(fromBytes, SECONDS);
  const d = bench(detect, SECONDS);
  const c = bench(codec, SECONDS);
  console.log(`${gen}:`);
  console.log(`  primitive: 7 signature verifications   ${p.toFixed(0).padStart(8)} ops/s`);
  console.log(`  verifyChain (decoded, explicit CA)     ${f.toFixed(0).padStart(8)} ops/s   ratio ${(p / f).toFixed(2)}x primitive time`);
  console.log(`  decode + verifyChain from bytes        ${fb.toFixed(0).padStart(8)} ops/s   ratio ${(p / fb).toFixed(2)}x primitive time`);
  console.log(`  detectGeneration (built-in ASKs)       ${d.toFixed(0).padStart(8)} ops/s`);
  console.log(`  decode + encode full chain             ${c.toFixed(0).padStart(8)} ops/s`);
}
