/**
 * The simulated platform's key hierarchy, built the way AMD's is shaped but
 * rooted in TEST keys that exist only here:
 *
 *   ARK (RSA-4096, self-signed, RSA-PSS/SHA-384)  ── "SIMTEST-ARK" key id
 *    └─ ASK (RSA-4096, signed by ARK)              ── "SIMTEST-ASK" key id
 *        └─ CEK (P-384, signed by ASK, RSA_SHA384)
 *            └─ PEK (P-384, signed by OCA and CEK) ─ PDH (P-384 ECDH, signed by PEK)
 *   OCA (P-384, self-signed while self-owned)
 *
 * Nothing signed by these roots says anything about real AMD hardware.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Algo, Usage } from '../certs/constants.js';
import { beToLeFixed } from '../certs/bytes.js';
import { caCertBody, createCaCert, encodeCaCert, type CaCert } from '../certs/ca-cert.js';
import { createSevCert, encodeSevCert, sevCertBody, type SevCert } from '../certs/sev-cert.js';
import { deriveBytes, deriveP384, deriveRsa, ecdsaSignDeterministic, rsaPssSignDeterministic } from './detcrypto.js';
import { cacheDir } from '../util/cache-dir.js';
import { writeFileAtomic } from '../util/fs.js';

/** Prefix of the simulator's CA key ids: visible in every dump of the ARK/ASK. */
export const TEST_ROOT_ID_PREFIX = 'SIMTEST-';

export interface ApiVersion {
  major: number;
  minor: number;
  build: number;
}

function caKeyId(seed: string, role: 'ARK' | 'ASK'): Buffer {
  // 12 readable bytes marking the key as a test root, then 4 bytes from the seed.
  return Buffer.concat([Buffer.from(`${TEST_ROOT_ID_PREFIX}${role}-`, 'ascii'), deriveBytes(seed, `${role}-id`, 4)]);
}

function signCa(cert: CaCert, key: KeyObject, seed: string, label: string): CaCert {
  const body = caCertBody(cert);
  const sig = rsaPssSignDeterministic(key, 'sha384', body, seed, label);
  return { ...cert, signature: beToLeFixed(sig, cert.modulusSize / 8) };
}

/**
 * The two RSA-4096 test roots for a seed. Generating them takes seconds, so the
 * keys are cached per seed (the derivation is deterministic; the cache only
 * saves time) under the user's cache dir.
 */
export function loadOrCreateRoots(seed: string, rsaCacheDir: string = path.join(cacheDir(), 'sim-rsa')): { arkKey: KeyObject; askKey: KeyObject } {
  const tag = crypto.createHash('sha256').update(`sevkit-sim-rsa-v2\0${seed}`).digest('hex').slice(0, 32);
  const load = (role: string, bits: number): KeyObject => {
    const file = path.join(rsaCacheDir, `${tag}-${role}.key.pem`);
    try {
      const k = crypto.createPrivateKey(fs.readFileSync(file));
      if (k.asymmetricKeyType === 'rsa' && k.asymmetricKeyDetails?.modulusLength === bits) return k;
    } catch {
      // missing or unreadable: derive it again
    }
    const { privateKey } = deriveRsa(seed, role, bits);
    try {
      fs.mkdirSync(rsaCacheDir, { recursive: true, mode: 0o700 });
      writeFileAtomic(file, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600);
    } catch {
      // a read-only cache only costs time
    }
    return privateKey;
  };
  return { arkKey: load('ark', 4096), askKey: load('ask', 4096) };
}

export function buildCaCerts(seed: string, arkKey: KeyObject, askKey: KeyObject): { ark: Buffer; ask: Buffer } {
  const arkId = caKeyId(seed, 'ARK');
  const askId = caKeyId(seed, 'ASK');
  const arkUnsigned = createCaCert({ usage: Usage.ARK, publicKey: crypto.createPublicKey(arkKey), keyId: arkId, certifyingId: arkId });
  const ark = signCa(arkUnsigned, arkKey, seed, 'ark-self');
  const askUnsigned = createCaCert({ usage: Usage.ASK, publicKey: crypto.createPublicKey(askKey), keyId: askId, certifyingId: arkId });
  const ask = signCa(askUnsigned, arkKey, seed, 'ask-by-ark');
  return { ark: encodeCaCert(ark), ask: encodeCaCert(ask) };
}

/** ECDSA-sign a SEV cert body into `slot` (0 or 1) with an EC signer. */
export function signSevEc(cert: SevCert, slot: 0 | 1, signerUsage: number, key: KeyObject): SevCert {
  const sig = ecdsaSignDeterministic(key, 'sha256', sevCertBody(cert));
  const value = Buffer.alloc(512);
  beToLeFixed(sig.subarray(0, 48), 72).copy(value, 0);
  beToLeFixed(sig.subarray(48), 72).copy(value, 72);
  const sigs: [SevCert['sigs'][0], SevCert['sigs'][1]] = [cert.sigs[0], cert.sigs[1]];
  sigs[slot] = { usage: signerUsage, algo: Algo.ECDSA_SHA256, value };
  return { ...cert, sigs };
}

export function makeSevCert(usage: number, key: KeyObject, api: ApiVersion): SevCert {
  return createSevCert({ usage, publicKey: crypto.createPublicKey(key), apiMajor: api.major, apiMinor: api.minor });
}

/** CEK signed by the ASK (RSA-PSS SHA-384 in slot 1, as on Rome and later). */
export function buildCek(seed: string, cekKey: KeyObject, askKey: KeyObject, api: ApiVersion): Buffer {
  const cert = makeSevCert(Usage.CEK, cekKey, api);
  const sig = rsaPssSignDeterministic(askKey, 'sha384', sevCertBody(cert), seed, 'cek-by-ask');
  const signed: SevCert = { ...cert, sigs: [{ usage: Usage.ASK, algo: Algo.RSA_SHA384, value: beToLeFixed(sig, 512) }, cert.sigs[1]] };
  return encodeSevCert(signed);
}

export function buildOca(ocaKey: KeyObject, api: ApiVersion): Buffer {
  return encodeSevCert(signSevEc(makeSevCert(Usage.OCA, ocaKey, api), 0, Usage.OCA, ocaKey));
}

/** PEK signed by the OCA (slot 1) and the CEK (slot 2), as firmware does for a self-owned platform. */
export function buildPek(pekKey: KeyObject, ocaKey: KeyObject, cekKey: KeyObject, api: ApiVersion): Buffer {
  let pek = makeSevCert(Usage.PEK, pekKey, api);
  pek = signSevEc(pek, 0, Usage.OCA, ocaKey);
  pek = signSevEc(pek, 1, Usage.CEK, cekKey);
  return encodeSevCert(pek);
}

export function buildPdh(pdhKey: KeyObject, pekKey: KeyObject, api: ApiVersion): Buffer {
  return encodeSevCert(signSevEc(makeSevCert(Usage.PDH, pdhKey, api), 0, Usage.PEK, pekKey));
}

/** The unsigned PEK a PEK_CSR returns. */
export function buildPekCsr(pekKey: KeyObject, api: ApiVersion): Buffer {
  return encodeSevCert(makeSevCert(Usage.PEK, pekKey, api));
}

export { deriveP384 };
