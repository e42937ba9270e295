/**
 * Owner-handshake benchmark: the guest owner's CPU work for one launch —
 * chain verify (4 × ECDSA P-384, 3 × RSA-PSS-4096) + session (P-384 keygen,
 * ECDH, KDF, wrap, MACs) + measurement check over a 4 MiB firmware + secret —
 * done three ways in the same run, interleaved:
 *
 *   primitives   the raw node:crypto calls that work cannot avoid (prepared keys)
 *   library      decodeSevChain + verifyChain + createSession + verifyMeasurement + buildSecret
 *   launchOnCrn  the owner flow against an in-process fake CRN; only its own
 *                steps (chain, session, verify, secret) are counted, not the fake
 *                CRN's work inside `initialize`/`measurement`
 *
 * and, when python3 with the `cryptography` module is importable, the same
 * handshake in bench/peer/owner_handshake.py against its own primitives (its
 * outputs are checked against sevkit's once before timing). Prints each path's
 * median time / its primitives' median time (goal ≤ 1.20).
 *
 *   node --import tsx bench/owner.ts [--rounds N]
 */
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  caCertBody,
  caCertPublicKey,
  caHashFor,
  decodeCaChain,
  decodeSevChain,
  sevCertBody,
  sevCertPublicKey,
  verifyChain,
  p384PublicKey,
} from '../lib/certs/index.js';
import {
  buildSecret,
  computeLaunchDigest,
  createSession,
  DISK_PASSWORD_GUID,
  launchMeasure,
  openSession,
  verifyMeasurement,
  openSecret,
} from '../lib/launch/index.js';
import { launchOnCrn } from '../lib/owner/launch.js';
import type { CrnClient } from '../lib/owner/client.js';
import { buildCaCerts, buildCek, buildOca, buildPdh, buildPek, loadOrCreateRoots } from '../lib/sim/keys.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 40;
const POLICY = 1;
const API = { major: 1, minor: 55, build: 21 };

// A platform chain shaped like a real Rome one (RSA-4096 ARK/ASK, P-384 below), TEST roots.
const { arkKey, askKey } = loadOrCreateRoots('bench-owner');
const ca = buildCaCerts('bench-owner', arkKey, askKey);
const caBytes = Buffer.concat([ca.ask, ca.ark]);
const ec = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
const cekKey = ec(),
  ocaKey = ec(),
  pekKey = ec(),
  pdhKey = ec();
const chainBytes = Buffer.concat([
  buildPdh(pdhKey, pekKey, API),
  buildPek(pekKey, ocaKey, cekKey, API),
  buildOca(ocaKey, API),
  buildCek('bench-owner', cekKey, askKey, API),
]);
const firmware = crypto.randomBytes(4 * 1024 * 1024);
const secretValue = Buffer.from('correct horse battery staple');
const sevInfo = { apiMajor: API.major, apiMinor: API.minor, buildId: API.build, policy: POLICY };
if (!verifyChain({ sev: decodeSevChain(chainBytes), ca: caBytes }).ok) throw new Error('bench chain does not verify');

/** The firmware's side of a launch (not timed): open the session, measure the firmware. */
function firmwareSide(godh: Buffer, session: Buffer): { measurement: Buffer; tek: Buffer; tik: Buffer } {
  const { tek, tik } = openSession({ godh, session, pdhPrivateKey: pdhKey, policy: POLICY });
  const measurement = launchMeasure({
    digest: computeLaunchDigest({ firmware }),
    tik,
    apiMajor: API.major,
    apiMinor: API.minor,
    build: API.build,
    policy: POLICY,
  });
  return { measurement, tek, tik };
}

// ---- primitives, prepared the way the handshake uses them --------------------------------------------------
const sev = decodeSevChain(chainBytes);
const caChain = decodeCaChain(caBytes);
const le2be = (b: Buffer) => Buffer.from(b).reverse();
const ecSig = (slot: Buffer) => Buffer.concat([le2be(slot.subarray(0, 48)), le2be(slot.subarray(72, 120))]);
const ecLinks = [
  [sevCertPublicKey(sev.pek), sevCertBody(sev.pdh), ecSig(sev.pdh.sigs[0].value)],
  [sevCertPublicKey(sev.oca), sevCertBody(sev.pek), ecSig(sev.pek.sigs[0].value)],
  [sevCertPublicKey(sev.oca), sevCertBody(sev.oca), ecSig(sev.oca.sigs[0].value)],
  [sevCertPublicKey(sev.cek), sevCertBody(sev.pek), ecSig(sev.pek.sigs[1].value)],
] as const;
const { hash: caHash, saltLength } = caHashFor(caChain.ark.modulusSize);
const rsaLinks = [
  [caCertPublicKey(caChain.ask), sevCertBody(sev.cek), le2be(sev.cek.sigs[0].value)],
  [caCertPublicKey(caChain.ark), caCertBody(caChain.ask), le2be(caChain.ask.signature)],
  [caCertPublicKey(caChain.ark), caCertBody(caChain.ark), le2be(caChain.ark.signature)],
] as const;
const pdhPub = crypto.createPublicKey(pdhKey);
const k16 = crypto.randomBytes(16),
  msg = crypto.randomBytes(96),
  iv = crypto.randomBytes(16);
const hmac = () => crypto.createHmac('sha256', k16).update(msg).digest();
const aes = (n: number) => crypto.createCipheriv('aes-128-ctr', k16, iv).update(msg.subarray(0, n));

function primitives(): void {
  let ok = true;
  for (const [k, d, s] of ecLinks) ok &&= crypto.verify('sha256', d, { key: k, dsaEncoding: 'ieee-p1363' }, s);
  for (const [k, d, s] of rsaLinks) ok &&= crypto.verify(caHash, d, { key: k, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength }, s);
  if (!ok) throw new Error('primitive verification failed');
  // session: ephemeral key, ECDH, 3 KDF HMACs + wrap MAC + policy MAC, AES-CTR over TEK||TIK
  const eph = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  crypto.diffieHellman({ privateKey: eph.privateKey, publicKey: pdhPub });
  eph.publicKey.export({ format: 'der', type: 'spki' });
  for (let i = 0; i < 5; i++) hmac();
  aes(32);
  // measurement: SHA-256 over the firmware, HMAC
  crypto.createHash('sha256').update(firmware).digest();
  hmac();
  // secret: AES-CTR over the table, packet HMAC
  aes(64);
  hmac();
}

// ---- the library handshake --------------------------------------------------------------------------------
function library(): number {
  let t = performance.now();
  const v = verifyChain({ sev: decodeSevChain(chainBytes), ca: caBytes });
  if (!v.ok) throw new Error('chain failed');
  const s = createSession(v.sev.pdh, POLICY);
  let ms = performance.now() - t;
  const fw = firmwareSide(s.godh, s.session);
  t = performance.now();
  const verdict = verifyMeasurement({ measurement: fw.measurement, sevInfo, expected: { policy: POLICY, tik: s.tik, launch: { firmware } } });
  if (!verdict.match) throw new Error('measurement mismatch');
  buildSecret({ tek: s.tek, tik: s.tik, measurement: fw.measurement, entries: [{ guid: DISK_PASSWORD_GUID, data: secretValue }], layout: 'aleph' });
  ms += performance.now() - t;
  return ms;
}

// ---- launchOnCrn against an in-process fake CRN -----------------------------------------------------------
function fakeCrn(): CrnClient {
  let fw: ReturnType<typeof firmwareSide> | undefined;
  const fake = {
    url: 'http://fake-crn.invalid',
    // launchOnCrn scopes its requests to the launch (CrnClient.withSignal); nothing is in flight here.
    withSignal: () => fake,
    getCertificates: () => Promise.resolve(chainBytes),
    initialize: (_ref: string, files: { session: string; godh: string }) => {
      fw = firmwareSide(Buffer.from(files.godh, 'base64'), Buffer.from(files.session, 'base64'));
      return Promise.resolve('ok');
    },
    measurementOnce: () =>
      Promise.resolve({
        status: 200,
        detail: '',
        value: {
          sev_info: { enabled: true, api_major: API.major, api_minor: API.minor, build_id: API.build, policy: POLICY, state: 'launch-secret', handle: 1 },
          launch_measure: fw!.measurement.toString('base64'),
        },
      }),
    injectSecret: (_ref: string, p: { packet_header: string; secret: string }) => {
      openSecret({
        header: Buffer.from(p.packet_header, 'base64'),
        payload: Buffer.from(p.secret, 'base64'),
        tek: fw!.tek,
        tik: fw!.tik,
        measurement: fw!.measurement,
      });
      return Promise.resolve({ status: { status: 'running', running: true } });
    },
  };
  return fake as unknown as CrnClient;
}
const ref = 'ab'.repeat(32);
async function owner(): Promise<number> {
  const r = await launchOnCrn({
    client: fakeCrn(),
    ref,
    firmware,
    policy: POLICY,
    secret: secretValue,
    ca: caBytes,
    secretArea: { gpa: 0x80_0000, size: 0x1000 },
  });
  // 'firmware' is where the launch digest (the SHA-256 of the image) is computed, before the CRN is asked.
  return (r.timings.firmware ?? 0) + r.timings.chain + r.timings.session + r.timings.verify + r.timings.secret;
}

// ---- the Python peer --------------------------------------------------------------------------------------
function pythonPeer(): { note?: string; ratio?: number; op?: number; prim?: number } {
  const probe = spawnSync('python3', ['-c', 'import cryptography'], { stdio: 'ignore', timeout: 10_000 });
  if (probe.error || probe.status !== 0) return { note: 'python3 with the cryptography module is not importable: Python peer skipped' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-owner-'));
  try {
    fs.writeFileSync(path.join(dir, 'chain.cert'), chainBytes);
    fs.writeFileSync(path.join(dir, 'ca.cert'), caBytes);
    fs.writeFileSync(path.join(dir, 'firmware.bin'), firmware);
    // Check once that the peer does the same work correctly: sevkit opens its session, its
    // measurement check accepts sevkit's measurement, and sevkit opens its secret.
    const check = spawnSync('python3', [path.join(HERE, 'peer/owner_handshake.py'), 'session', dir], { encoding: 'utf8', timeout: 30_000 });
    if (check.status !== 0) throw new Error(`python peer (session): ${check.stderr}`);
    const out = JSON.parse(check.stdout) as { godh: string; session: string; tek: string; tik: string };
    const opened = openSession({ godh: out.godh, session: out.session, pdhPrivateKey: pdhKey, policy: POLICY });
    if (!opened.tek.equals(Buffer.from(out.tek, 'hex')) || !opened.tik.equals(Buffer.from(out.tik, 'hex')))
      throw new Error('python peer session does not open to its TEK/TIK');
    const measurement = launchMeasure({
      digest: computeLaunchDigest({ firmware }),
      tik: opened.tik,
      apiMajor: API.major,
      apiMinor: API.minor,
      build: API.build,
      policy: POLICY,
    });
    const m = spawnSync('python3', [path.join(HERE, 'peer/owner_handshake.py'), 'secret', dir, out.tek, out.tik, measurement.toString('hex')], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (m.status !== 0) throw new Error(`python peer (secret): ${m.stderr}`);
    const sec = JSON.parse(m.stdout) as { header: string; payload: string };
    const plain = openSecret({
      header: Buffer.from(sec.header, 'hex'),
      payload: Buffer.from(sec.payload, 'hex'),
      tek: opened.tek,
      tik: opened.tik,
      measurement,
    });
    if (!plain.includes(secretValue)) throw new Error('python peer secret does not decrypt to the disk password');
    const run = spawnSync('python3', [path.join(HERE, 'peer/owner_handshake.py'), 'bench', dir, String(ROUNDS)], { encoding: 'utf8', timeout: 120_000 });
    if (run.status !== 0) throw new Error(`python peer (bench): ${run.stderr}`);
    const r = JSON.parse(run.stdout) as { op_ms: number; prim_ms: number };
    return { op: r.op_ms, prim: r.prim_ms, ratio: r.op_ms / r.prim_ms };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const time = (fn: () => void) => {
  const t = performance.now();
  fn();
  return performance.now() - t;
};

const samples = { prim: [] as number[], lib: [] as number[], owner: [] as number[] };
for (let i = 0; i < 3; i++) {
  primitives();
  library();
  await owner();
}
for (let round = 0; round < ROUNDS; round++) {
  samples.prim.push(time(primitives));
  samples.lib.push(library());
  samples.owner.push(await owner());
}
// The fixes of issue 17, old way vs new way, in this run.
const pekLe = sev.pek.pubkey.kind === 'ec' ? sev.pek.pubkey : undefined;
const jwkOf = (le: Buffer) => Buffer.from(le.subarray(0, 48)).reverse().toString('base64url');
const fixes = {
  jwk: [] as number[],
  spki: [] as number[],
  ecdh: [] as number[],
  dh: [] as number[],
};
for (let round = 0; round < ROUNDS; round++) {
  fixes.jwk.push(time(() => crypto.createPublicKey({ key: { kty: 'EC', crv: 'P-384', x: jwkOf(pekLe!.qx), y: jwkOf(pekLe!.qy) }, format: 'jwk' })));
  fixes.spki.push(time(() => p384PublicKey(pekLe!.qx, pekLe!.qy)));
  fixes.ecdh.push(
    time(() => {
      const e = crypto.createECDH('secp384r1');
      e.generateKeys();
      e.computeSecret(crypto.createPublicKey(pdhKey).export({ format: 'der', type: 'spki' }).subarray(-97));
    }),
  );
  fixes.dh.push(
    time(() => {
      const eph = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
      crypto.diffieHellman({ privateKey: eph.privateKey, publicKey: pdhPub });
      eph.publicKey.export({ format: 'der', type: 'spki' });
    }),
  );
}
const prim = median(samples.prim),
  lib = median(samples.lib),
  own = median(samples.owner);
console.log(`owner handshake benchmark (${ROUNDS} interleaved rounds, medians, node ${process.version})`);
console.log(`  primitives (7 verifies, P-384 keygen+ECDH, 7 HMAC, 2 AES-CTR, SHA-256 of 4 MiB)  ${prim.toFixed(2).padStart(7)} ms`);
console.log(`  library handshake (verifyChain, createSession, verifyMeasurement, buildSecret)  ${lib.toFixed(2).padStart(7)} ms`);
console.log(`  launchOnCrn, owner steps (firmware, chain, session, verify, secret)                      ${own.toFixed(2).padStart(7)} ms`);
console.log('the fixes, old vs new (medians in this run):');
console.log(`  P-384 key import: JWK ${median(fixes.jwk).toFixed(3)} ms, SPKI DER ${median(fixes.spki).toFixed(3)} ms`);
console.log(`  session ECDH: createECDH().computeSecret ${median(fixes.ecdh).toFixed(3)} ms, diffieHellman on KeyObjects ${median(fixes.dh).toFixed(3)} ms`);
const py = pythonPeer();
console.log('ratios (time / its primitives; goal <= 1.20):');
console.log(`  library handshake vs primitives   ${(lib / prim).toFixed(2)}x`);
console.log(`  launchOnCrn vs primitives         ${(own / prim).toFixed(2)}x`);
if (py.note) console.log(`  ${py.note}`);
else console.log(`  python peer vs its primitives     ${py.ratio!.toFixed(2)}x  (${py.op!.toFixed(2)} ms vs ${py.prim!.toFixed(2)} ms)`);
