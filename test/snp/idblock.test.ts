/**
 * SNP ID block and ID auth structure against the upstream answers (virtee/sev tests/id-block.rs,
 * sev-snp-measure tests/test_id_block.py; snp-idblock-report.json): the block bytes, the key digests, the
 * upstream signatures verifying under our decoding, the auth block assembled byte for byte, and our own
 * signatures verifying (and failing when anything is changed).
 */
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  buildIdBlock,
  parseIdBlock,
  loadSnpSigningKey,
  encodeSnpPublicKey,
  decodeSnpPublicKey,
  snpKeyDigest,
  signSnp,
  verifySnp,
  assembleIdAuth,
  parseIdAuth,
  createIdBlock,
  verifyIdAuth,
  ID_AUTH_SIZE,
  IdBlockError,
} from '../../lib/snp/idblock.js';
import { SevkitError } from '../../lib/errors.js';
import { loadVectors, SNP_LAUNCH } from './digest-helpers.js';

const data = loadVectors('snp-launch/snp-idblock-report.json');
const V = data.virtee_sev_id_block_rs;
const S = data.sev_snp_measure_test_id_block;
const file = (p: string) => fs.readFileSync(path.join(SNP_LAUNCH, p));
const b64 = (s: string) => Buffer.from(s, 'base64');
const virteeId = loadSnpSigningKey(file('virtee-sev/tests/measurement/test_id_key.pem'), 'test_id_key.pem');
const virteeAuthor = loadSnpSigningKey(file('virtee-sev/tests/measurement/test_auth_key.pem'), 'test_auth_key.pem');

describe('ID block (virtee/sev id-block.rs)', () => {
  const block = buildIdBlock({ ld: Buffer.from(V.inputs.launch_digest_hex, 'hex') });

  it('the 96-byte block equals the upstream literal; it parses back', () => {
    expect(block.toString('base64')).toBe(V.expected_id_block_b64);
    const f = parseIdBlock(block);
    expect([f.version, f.guestSvn, f.policy]).toEqual([1, 0, 0x30000n]);
  });

  it('key digests equal the upstream values', () => {
    expect(snpKeyDigest(virteeId).toString('base64')).toBe(V.expected_id_key_digest_b64);
    expect(snpKeyDigest(virteeAuthor).toString('base64')).toBe(V.expected_auth_key_digest_b64);
  });

  it('the upstream signatures verify under our decoding; the auth block assembles byte for byte', () => {
    const idSig = file('virtee-sev/tests/measurement/test_id_sig.bin');
    const authSig = file('virtee-sev/tests/measurement/test_auth_sig.bin');
    const idPub = encodeSnpPublicKey(virteeId);
    expect(verifySnp(virteeId, block, idSig)).toBe(true);
    expect(verifySnp(idPub, block, idSig)).toBe(true);
    expect(verifySnp(encodeSnpPublicKey(virteeAuthor), idPub, authSig)).toBe(true);
    expect(verifySnp(virteeAuthor, block, idSig)).toBe(false);
    const auth = assembleIdAuth({ idBlockSig: idSig, idKey: idPub, idKeySig: authSig, authorKey: encodeSnpPublicKey(virteeAuthor) });
    expect(auth.equals(file('virtee-sev/tests/measurement/test_auth_block.bin'))).toBe(true);
    const v = verifyIdAuth(block, auth, { authorKeyEnabled: true });
    expect(v.idKeyDigest.toString('base64')).toBe(V.expected_id_key_digest_b64);
    expect(v.authorKeyDigest!.toString('base64')).toBe(V.expected_auth_key_digest_b64);
  });
});

describe('ID block (sev-snp-measure test_id_block.py)', () => {
  it('block and key digests equal the upstream values', () => {
    const id = loadSnpSigningKey(file('sev-snp-measure/tests/keyfile/id_key_test.pem'));
    const author = loadSnpSigningKey(file('sev-snp-measure/tests/keyfile/author_key_test.pem'));
    const r = createIdBlock({ ld: b64(S.measurement_b64) }, id, author);
    expect(r.idBlock.toString('base64')).toBe(S.expected_id_block_b64);
    expect(r.idKeyDigest.toString('base64')).toBe(S.expected_id_key_hash_b64);
    expect(r.authorKeyDigest!.toString('base64')).toBe(S.expected_author_key_b64);
    expect(r.idAuth).toHaveLength(ID_AUTH_SIZE);
    // Our own signatures verify where the firmware checks them.
    expect(verifyIdAuth(r.idBlock, r.idAuth, { authorKeyEnabled: true }).authorKeyDigest!.equals(r.authorKeyDigest!)).toBe(true);
  });
});

describe('signing and verification', () => {
  const id = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const author = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const fields = { ld: crypto.randomBytes(48), familyId: Buffer.alloc(16, 1), imageId: Buffer.alloc(16, 2), guestSvn: 7, policy: 0x30000 };

  it('layout: every field at its offset, reserved bytes zero, no author fields without an author key', () => {
    const r = createIdBlock(fields, id);
    expect(r.idBlock.subarray(0x30, 0x40).equals(fields.familyId)).toBe(true);
    expect(r.idBlock.readUInt32LE(0x54)).toBe(7);
    const a = parseIdAuth(r.idAuth);
    expect([a.idKeyAlgo, a.authKeyAlgo]).toEqual([1, 1]);
    expect(a.idKey.equals(encodeSnpPublicKey(id))).toBe(true);
    expect(a.authorKey.every((b) => b === 0) && a.idKeySig.every((b) => b === 0)).toBe(true);
    expect(
      r.idAuth.subarray(0x8, 0x40).every((b) => b === 0) &&
        r.idAuth.subarray(0x644, 0x680).every((b) => b === 0) &&
        r.idAuth.subarray(0xc84).every((b) => b === 0),
    ).toBe(true);
    expect(r.authorKeyDigest).toBeNull();
    expect(verifyIdAuth(r.idBlock, r.idAuth).authorKeyDigest).toBeNull();
    expect(() => verifyIdAuth(r.idBlock, r.idAuth, { authorKeyEnabled: true })).toThrow(/author key|curve/);
  });

  it('a changed block, ID key or author signature fails the firmware check', () => {
    const r = createIdBlock(fields, id, author);
    const flip = (b: Buffer, at: number) => {
      const c = Buffer.from(b);
      c[at]! ^= 1;
      return c;
    };
    const codeOf = (fn: () => unknown) => {
      try {
        fn();
        return 'ok';
      } catch (e) {
        return (e as SevkitError).code;
      }
    };
    expect(codeOf(() => verifyIdAuth(flip(r.idBlock, 0), r.idAuth))).toBe('ERR_SNP_ID_SIGNATURE');
    expect(codeOf(() => verifyIdAuth(r.idBlock, flip(r.idAuth, 0x40 + 3)))).toBe('ERR_SNP_ID_SIGNATURE');
    expect(codeOf(() => verifyIdAuth(r.idBlock, flip(r.idAuth, 0x680 + 5), { authorKeyEnabled: true }))).toBe('ERR_SNP_ID_SIGNATURE');
    expect(codeOf(() => verifyIdAuth(r.idBlock, flip(r.idAuth, 0x680 + 5)))).toBe('ok');
    // High bytes of R must be zero.
    expect(verifySnp(id, r.idBlock, flip(parseIdAuth(r.idAuth).idBlockSig, 60))).toBe(false);
    expect(codeOf(() => verifyIdAuth(r.idBlock, flip(r.idAuth, 0)))).toBe('ERR_SNP_ID_ALGO');
    expect(codeOf(() => verifyIdAuth(r.idBlock.subarray(1), r.idAuth))).toBe('ERR_SNP_ID_BLOCK_SIZE');
  });

  it('the public-key format round-trips; foreign curves and bad points are refused', () => {
    const enc = encodeSnpPublicKey(id);
    expect(encodeSnpPublicKey(decodeSnpPublicKey(enc)).equals(enc)).toBe(true);
    const bad = Buffer.from(enc);
    bad.writeUInt32LE(3, 0);
    expect(() => decodeSnpPublicKey(bad)).toThrow(/curve 3/);
    const off = Buffer.from(enc);
    off[10]! ^= 0xff;
    expect(() => decodeSnpPublicKey(off)).toThrow(/not a point/);
    expect(
      signSnp(id, Buffer.from('m'))
        .subarray(0x90)
        .every((b) => b === 0),
    ).toBe(true);
  });

  it('keys: P-384 only; SEC1, PKCS#8, encrypted PKCS#8 and DER load; junk gives one line', () => {
    const p256 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' });
    expect(() => loadSnpSigningKey(p256, 'k.pem')).toThrow(/k\.pem: .*P-384, this is EC prime256v1/);
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' });
    expect(() => loadSnpSigningKey(rsa, 'r.pem')).toThrow(/this is rsa/);
    expect(() => loadSnpSigningKey('hello', 'x.pem')).toThrow(/x\.pem: not a private key/);
    const digest = snpKeyDigest(id);
    const sec1 = id.export({ format: 'pem', type: 'sec1' });
    expect(snpKeyDigest(loadSnpSigningKey(sec1)).equals(digest)).toBe(true);
    expect(snpKeyDigest(loadSnpSigningKey(id.export({ format: 'der', type: 'pkcs8' }))).equals(digest)).toBe(true);
    const enc = id.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' });
    expect(snpKeyDigest(loadSnpSigningKey(enc, 'e.pem', 'pw')).equals(digest)).toBe(true);
    expect(() => loadSnpSigningKey(enc, 'e.pem')).toThrow(/e\.pem: encrypted/);
  });

  it('random ID auth structures (algorithms and curve right, the rest noise) are refused with IdBlockError', () => {
    const block = buildIdBlock({ ld: crypto.randomBytes(48) });
    for (let i = 0; i < 200; i++) {
      const auth = crypto.randomBytes(ID_AUTH_SIZE);
      auth.writeUInt32LE(1, 0);
      auth.writeUInt32LE(1, 4);
      auth.writeUInt32LE(2, 0x240);
      auth.writeUInt32LE(2, 0x880);
      // Half the time the coordinates fit 384 bits, so the point check (not the size check) has to refuse them.
      if (i % 2) for (const off of [0x244 + 48, 0x244 + 72 + 48]) auth.fill(0, off, off + 24);
      expect(() => verifyIdAuth(block, auth, { authorKeyEnabled: true })).toThrow(IdBlockError);
    }
  });

  it('bad fields are refused', () => {
    expect(() => buildIdBlock({ ld: Buffer.alloc(32) })).toThrow(/launch digest must be 48 bytes/);
    expect(() => buildIdBlock({ ld: Buffer.alloc(48), familyId: Buffer.alloc(15) })).toThrow(/family ID must be 16 bytes/);
    expect(() => buildIdBlock({ ld: Buffer.alloc(48), guestSvn: -1 })).toThrow(/u32/);
    expect(() => buildIdBlock({ ld: Buffer.alloc(48), policy: 1n << 64n })).toThrow(/64 bits/);
  });
});
