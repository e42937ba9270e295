/**
 * A deliberately independent SEV-cert checker for the platform suite (written
 * from sev-formats.md §1 with Node crypto only, not lib/certs), so the suite
 * proves the exported chain verifies with a second implementation.
 */
import crypto, { type KeyObject } from 'node:crypto';

export const USAGE = { OCA: 0x1001, PEK: 0x1002, PDH: 0x1003, CEK: 0x1004, ASK: 0x13, ARK: 0 } as const;
const BODY = 0x414;
const SLOTS = [0x414, 0x61c];

function le(b: Buffer): Buffer {
  return Buffer.from(b).reverse();
}

export function usageOf(cert: Buffer): number {
  return cert.readUInt32LE(0x08);
}

/** P-384 public key of a SEV cert (curve 2, LE coordinates at 0x14 / 0x5c). */
export function ecPublicKey(cert: Buffer): KeyObject {
  if (cert.length !== 0x824) throw new Error(`SEV cert must be 0x824 bytes, got ${cert.length}`);
  if (cert.readUInt32LE(0x10) !== 2) throw new Error('not a P-384 key');
  const x = le(cert.subarray(0x14, 0x14 + 48)).toString('base64url');
  const y = le(cert.subarray(0x5c, 0x5c + 48)).toString('base64url');
  return crypto.createPublicKey({ key: { kty: 'EC', crv: 'P-384', x, y }, format: 'jwk' });
}

/** True when `parent` signed `child` in one of its slots (usage must match the signer's). */
export function ecSigned(parent: Buffer, child: Buffer): boolean {
  const key = ecPublicKey(parent);
  const hash = (parent.readUInt32LE(0x0c) & 0x100) !== 0 ? 'sha384' : 'sha256';
  for (const off of SLOTS) {
    if (child.readUInt32LE(off) !== usageOf(parent)) continue;
    const r = le(child.subarray(off + 8, off + 8 + 72));
    const s = le(child.subarray(off + 0x50, off + 0x50 + 72));
    // 72-byte fields hold 48-byte P-384 scalars; anything in the top bytes is malformed.
    if (!r.subarray(0, 24).every((v) => v === 0) || !s.subarray(0, 24).every((v) => v === 0)) continue;
    const sig = Buffer.concat([r.subarray(24), s.subarray(24)]);
    if (crypto.verify(hash, child.subarray(0, BODY), { key, dsaEncoding: 'ieee-p1363' }, sig)) return true;
  }
  return false;
}

/** SPKI DER of a key, for comparing a cert's key with a PEM file's. */
export function spki(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

function leField(bigEndian: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  Buffer.from(bigEndian).reverse().copy(out, 0);
  return out;
}

/** Sign `cert` into its first empty slot (ECDSA-SHA256, signer usage in sig_usage). */
export function signInto(cert: Buffer, signerUsage: number, key: KeyObject): Buffer {
  const out = Buffer.from(cert);
  const usages: number[] = Object.values(USAGE);
  const algos = [0x1, 0x101, 0x2, 0x102];
  const off = SLOTS.find((o) => !usages.includes(out.readUInt32LE(o)) || !algos.includes(out.readUInt32LE(o + 4)));
  if (off === undefined) throw new Error('no empty signature slot');
  const sig = crypto.sign('sha256', out.subarray(0, BODY), { key, dsaEncoding: 'ieee-p1363' });
  out.fill(0, off, off + 520);
  out.writeUInt32LE(signerUsage, off);
  out.writeUInt32LE(0x0002, off + 4); // ECDSA_SHA256
  leField(sig.subarray(0, 48), 72).copy(out, off + 8);
  leField(sig.subarray(48), 72).copy(out, off + 0x50);
  return out;
}

/** A self-signed P-384 OCA cert (usage 0x1001, ECDSA_SHA256, api 0.0) for a private key. */
export function makeOca(priv: KeyObject): Buffer {
  const jwk = crypto.createPublicKey(priv).export({ format: 'jwk' });
  const c = Buffer.alloc(0x824);
  c.writeUInt32LE(1, 0);
  c.writeUInt32LE(USAGE.OCA, 0x08);
  c.writeUInt32LE(0x0002, 0x0c);
  c.writeUInt32LE(2, 0x10);
  leField(Buffer.from(jwk.x!, 'base64url'), 72).copy(c, 0x14);
  leField(Buffer.from(jwk.y!, 'base64url'), 72).copy(c, 0x5c);
  for (const off of SLOTS) c.writeUInt32LE(0x1000, off); // INV: empty
  return signInto(c, USAGE.OCA, priv);
}
