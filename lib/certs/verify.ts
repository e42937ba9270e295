/**
 * Verification of single links, with the rules of the AMD SEV API spec and
 * virtee/sev (sev/cert/mod.rs, ca/cert/mod.rs, crypto.rs): a signature slot is
 * only considered when its usage equals the signer's usage and its algorithm
 * has the signer key's type and hash.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { EC_COORD_SIZE, P384_SIZE, Usage, algoInfo, algoName, usageName } from './constants.js';
import { leToBeFixed } from './bytes.js';
import { asSevCert, isEmptySlot, sevCertBody, sevCertPublicKey, type SevCert } from './sev-cert.js';
import { asCaCert, caCertBody, caCertPublicKey, caHashFor, type CaCert } from './ca-cert.js';
import { CertificateError } from './errors.js';

/** The outcome of checking one signature link, with the reason when it failed. */
export interface LinkCheck {
  ok: boolean;
  /** Why the link failed (undefined when ok). */
  reason?: string;
  /** Signature slot (1 or 2) that verified, for SEV children. */
  slot?: number;
}

function ecdsaVerify(key: KeyObject, hash: string, data: Buffer, value: Buffer): boolean {
  // r and s are 72-byte LE integers; anything not fitting 48 bytes is ≥ 2^384 > n, hence invalid.
  const r = leToBeFixed(value.subarray(0, EC_COORD_SIZE), P384_SIZE);
  const s = leToBeFixed(value.subarray(EC_COORD_SIZE, 2 * EC_COORD_SIZE), P384_SIZE);
  if (!r || !s) return false;
  return crypto.verify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
}

function pssVerify(key: KeyObject, modulusBytes: number, hash: string, saltLength: number, data: Buffer, sigLe: Buffer): boolean {
  const sig = leToBeFixed(sigLe, modulusBytes);
  if (!sig) return false;
  try {
    return crypto.verify(hash, data, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength }, sig);
  } catch {
    // OpenSSL refuses a signature integer ≥ n outright; that is just an invalid signature.
    return false;
  }
}

function keyOrReason<T>(f: () => T): { key?: T; reason?: string } {
  try {
    return { key: f() };
  } catch (e) {
    if (e instanceof CertificateError) return { reason: e.message };
    throw e;
  }
}

/** Iterate the child's slots against a signer of the given usage/algo description. */
function checkSlots(
  child: SevCert,
  signerLabel: string,
  signerUsage: number,
  signerType: 'ec' | 'rsa',
  signerHash: string,
  verifyOne: (value: Buffer) => boolean,
): LinkCheck {
  const childLabel = usageName(child.usage);
  let sawUsage = false;
  let sawAlgo = false;
  for (let i = 0; i < 2; i++) {
    const s = child.sigs[i]!;
    if (isEmptySlot(s) || s.usage !== signerUsage) continue;
    sawUsage = true;
    const info = algoInfo(s.algo)!;
    if (info.type !== signerType || info.hash !== signerHash) continue;
    sawAlgo = true;
    if (verifyOne(s.value)) return { ok: true, slot: i + 1 };
  }
  if (!sawUsage) return { ok: false, reason: `${childLabel} has no signature slot with signer usage ${usageName(signerUsage)}` };
  if (!sawAlgo)
    return {
      ok: false,
      reason: `${childLabel}'s ${usageName(signerUsage)} signature algorithm does not match the ${signerLabel} key (${signerType.toUpperCase()}/${signerHash.toUpperCase()})`,
    };
  return { ok: false, reason: `${childLabel}'s signature by ${signerLabel} does not verify` };
}

/** Does SEV cert `parent` sign SEV cert `child` (OCA→OCA, OCA→PEK, CEK→PEK, PEK→PDH)? */
export function verifySevLink(parentIn: SevCert | Uint8Array, childIn: SevCert | Uint8Array): LinkCheck {
  const parent = asSevCert(parentIn);
  const child = asSevCert(childIn);
  const label = usageName(parent.usage);
  const pinfo = algoInfo(parent.algo)!;
  if (pinfo.ecdh) return { ok: false, reason: `${label} is a key-agreement key (${algoName(parent.algo)}) and cannot sign` };
  const { key, reason } = keyOrReason(() => sevCertPublicKey(parent));
  if (!key) return { ok: false, reason: reason! };
  const body = sevCertBody(child);
  const n = parent.pubkey.kind === 'rsa' ? parent.pubkey.modulusSize / 8 : 0;
  return checkSlots(child, label, parent.usage, pinfo.type, pinfo.hash, (v) =>
    pinfo.type === 'ec' ? ecdsaVerify(key, pinfo.hash, body, v) : pssVerify(key, n, pinfo.hash, pinfo.hash === 'sha256' ? 32 : 48, body, v),
  );
}

/** Does CA cert `signer` sign CA cert `child` (ARK→ARK, ARK→ASK)? */
export function verifyCaLink(signerIn: CaCert | Uint8Array, childIn: CaCert | Uint8Array): LinkCheck {
  const signer = asCaCert(signerIn);
  const child = asCaCert(childIn);
  const sl = usageName(signer.usage);
  const cl = usageName(child.usage);
  if (signer.usage !== Usage.ARK) return { ok: false, reason: `${sl} cannot sign CA certificates (only the ARK can)` };
  if (!child.certifyingId.equals(signer.keyId)) {
    return { ok: false, reason: `${cl} certifying_id ${child.certifyingId.toString('hex')} is not the ${sl} key_id ${signer.keyId.toString('hex')}` };
  }
  if (child.modulusSize !== signer.modulusSize)
    return { ok: false, reason: `${cl} is ${child.modulusSize}-bit but ${sl} is ${signer.modulusSize}-bit (hash mismatch)` };
  const { key, reason } = keyOrReason(() => caCertPublicKey(signer));
  if (!key) return { ok: false, reason: reason! };
  const { hash, saltLength } = caHashFor(signer.modulusSize);
  if (!pssVerify(key, signer.modulusSize / 8, hash, saltLength, caCertBody(child), child.signature)) {
    return { ok: false, reason: `${cl}'s signature by ${sl} does not verify` };
  }
  return { ok: true };
}

/** Does the ASK sign the CEK (RSA-PSS over the CEK body in a slot with usage ASK)? */
export function verifyAskCek(askIn: CaCert | Uint8Array, cekIn: SevCert | Uint8Array): LinkCheck {
  const ask = asCaCert(askIn);
  const cek = asSevCert(cekIn);
  if (ask.usage !== Usage.ASK) return { ok: false, reason: `the CEK signer must be an ASK, got ${usageName(ask.usage)}` };
  const { key, reason } = keyOrReason(() => caCertPublicKey(ask));
  if (!key) return { ok: false, reason: reason! };
  const { hash, saltLength } = caHashFor(ask.modulusSize);
  const body = sevCertBody(cek);
  return checkSlots(cek, 'ASK', Usage.ASK, 'rsa', hash, (v) => pssVerify(key, ask.modulusSize / 8, hash, saltLength, body, v));
}
