/**
 * Launch benchmark: ops/s of session creation, measurement build over a 4 MiB
 * firmware and secret build, each next to the raw primitives it is made of,
 * measured in the same run. Prints operation time / primitive time
 * (goal: each operation within 1.2x of the primitives it is built from).
 *
 *   node --import tsx bench/launch.ts [--seconds S]
 */
import { opsPerCpuSecond } from './cpu-bench.js';
import crypto from 'node:crypto';
import { createSevCert, encodeSevCert, Usage, Algo } from '../lib/certs/index.js';
import { createSession, computeLaunchDigest, launchMeasure, buildSecret, DISK_PASSWORD_GUID } from '../lib/launch/index.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;

const bench = opsPerCpuSecond;

const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
const pdh = encodeSevCert(createSevCert({ usage: Usage.PDH, algo: Algo.ECDH_SHA256, publicKey }));
const pdhPoint = Buffer.concat([
  Buffer.of(4),
  Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'),
  Buffer.from(publicKey.export({ format: 'jwk' }).y!, 'base64url'),
]);
const firmware = crypto.randomBytes(4 * 1024 * 1024);
const tik = crypto.randomBytes(16),
  tek = crypto.randomBytes(16);
const mnonce = crypto.randomBytes(16),
  iv = crypto.randomBytes(16);
const blob = crypto.randomBytes(48);
const secretValue = Buffer.from('correct horse battery staple');

interface Row {
  name: string;
  fn: () => unknown;
  ops: number;
}
const rows: Row[] = [];
const rec = (name: string, fn: () => unknown): Row => {
  const r = { name, fn, ops: 0 };
  rows.push(r);
  return r;
};

// Primitives, each the way the operation uses it.
const ecdhRow = rec('primitive: ECDH P-384 (ephemeral keygen + derive)', () => {
  const e = crypto.createECDH('secp384r1');
  e.generateKeys();
  return e.computeSecret(pdhPoint);
});
const shaRow = rec('primitive: SHA-256 of 4 MiB', () => crypto.createHash('sha256').update(firmware).digest());
const hmacRow = rec('primitive: HMAC-SHA256 (96-byte message)', () => crypto.createHmac('sha256', tik).update(blob).update(blob).digest());
const aesRow = rec('primitive: AES-128-CTR (80 bytes)', () => crypto.createCipheriv('aes-128-ctr', tek, iv).update(firmware.subarray(0, 80)));

// Operations.
const sessionRow = rec('op: createSession (GODH, KDF, wrap, MACs)', () => createSession(pdh, 1));
const measureRow = rec('op: measurement build (SEV digest of 4 MiB + HMAC)', () =>
  launchMeasure({ digest: computeLaunchDigest({ firmware }), mnonce, tik, apiMajor: 1, apiMinor: 55, build: 21, policy: 1 }),
);
const secretRow = rec('op: buildSecret (table, AES-CTR, packet MAC)', () =>
  buildSecret({ tek, tik, measurement: blob, iv, entries: [{ guid: DISK_PASSWORD_GUID, data: secretValue }] }),
);

// Interleave rounds so load from other processes hits primitives and operations alike; keep each item's best round.
const ROUNDS = 5;
for (let round = 0; round < ROUNDS; round++) for (const r of rows) r.ops = Math.max(r.ops, bench(r.fn, SECONDS / ROUNDS));
const ecdh = ecdhRow.ops,
  sha4m = shaRow.ops,
  hmac = hmacRow.ops,
  aes = aesRow.ops;
const session = sessionRow.ops,
  measure = measureRow.ops,
  secret = secretRow.ops;

const pad = Math.max(...rows.map((r) => r.name.length));
console.log(`launch benchmark (${SECONDS}s per item in ${ROUNDS} interleaved rounds, best round kept, node ${process.version})`);
for (const r of rows) console.log(`  ${r.name.padEnd(pad)}  ${r.ops.toFixed(1).padStart(10)} ops/s  ${(1e6 / r.ops).toFixed(1).padStart(9)} us/op (CPU)`);

// Cost of the primitives each operation cannot avoid, in microseconds.
const us = (ops: number) => 1e6 / ops;
const ratios: [string, number, number][] = [
  // one ECDH plus 3 KDF HMACs, 3 MAC HMACs and one AES-CTR
  ['createSession vs ECDH + 6 HMAC + AES-CTR', us(session), us(ecdh) + 6 * us(hmac) + us(aes)],
  ['measurement build vs SHA-256(4 MiB) + HMAC', us(measure), us(sha4m) + us(hmac)],
  ['buildSecret vs AES-CTR + HMAC', us(secret), us(aes) + us(hmac)],
];
console.log('ratios (operation time / primitive time; goal <= 1.20):');
for (const [name, op, prim] of ratios) console.log(`  ${name.padEnd(45)} ${(op / prim).toFixed(2)}x  (${op.toFixed(1)} us vs ${prim.toFixed(1)} us)`);
