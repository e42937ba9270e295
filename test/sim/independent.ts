/**
 * A small verifier written straight from sev-formats.md §1–2 with node:crypto
 * only (no lib/certs), so the simulator's chain is checked independently of
 * the code that built it.
 */
import crypto, { type KeyObject } from 'node:crypto';

const rev = (b: Buffer) => Buffer.from(b).reverse();
const strip = (b: Buffer) => {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
};

export function sevEcKey(cert: Buffer): KeyObject {
  const x = rev(cert.subarray(0x14, 0x14 + 48));
  const y = rev(cert.subarray(0x5c, 0x5c + 48));
  return crypto.createPublicKey({ key: { kty: 'EC', crv: 'P-384', x: x.toString('base64url'), y: y.toString('base64url') }, format: 'jwk' });
}

export function caKey(cert: Buffer): KeyObject {
  const bits = cert.readUInt32LE(0x3c);
  const n = bits / 8;
  const e = strip(rev(cert.subarray(0x40, 0x40 + n)));
  const mod = strip(rev(cert.subarray(0x40 + n, 0x40 + 2 * n)));
  return crypto.createPublicKey({ key: { kty: 'RSA', n: mod.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' });
}

/** Does `signer` (a SEV EC cert) sign `child` in a slot with usage = signer usage? */
export function ecSigns(signer: Buffer, child: Buffer): boolean {
  const usage = signer.readUInt32LE(8);
  const key = sevEcKey(signer);
  for (const off of [0x414, 0x61c]) {
    if (child.readUInt32LE(off) !== usage) continue;
    const r = rev(child.subarray(off + 8, off + 8 + 48));
    const s = rev(child.subarray(off + 8 + 72, off + 8 + 72 + 48));
    if (crypto.verify('sha256', child.subarray(0, 0x414), { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]))) return true;
  }
  return false;
}

/** ASK signs CEK: RSA-PSS SHA-384 salt 48 over the CEK body, slot usage ASK (0x13). */
export function askSignsCek(ask: Buffer, cek: Buffer): boolean {
  const key = caKey(ask);
  const n = ask.readUInt32LE(0x3c) / 8;
  for (const off of [0x414, 0x61c]) {
    if (cek.readUInt32LE(off) !== 0x13) continue;
    const sig = rev(cek.subarray(off + 8, off + 8 + n));
    if (crypto.verify('sha384', cek.subarray(0, 0x414), { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, sig)) return true;
  }
  return false;
}

/** CA cert `child` signed by CA cert `signer` (ARK self or ARK→ASK), with the id rule. */
export function caSigns(signer: Buffer, child: Buffer): boolean {
  if (!child.subarray(0x14, 0x24).equals(signer.subarray(0x04, 0x14))) return false;
  const n = signer.readUInt32LE(0x3c) / 8;
  const body = child.subarray(0, 0x40 + 2 * n);
  const sig = rev(child.subarray(0x40 + 2 * n, 0x40 + 3 * n));
  return crypto.verify('sha384', body, { key: caKey(signer), padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, sig);
}

/** Public point of a PKCS#8 PEM private key equals the cert's key. */
export function keyMatchesCert(pem: string | Buffer, cert: Buffer): boolean {
  const pub = crypto.createPublicKey(crypto.createPrivateKey(pem)).export({ format: 'jwk' });
  const c = sevEcKey(cert).export({ format: 'jwk' });
  return pub.x === c.x && pub.y === c.y;
}
