import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  Algo,
  CertificateError,
  GENERATIONS,
  Usage,
  caCertPublicKey,
  createCaCert,
  createSevCert,
  decodeCaCert,
  decodeSevCert,
  encodeCaCert,
  encodeSevCert,
  sevCertBody,
  sevCertDisplay,
  sevCertPublicKey,
  signCaCert,
  signSevCert,
  verifyAskCek,
  verifyCaLink,
  verifySevLink,
  builtinCaChainBytes,
  signCekWithAsk,
  p384PublicKey,
} from '../../lib/certs/index.js';
import { builtinFile, realCert, testRsa, vec } from './fixtures.js';

function expectCertError(f: () => unknown, field: string, text: RegExp): CertificateError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CertificateError);
    const ce = e as CertificateError;
    expect(ce.field).toBe(field);
    expect(ce.message).toMatch(text);
    expect(ce.message).not.toContain('\n');
    return ce;
  }
  throw new Error('expected a CertificateError');
}

describe('SEV certificate codec', () => {
  for (const gen of ['naples', 'rome'] as const) {
    for (const name of ['pdh', 'pek', 'oca', 'cek'] as const) {
      it(`${gen} ${name}: decode/encode is byte-exact and fields are right`, () => {
        const raw = realCert(gen, name);
        const c = decodeSevCert(raw);
        expect(encodeSevCert(c).equals(raw)).toBe(true);
        expect(c.version).toBe(1);
        expect(c.usage).toBe(Usage[name.toUpperCase() as 'PDH']);
        expect(c.pubkey.kind).toBe('ec');
        expect(c.algo).toBe(name === 'pdh' ? Algo.ECDH_SHA256 : Algo.ECDSA_SHA256);
      });
    }
  }

  it('reads api version and slot contents of the Rome CEK', () => {
    const c = decodeSevCert(realCert('rome', 'cek'));
    expect([c.apiMajor, c.apiMinor]).toEqual([0, 14]);
    expect(c.sigs[0].usage).toBe(Usage.ASK);
    expect(c.sigs[0].algo).toBe(Algo.RSA_SHA384);
    expect(c.sigs[1].usage).toBe(Usage.INV);
    expect(c.sigs[1].algo).toBe(Algo.NONE);
    const pdh = decodeSevCert(realCert('naples', 'pdh'));
    expect([pdh.apiMajor, pdh.apiMinor]).toEqual([0, 16]);
  });

  it('sevCertPublicKey gives the P-384 point from the LE coordinates', () => {
    const raw = realCert('naples', 'pdh');
    const key = sevCertPublicKey(raw);
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
    const jwk = key.export({ format: 'jwk' });
    expect(Buffer.from(jwk.x!, 'base64url').equals(Buffer.from(raw.subarray(0x14, 0x14 + 48)).reverse())).toBe(true);
    expect(Buffer.from(jwk.y!, 'base64url').equals(Buffer.from(raw.subarray(0x5c, 0x5c + 48)).reverse())).toBe(true);
  });

  it('rejects wrong version, size, usage, algorithm and curve, naming the field', () => {
    const raw = realCert('rome', 'pek');
    const mod = (off: number, v: number) => {
      const b = Buffer.from(raw);
      b.writeUInt32LE(v, off);
      return b;
    };
    expectCertError(() => decodeSevCert(mod(0, 2), { name: 'pek.cert' }), 'version', /^pek\.cert: version is 2, expected 1$/);
    expectCertError(() => decodeSevCert(raw.subarray(0, 0x823)), 'size', /size is 2083 bytes, expected 2084/);
    expectCertError(() => decodeSevCert(Buffer.concat([raw, Buffer.alloc(1)])), 'size', /2085/);
    expectCertError(() => decodeSevCert(mod(8, 0x13)), 'pubkey_usage', /not OCA, PEK, PDH or CEK/);
    expectCertError(() => decodeSevCert(raw, { name: 'PDH', usage: Usage.PDH }), 'pubkey_usage', /^PDH: pubkey_usage is PEK, expected PDH$/);
    expectCertError(() => decodeSevCert(mod(12, 0x77)), 'pubkey_algo', /0x77/);
    expectCertError(() => decodeSevCert(mod(0x10, 1)), 'curve', /curve 1 is not P-384/);
    expectCertError(() => decodeSevCert(mod(12, Algo.RSA_SHA256)), 'modulus_size', /not 2048 or 4096/);
  });

  it("P-384 keys imported from SPKI DER are the certificate's point; an off-curve point is refused", () => {
    const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const cert = createSevCert({ usage: Usage.PEK, publicKey });
    const k = cert.pubkey;
    if (k.kind !== 'ec') throw new Error('not EC');
    const got = p384PublicKey(k.qx, k.qy).export({ format: 'jwk' });
    const want = publicKey.export({ format: 'jwk' });
    expect([got.x, got.y]).toEqual([want.x, want.y]);
    const qy = Buffer.from(k.qy);
    qy[0]! ^= 1;
    expect(() => p384PublicKey(k.qx, qy)).toThrow();
    expect(() => p384PublicKey(Buffer.alloc(72), Buffer.alloc(72))).toThrow(); // the point at infinity has no affine form
  });

  it('an invalid point gives a typed key error', () => {
    const b = Buffer.from(realCert('rome', 'oca'));
    b[0x14] ^= 1;
    expectCertError(() => sevCertPublicKey(b), 'pubkey', /not a valid P-384 point/);
  });
});

describe('AMD CA certificate codec', () => {
  for (const gen of GENERATIONS) {
    it(`${gen}: builtin ARK/ASK round-trip and verify`, () => {
      const ark = builtinFile(gen, 'ark');
      const ask = builtinFile(gen, 'ask');
      expect(encodeCaCert(decodeCaCert(ark)).equals(ark)).toBe(true);
      expect(encodeCaCert(decodeCaCert(ask)).equals(ask)).toBe(true);
      expect(ark.length).toBe(gen === 'naples' ? 832 : 1600);
      expect(verifyCaLink(ark, ark).ok).toBe(true);
      expect(verifyCaLink(ark, ask).ok).toBe(true);
      expect(verifyCaLink(ask, ark).ok).toBe(false);
      expect(verifyCaLink(ask, ask).ok).toBe(false);
      expect(builtinCaChainBytes(gen).equals(Buffer.concat([ask, ark]))).toBe(true);
    });
  }

  it('Naples truncated ARK gets its signature injected only when the preamble matches', () => {
    const bad = vec('virtee-sev/tests/naples/ark.cert.bad');
    expect(bad.length).toBe(576);
    const fixed = decodeCaCert(bad);
    expect(encodeCaCert(fixed).equals(builtinFile('naples', 'ark'))).toBe(true);
    expect(verifyCaLink(fixed, fixed).ok).toBe(true);
    // Same truncation of another 2048-bit CA cert (the Naples ASK) is refused.
    expectCertError(() => decodeCaCert(builtinFile('naples', 'ask').subarray(0, 576)), 'size', /576 bytes, expected 832/);
    // And a Naples ARK preamble with a changed reserved byte too.
    const other = Buffer.from(bad);
    other[0x30] = 1;
    expectCertError(() => decodeCaCert(other), 'size', /expected 832/);
  });

  it('rejects wrong version, usage, sizes', () => {
    const ark = builtinFile('rome', 'ark');
    const mod = (off: number, v: number) => {
      const b = Buffer.from(ark);
      b.writeUInt32LE(v, off);
      return b;
    };
    expectCertError(() => decodeCaCert(mod(0, 0), { name: 'ark.cert' }), 'version', /^ark\.cert: version is 0/);
    expectCertError(() => decodeCaCert(mod(0x24, 0x1001)), 'key_usage', /not ARK or ASK/);
    expectCertError(() => decodeCaCert(mod(0x3c, 3072)), 'modulus_size', /3072/);
    expectCertError(() => decodeCaCert(mod(0x38, 2048)), 'pubexp_size', /differs/);
    expectCertError(() => decodeCaCert(ark.subarray(0, 1599)), 'size', /1599/);
    expectCertError(() => decodeCaCert(ark.subarray(0, 10)), 'size', /preamble/);
  });
});

describe('creating and signing', () => {
  const ec = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });

  it('self-signed OCA, OCA+CEK-signed PEK, PEK-signed PDH verify; tampering fails', () => {
    const oca = ec(),
      pek = ec(),
      cek = ec(),
      pdh = ec();
    let ocaCert = createSevCert({ usage: Usage.OCA, publicKey: oca.publicKey });
    expect(ocaCert.algo).toBe(Algo.ECDSA_SHA256);
    ocaCert = signSevCert(ocaCert, 'first-empty', { signerUsage: Usage.OCA, signerAlgo: Algo.ECDSA_SHA256, privateKey: oca.privateKey });
    const cekCert = createSevCert({ usage: Usage.CEK, publicKey: cek.publicKey, apiMajor: 0, apiMinor: 24 });
    let pekCert = createSevCert({ usage: Usage.PEK, publicKey: pek.publicKey, apiMajor: 1, apiMinor: 55 });
    pekCert = signSevCert(pekCert, 2, { signerUsage: Usage.CEK, signerAlgo: Algo.ECDSA_SHA256, privateKey: cek.privateKey });
    pekCert = signSevCert(pekCert, 'first-empty', { signerUsage: Usage.OCA, signerAlgo: Algo.ECDSA_SHA256, privateKey: oca.privateKey });
    expect(pekCert.sigs.map((s) => s.usage)).toEqual([Usage.OCA, Usage.CEK]);
    let pdhCert = createSevCert({ usage: Usage.PDH, publicKey: pdh.publicKey });
    expect(pdhCert.algo).toBe(Algo.ECDH_SHA256);
    pdhCert = signSevCert(pdhCert, 1, { signerUsage: Usage.PEK, signerAlgo: Algo.ECDSA_SHA256, privateKey: pek.privateKey });

    const raw = encodeSevCert(pekCert);
    expect(encodeSevCert(decodeSevCert(raw)).equals(raw)).toBe(true);
    expect(raw.readUInt32LE(0x414)).toBe(Usage.OCA);
    expect(raw.subarray(0x41c + 144, 0x414 + 520).every((b) => b === 0)).toBe(true);
    expect(verifySevLink(ocaCert, ocaCert).ok).toBe(true);
    expect(verifySevLink(ocaCert, pekCert)).toMatchObject({ ok: true, slot: 1 });
    expect(verifySevLink(cekCert, pekCert)).toMatchObject({ ok: true, slot: 2 });
    expect(verifySevLink(pekCert, pdhCert).ok).toBe(true);
    expect(verifySevLink(pdhCert, pekCert).ok).toBe(false);
    // Public key round-trips through the LE encoding.
    expect(sevCertPublicKey(pekCert).export({ format: 'jwk' })).toEqual(pek.publicKey.export({ format: 'jwk' }));
    // A third signature has no slot.
    expectCertError(
      () => signSevCert(pekCert, 'first-empty', { signerUsage: Usage.OCA, signerAlgo: Algo.ECDSA_SHA256, privateKey: oca.privateKey }),
      'sig',
      /both signature slots/,
    );
    // The signature really covers the body.
    const t = encodeSevCert(pekCert);
    t[0x100] ^= 0x80;
    expect(verifySevLink(ocaCert, t).ok).toBe(false);
    // A signature from the wrong key is rejected with a reason naming the signer.
    const forged = signSevCert(createSevCert({ usage: Usage.PEK, publicKey: pek.publicKey }), 1, {
      signerUsage: Usage.OCA,
      signerAlgo: Algo.ECDSA_SHA256,
      privateKey: cek.privateKey,
    });
    expect(verifySevLink(ocaCert, forged)).toEqual({ ok: false, reason: "PEK's signature by OCA does not verify" });
    expect(verifySevLink(cekCert, forged)).toEqual({ ok: false, reason: 'PEK has no signature slot with signer usage CEK' });
    expect(sevCertBody(pekCert).length).toBe(0x414);
  });

  for (const bits of [2048, 4096] as const) {
    it(`RSA-${bits} ARK/ASK created and signed as AMD does, ASK signs a CEK`, () => {
      const arkKeys = testRsa('ark', bits);
      const askKeys = testRsa('ask', bits);
      const ark = signCaCert(createCaCert({ usage: Usage.ARK, publicKey: arkKeys.publicKey }), { privateKey: arkKeys.privateKey });
      const ask = signCaCert(createCaCert({ usage: Usage.ASK, publicKey: askKeys.publicKey }), { privateKey: arkKeys.privateKey, signerKeyId: ark.keyId });
      const arkRaw = encodeCaCert(ark);
      expect(arkRaw.length).toBe(0x40 + 3 * (bits / 8));
      expect(encodeCaCert(decodeCaCert(arkRaw)).equals(arkRaw)).toBe(true);
      expect(ark.certifyingId.equals(ark.keyId)).toBe(true);
      expect(verifyCaLink(ark, ark).ok).toBe(true);
      expect(verifyCaLink(ark, ask).ok).toBe(true);
      expect(caCertPublicKey(ask).export({ format: 'jwk' })).toEqual(askKeys.publicKey.export({ format: 'jwk' }));
      // RSA-PSS with salt = digest length: check with node directly.
      const sigBe = Buffer.from(ask.signature).reverse();
      const hash = bits === 2048 ? 'sha256' : 'sha384';
      expect(
        crypto.verify(
          hash,
          encodeCaCert(ask).subarray(0, 0x40 + 2 * (bits / 8)),
          { key: arkKeys.publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: bits === 2048 ? 32 : 48 },
          sigBe,
        ),
      ).toBe(true);
      // A wrong certifying id breaks the link even with a valid signature.
      const wrongId = { ...ask, certifyingId: Buffer.alloc(16, 7) };
      expect(verifyCaLink(ark, signCaCert(wrongId, { privateKey: arkKeys.privateKey })).reason).toMatch(/certifying_id/);

      const cekKeys = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
      const algo = bits === 2048 ? Algo.RSA_SHA256 : Algo.RSA_SHA384;
      const cek = signSevCert(createSevCert({ usage: Usage.CEK, publicKey: cekKeys.publicKey }), 1, {
        signerUsage: Usage.ASK,
        signerAlgo: algo,
        privateKey: askKeys.privateKey,
      });
      expect(cek.sigs[0]).toMatchObject({ usage: Usage.ASK, algo });
      expect(cek.sigs[0].value.subarray(bits / 8).every((b) => b === 0)).toBe(true);
      expect(verifyAskCek(ask, cek).ok).toBe(true);
      expect(verifyAskCek(ark, cek).ok).toBe(false);
      const viaHelper = signCekWithAsk(createSevCert({ usage: Usage.CEK, publicKey: cekKeys.publicKey }), encodeCaCert(ask), askKeys.privateKey);
      expect(viaHelper.sigs[0]).toMatchObject({ usage: Usage.ASK, algo });
      expect(verifyAskCek(ask, viaHelper).ok).toBe(true);
      const other = testRsa('other', bits);
      const forged = signSevCert(createSevCert({ usage: Usage.CEK, publicKey: cekKeys.publicKey }), 1, {
        signerUsage: Usage.ASK,
        signerAlgo: algo,
        privateKey: other.privateKey,
      });
      expect(verifyAskCek(ask, forged)).toMatchObject({ ok: false, reason: "CEK's signature by ASK does not verify" });
    });
  }

  it('display strings of real certs match sevctl', () => {
    expect(sevCertDisplay(realCert('naples', 'pdh'))).toBe('PDH EP384 D256 dbec0cf343b140dc7ded571935e8d0ec8059fd1610ddb3c79eb177e7cd3878a2');
    expect(sevCertDisplay(realCert('rome', 'cek'))).toBe('CEK EP384 E256 ce2cba2df8808d188f445192418e008ecf9bd1464db35ea64afa3b3b6966396c');
  });
});
