import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makePdh, read } from './helpers.js';
import { createSession, openSession, writeSessionFiles, decodeSession, Policy, SessionError, GODH_SIZE } from '../../lib/launch/index.js';
import { decodeSevCert, Usage, Algo } from '../../lib/certs/index.js';

const pdh = makePdh();

function expectFw(fn: () => unknown, status: string) {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SessionError);
    expect((e as SessionError).fwStatusName).toBe(status);
    return;
  }
  throw new Error(`expected ${status}`);
}

describe('createSession / openSession', () => {
  it('GODH certificate layout is what sevctl writes', () => {
    const s = createSession(pdh.cert, 1);
    expect(s.godh.length).toBe(GODH_SIZE);
    const c = decodeSevCert(s.godh);
    expect(c.version).toBe(1);
    expect([c.apiMajor, c.apiMinor]).toEqual([0, 0]);
    expect(c.usage).toBe(Usage.PDH);
    expect(c.algo).toBe(Algo.ECDH_SHA256);
    expect(s.godh.subarray(0xa4, 0x414).every((b) => b === 0)).toBe(true);
    for (const off of [0x414, 0x61c]) {
      expect(s.godh.readUInt32LE(off)).toBe(0x1000);
      expect(s.godh.readUInt32LE(off + 4)).toBe(0);
      expect(s.godh.subarray(off + 8, off + 520).every((b) => b === 0)).toBe(true);
    }
    expect(s.godhB64.length).toBe(2780);
    expect(s.sessionB64.length).toBe(172);
  });

  for (const policy of [0, 1, 3, 5, 0x3f, 0x40, 0x1280001, 0xffffffff]) {
    it(`round trip with the PDH private key, policy 0x${policy.toString(16)}`, () => {
      const s = createSession(pdh.cert, policy);
      const { tek, tik } = openSession({ godh: s.godh, session: s.session, pdhPrivateKey: pdh.privateKey, policy });
      expect(tek.equals(s.tek)).toBe(true);
      expect(tik.equals(s.tik)).toBe(true);
      // the base64 file forms open the same
      const again = openSession({ godh: s.godhB64, session: s.sessionB64, pdhPrivateKey: pdh.pem, policy });
      expect(again.tek.equals(s.tek)).toBe(true);
    });
  }

  it('accepts a chain file (first 0x824 bytes are the PDH)', () => {
    const chain = Buffer.concat([pdh.cert, crypto.randomBytes(3 * 0x824)]);
    const s = createSession(chain, 1);
    expect(openSession({ godh: s.godh, session: s.session, pdhPrivateKey: pdh.privateKey, policy: 1 }).tik.equals(s.tik)).toBe(true);
  });

  it('deterministic with a fixed rng', () => {
    let ctr = 0;
    const rng = (n: number) => Buffer.alloc(n, ++ctr);
    const a = createSession(pdh.cert, 3, { rng });
    ctr = 0;
    const b = createSession(pdh.cert, 3, { rng });
    expect(a.godh.equals(b.godh) && a.session.equals(b.session)).toBe(true);
    expect(a.tek.equals(Buffer.alloc(16, 2))).toBe(true);
  });

  it('policy MAC covers the full 32-bit policy; a different policy is POLICY_FAILURE', () => {
    const s = createSession(pdh.cert, 0x10001);
    expectFw(() => openSession({ godh: s.godh, session: s.session, pdhPrivateKey: pdh.privateKey, policy: 0x1 }), 'POLICY_FAILURE');
    // sevctl's truncated encoding would be rejected by the firmware for this policy
    const q = createSession(pdh.cert, 0x10001, { policyEncoding: 'sevctl' });
    expectFw(() => openSession({ godh: q.godh, session: q.session, pdhPrivateKey: pdh.privateKey, policy: 0x10001 }), 'POLICY_FAILURE');
    expect(new Policy(0x10001).sevctlBytes().equals(new Policy(0x10001).bytes())).toBe(false);
    expect(new Policy(5).sevctlBytes().equals(new Policy(5).bytes())).toBe(true);
  });

  it('a different platform key cannot open the session (wrap MAC → BAD_MEASUREMENT)', () => {
    const other = makePdh();
    const s = createSession(pdh.cert, 1);
    expectFw(() => openSession({ godh: s.godh, session: s.session, pdhPrivateKey: other.privateKey, policy: 1 }), 'BAD_MEASUREMENT');
  });

  it('tampering any byte of the session blob is refused', () => {
    const s = createSession(pdh.cert, 1);
    for (let i = 0; i < 128; i++) {
      const t = Buffer.from(s.session);
      t[i]! ^= 0x01;
      expect(() => openSession({ godh: s.godh, session: t, pdhPrivateKey: pdh.privateKey, policy: 1 }), `byte ${i}`).toThrow(SessionError);
    }
  });

  it('tampering the GODH key is refused (bad point → INVALID_CERTIFICATE, other point → BAD_MEASUREMENT)', () => {
    const s = createSession(pdh.cert, 1);
    const t = Buffer.from(s.godh);
    t[0x14]! ^= 1;
    expect(() => openSession({ godh: t, session: s.session, pdhPrivateKey: pdh.privateKey, policy: 1 })).toThrow(SessionError);
    const u = Buffer.from(s.godh);
    u.writeUInt32LE(0x1002, 8); // not a PDH usage
    expectFw(() => openSession({ godh: u, session: s.session, pdhPrivateKey: pdh.privateKey, policy: 1 }), 'INVALID_CERTIFICATE');
    const v = Buffer.from(s.godh);
    v.writeUInt32LE(2, 0); // version
    expectFw(() => openSession({ godh: v, session: s.session, pdhPrivateKey: pdh.privateKey, policy: 1 }), 'INVALID_CERTIFICATE');
  });

  it('a PDH whose point is off the curve is refused before any key agreement (INVALID_CERTIFICATE)', () => {
    const bad = Buffer.from(pdh.cert);
    bad[0x14]! ^= 1; // qx, least significant byte
    for (const opts of [{}, { godhPrivateKey: Buffer.alloc(48, 7) }]) {
      expectFw(() => createSession(bad, 1, opts), 'INVALID_CERTIFICATE');
      expect(() => createSession(bad, 1, opts)).toThrow(/PDH: public key is not a valid P-384 point/);
    }
    const far = Buffer.from(pdh.cert);
    far[0x14 + 48] = 1; // a 49th coordinate byte
    expectFw(() => createSession(far, 1), 'INVALID_CERTIFICATE');
  });

  it('wrong sizes and bad base64 are typed errors', () => {
    const s = createSession(pdh.cert, 1);
    expectFw(() => openSession({ godh: s.godh.subarray(1), session: s.session, pdhPrivateKey: pdh.privateKey, policy: 1 }), 'INVALID_CERTIFICATE');
    expectFw(() => openSession({ godh: s.godh, session: s.session.subarray(0, 127), pdhPrivateKey: pdh.privateKey, policy: 1 }), 'INVALID_LEN');
    expectFw(() => openSession({ godh: '%%%', session: s.session, pdhPrivateKey: pdh.privateKey, policy: 1 }), 'INVALID_CERTIFICATE');
    expect(() => createSession(Buffer.alloc(100), 1)).toThrow(/2084|0x824/);
  });

  it('a decoded certificate must be a PDH too, as bytes must', () => {
    const notPdh = { ...decodeSevCert(pdh.cert), usage: Usage.PEK };
    expectFw(() => createSession(notPdh, 1), 'INVALID_CERTIFICATE');
    expect(() => createSession(notPdh, 1)).toThrow(/^PDH: pubkey_usage is PEK, expected PDH$/);
  });

  it('session blob fields land at their offsets', () => {
    const nonce = Buffer.alloc(16, 0xaa),
      wrapIv = Buffer.alloc(16, 0xbb);
    const s = createSession(pdh.cert, 1, { nonce, wrapIv });
    const f = decodeSession(s.session);
    expect(f.nonce.equals(nonce) && f.wrapIv.equals(wrapIv)).toBe(true);
    expect(s.session.subarray(0x30, 0x40).equals(wrapIv)).toBe(true);
  });

  it('writeSessionFiles writes the four files, keys 0600, base64 without newline', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-sess-'));
    const s = createSession(pdh.cert, 1);
    const p = writeSessionFiles(s, dir, 'guest');
    expect(fs.readFileSync(p.godh, 'utf8')).toBe(s.godhB64);
    expect(fs.readFileSync(p.session, 'utf8')).toBe(s.sessionB64);
    expect(read(p.tek).equals(s.tek) && read(p.tik).equals(s.tik)).toBe(true);
    expect(fs.statSync(p.tek).mode & 0o777).toBe(0o600);
    expect(fs.statSync(p.tik).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir).sort()).toEqual(['guest_godh.b64', 'guest_session.b64', 'guest_tek.bin', 'guest_tik.bin']);
    fs.rmSync(dir, { recursive: true });
  });

  it('real fixture PDHs (Naples, Rome): fixed GODH scalar gives a deterministic session whose secret matches an independent ECDH', async () => {
    const { deriveSessionKeys, decodeSession } = await import('../../lib/launch/index.js');
    const { sevCertPublicKey } = await import('../../lib/certs/index.js');
    const hexs = (a: number) => Buffer.from(Array.from({ length: 16 }, (_, i) => a + i));
    for (const gen of ['naples', 'rome']) {
      const pdhCert = read(`virtee-sev/tests/${gen}/pdh.cert`);
      const scalar = crypto.createHash('sha384').update(`godh-${gen}`).digest();
      const opts = { godhPrivateKey: scalar, nonce: hexs(0x00), wrapIv: hexs(0x10), tek: hexs(0x20), tik: hexs(0x30) };
      const a = createSession(pdhCert, 3, opts);
      const b = createSession(pdhCert, 3, opts);
      expect(a.godh.equals(b.godh) && a.session.equals(b.session)).toBe(true);
      // independent ECDH through KeyObjects (JWK private key from the scalar)
      const e = crypto.createECDH('secp384r1');
      e.setPrivateKey(scalar);
      const pub = e.getPublicKey();
      const priv = crypto.createPrivateKey({
        key: {
          kty: 'EC',
          crv: 'P-384',
          d: scalar.toString('base64url'),
          x: pub.subarray(1, 49).toString('base64url'),
          y: pub.subarray(49).toString('base64url'),
        },
        format: 'jwk',
      });
      const z = crypto.diffieHellman({ privateKey: priv, publicKey: sevCertPublicKey(pdhCert) });
      const keys = deriveSessionKeys(z, opts.nonce);
      const f = decodeSession(a.session);
      const c = crypto.createCipheriv('aes-128-ctr', keys.kek, opts.wrapIv);
      expect(f.wrapTk.equals(Buffer.concat([c.update(Buffer.concat([opts.tek, opts.tik])), c.final()]))).toBe(true);
      expect(f.wrapMac.equals(crypto.createHmac('sha256', keys.kik).update(f.wrapTk).digest())).toBe(true);
      expect(
        f.policyMac.equals(
          crypto
            .createHmac('sha256', opts.tik)
            .update(Buffer.from([3, 0, 0, 0]))
            .digest(),
        ),
      ).toBe(true);
      // the GODH cert carries the scalar's public point, little-endian
      expect(
        Buffer.from(a.godh.subarray(0x14, 0x14 + 48))
          .reverse()
          .equals(pub.subarray(1, 49)),
      ).toBe(true);
    }
    expect(() => createSession(read('virtee-sev/tests/rome/pdh.cert'), 1, { godhPrivateKey: Buffer.alloc(48) })).toThrow(/not a valid P-384 scalar/);
  });
});
