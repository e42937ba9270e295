import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import { AuthError, createAuthSession, isOwner, signOperation, SignedPubKeyCache, verifyAuthHeaders, type VerifyRequest } from '../../lib/aleph/auth.js';
import { base58Decode, base58Encode, ethChecksumAddress, ethRecoverAddress, EthWallet, parseWalletKey, SolWallet, solVerify } from '../../lib/aleph/wallet.js';

// Real headers published in aleph-vm doc/operator_auth.md (WebSocket example):
// an Ethereum wallet signed the ephemeral key, the key signed a GET / for localhost.
const DOC = {
  pubkeyPayload:
    '7b227075626b6579223a207b22637276223a2022502d323536222c20226b7479223a20224543222c202278223a20223962446f34754949686b735a5272677a31477972325050656d4334364e735f4730577144364d4d6a774673222c202279223a20226f48343342786c7854334f3065733336685967713143372d61325a535a71456d5f6b56356e636c79667a59227d2c2022616c67223a20224543445341222c2022646f6d61696e223a20226c6f63616c686f7374222c202261646472657373223a2022307862413236623135333539314434363230666432413734304130463165463730644164363532336230222c202265787069726573223a2022323031302d31322d32365431373a30353a35355a227d',
  pubkeySig: '0xea99ef5f1a10f2d103f94dce4f8650730315246e6d15cf9e5862c11adfd6482703cd1ec684a4f3dffb36ae5c4a57b08a47108fe55e3b2454e45f6e63342e0f471b',
  opPayload:
    '7b2274696d65223a2022323031302d31322d32355431373a30353a35355a222c20226d6574686f64223a2022474554222c202270617468223a20222f222c2022646f6d61696e223a20226c6f63616c686f7374227d',
  opSig: '6f737654cd00e4d4155d387509978e7a9a4d27f5b59c9492ac1dec7b09f9aecc58c9365526bbddd6211b65f40f4956c50ab26f395f7170ce1698c11e28e25d3a',
  address: '0xbA26b153591D4620fd2A740A0F1eF70dAd6523b0',
};

function docRequest(over: Partial<{ pubkey: object; op: object; method: string; path: string }> = {}): VerifyRequest {
  return {
    method: over.method ?? 'GET',
    path: over.path ?? '/',
    headers: {
      'x-signedpubkey': JSON.stringify(over.pubkey ?? { payload: DOC.pubkeyPayload, signature: DOC.pubkeySig }),
      'x-signedoperation': JSON.stringify(over.op ?? { payload: DOC.opPayload, signature: DOC.opSig }),
    },
  };
}
const DOC_NOW = new Date('2010-12-25T17:06:30Z');

function expectAuthError(fn: () => unknown, status: number, reason: RegExp | string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AuthError);
    expect((e as AuthError).status).toBe(status);
    if (typeof reason === 'string') expect((e as AuthError).reason).toBe(reason);
    else expect((e as AuthError).reason).toMatch(reason);
    return;
  }
  throw new Error('expected an AuthError');
}

describe('aleph-vm documentation vector', () => {
  it('verifies the published Ethereum-signed key and ES256 operation', () => {
    const caller = verifyAuthHeaders(docRequest(), { domain: 'localhost', now: DOC_NOW });
    expect(caller.address).toBe(DOC.address);
    expect(caller.chain).toBe('ETH');
  });

  it('recovers the documented address from the personal_sign signature', () => {
    const addr = ethRecoverAddress(Buffer.from(DOC.pubkeyPayload, 'hex'), Buffer.from(DOC.pubkeySig.slice(2), 'hex'));
    expect(addr).toBe(DOC.address);
  });

  it('rejects the same headers once the key has expired (401 Token expired)', () => {
    expectAuthError(() => verifyAuthHeaders(docRequest(), { domain: 'localhost', now: new Date('2010-12-27T00:00:00Z') }), 401, 'Token expired');
  });

  it('rejects an operation more than 2 minutes old (400)', () => {
    expectAuthError(
      () => verifyAuthHeaders(docRequest(), { domain: 'localhost', now: new Date('2010-12-25T17:08:00Z') }),
      400,
      'Invalid X-SignedOperation fields',
    );
  });

  it('rejects another domain, path or method (401)', () => {
    expectAuthError(() => verifyAuthHeaders(docRequest(), { domain: 'crn.example', now: DOC_NOW }), 401, /^Invalid domain/);
    expectAuthError(() => verifyAuthHeaders(docRequest({ path: '/control/x' }), { domain: 'localhost', now: DOC_NOW }), 401, /^Invalid path/);
    expectAuthError(() => verifyAuthHeaders(docRequest({ method: 'POST' }), { domain: 'localhost', now: DOC_NOW }), 401, /^Invalid method/);
  });

  it('rejects a flipped bit in the wallet signature or the operation signature', () => {
    const badWallet = DOC.pubkeySig.slice(0, 10) + (DOC.pubkeySig[10] === '0' ? '1' : '0') + DOC.pubkeySig.slice(11);
    expectAuthError(
      () => verifyAuthHeaders(docRequest({ pubkey: { payload: DOC.pubkeyPayload, signature: badWallet } }), { domain: 'localhost', now: DOC_NOW }),
      401,
      'Invalid signature',
    );
    const badOp = (DOC.opSig[0] === 'a' ? 'b' : 'a') + DOC.opSig.slice(1);
    expectAuthError(
      () => verifyAuthHeaders(docRequest({ op: { payload: DOC.opPayload, signature: badOp } }), { domain: 'localhost', now: DOC_NOW }),
      401,
      'Signature could not verified',
    );
  });

  it('rejects a payload whose address was changed after signing', () => {
    const json = Buffer.from(DOC.pubkeyPayload, 'hex')
      .toString()
      .replace(DOC.address, '0x' + '11'.repeat(20));
    expectAuthError(
      () =>
        verifyAuthHeaders(docRequest({ pubkey: { payload: Buffer.from(json).toString('hex'), signature: DOC.pubkeySig } }), {
          domain: 'localhost',
          now: DOC_NOW,
        }),
      401,
      'Invalid signature',
    );
  });
});

describe('verified-key cache (one wallet check per X-SignedPubKey)', () => {
  const header = () => docRequest().headers['x-signedpubkey'] as string;

  it('keeps a verified key by its exact header text and still checks every operation', () => {
    const cache = new SignedPubKeyCache();
    expect(verifyAuthHeaders(docRequest(), { domain: 'localhost', now: DOC_NOW, cache }).address).toBe(DOC.address);
    expect(cache.size).toBe(1);
    expect(cache.get(header(), DOC_NOW.getTime())?.payload.address).toBe(DOC.address);
    // A cached key does not make a bad operation signature, path or domain pass.
    const badOp = (DOC.opSig[0] === 'a' ? 'b' : 'a') + DOC.opSig.slice(1);
    expectAuthError(
      () => verifyAuthHeaders(docRequest({ op: { payload: DOC.opPayload, signature: badOp } }), { domain: 'localhost', now: DOC_NOW, cache }),
      401,
      'Signature could not verified',
    );
    expectAuthError(() => verifyAuthHeaders(docRequest({ path: '/control/x' }), { domain: 'localhost', now: DOC_NOW, cache }), 401, /^Invalid path/);
    expectAuthError(() => verifyAuthHeaders(docRequest(), { domain: 'crn.example', now: DOC_NOW, cache }), 401, /^Invalid domain/);
  });

  it('a header that differs in any byte is verified afresh (a flipped wallet signature is refused)', () => {
    const cache = new SignedPubKeyCache();
    verifyAuthHeaders(docRequest(), { domain: 'localhost', now: DOC_NOW, cache });
    const badWallet = DOC.pubkeySig.slice(0, 10) + (DOC.pubkeySig[10] === '0' ? '1' : '0') + DOC.pubkeySig.slice(11);
    expectAuthError(
      () => verifyAuthHeaders(docRequest({ pubkey: { payload: DOC.pubkeyPayload, signature: badWallet } }), { domain: 'localhost', now: DOC_NOW, cache }),
      401,
      'Invalid signature',
    );
    // Same JSON, other spacing: other bytes, its own entry (only after it verified).
    const spaced = JSON.stringify({ payload: DOC.pubkeyPayload, signature: DOC.pubkeySig }, null, 1);
    const req = docRequest();
    req.headers['x-signedpubkey'] = spaced;
    verifyAuthHeaders(req, { domain: 'localhost', now: DOC_NOW, cache });
    expect(cache.size).toBe(2);
  });

  it('a cached key stops working when it expires (401 Token expired)', () => {
    const cache = new SignedPubKeyCache();
    verifyAuthHeaders(docRequest(), { domain: 'localhost', now: DOC_NOW, cache });
    const later = new Date('2010-12-27T00:00:00Z');
    expectAuthError(() => verifyAuthHeaders(docRequest(), { domain: 'localhost', now: later, cache }), 401, 'Token expired');
    expect(cache.get(header(), later.getTime())).toBeUndefined();
  });

  it('holds at most its bound, dropping the oldest', () => {
    const cache = new SignedPubKeyCache(1);
    verifyAuthHeaders(docRequest(), { domain: 'localhost', now: DOC_NOW, cache });
    const spaced = JSON.stringify({ payload: DOC.pubkeyPayload, signature: DOC.pubkeySig }, null, 1);
    const req = docRequest();
    req.headers['x-signedpubkey'] = spaced;
    verifyAuthHeaders(req, { domain: 'localhost', now: DOC_NOW, cache });
    expect(cache.size).toBe(1);
    expect(cache.get(header(), DOC_NOW.getTime())).toBeUndefined();
    expect(cache.get(spaced, DOC_NOW.getTime())).toBeDefined();
  });
});

describe('wallets', () => {
  it('derives the well-known address of private key 1 (EIP-55)', () => {
    const w = EthWallet.fromPrivateKey('0x' + '00'.repeat(31) + '01');
    expect(w.address).toBe('0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf');
  });

  it('EIP-55 checksum matches the spec examples', () => {
    expect(ethChecksumAddress('0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed')).toBe('0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed');
    expect(ethChecksumAddress('0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359')).toBe('0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359');
  });

  it('Ethereum personal_sign round trip recovers the signer, any message change does not', () => {
    const w = EthWallet.generate();
    const msg = Buffer.from('{"hello": "crn"}');
    const sig = w.signPayload(msg);
    expect(sig.length).toBe(65);
    expect([27, 28]).toContain(sig[64]);
    expect(ethRecoverAddress(msg, sig)).toBe(w.address);
    expect(ethRecoverAddress(Buffer.from('{"hello": "crm"}'), sig)).not.toBe(w.address);
    const v01 = Uint8Array.from(sig);
    v01[64] = sig[64]! - 27;
    expect(ethRecoverAddress(msg, v01)).toBe(w.address);
  });

  it('base58 round trips, keeps leading zeros, rejects bad characters', () => {
    for (const b of [Buffer.alloc(0), Buffer.from([0, 0, 1, 2]), crypto.randomBytes(32)]) {
      if (b.length === 0) continue;
      expect(Buffer.from(base58Decode(base58Encode(b)))).toEqual(b);
    }
    expect(base58Encode(Buffer.from([0, 0, 0x39]))).toBe('11z');
    expect(() => base58Decode('0OIl')).toThrow();
  });

  it('Solana wallet signs the ASCII hex of the payload with ed25519', () => {
    const w = SolWallet.generate();
    const payload = Buffer.from('{"a":1}');
    const sig = w.signPayload(payload);
    expect(solVerify(w.address, Buffer.from(payload.toString('hex'), 'ascii'), sig)).toBe(true);
    expect(solVerify(w.address, payload, sig)).toBe(false);
    expect(solVerify(SolWallet.generate().address, Buffer.from(payload.toString('hex'), 'ascii'), sig)).toBe(false);
  });

  it('parses key files: hex Ethereum key, solana-keygen JSON array; rejects junk', () => {
    const eth = parseWalletKey('0x' + '00'.repeat(31) + '01\n');
    expect(eth.chain).toBe('ETH');
    const seed = crypto.randomBytes(32);
    const probe = SolWallet.fromSecretKey(seed);
    const full = Buffer.concat([seed, base58Decode(probe.address)]);
    const sol = parseWalletKey(JSON.stringify([...full]));
    expect(sol.chain).toBe('SOL');
    expect(sol.address).toBe(probe.address);
    const wrongPub = Buffer.from(full);
    wrongPub[40] ^= 1;
    expect(() => parseWalletKey(JSON.stringify([...wrongPub]))).toThrow(/does not match/);
    expect(parseWalletKey(`${base58Encode(full)}\n`).address).toBe(probe.address);
    expect(() => parseWalletKey('hello')).toThrow(/expected an Ethereum private key/);
  });
});

describe('round trips and tampering', () => {
  const domain = 'crn.example.org';
  const path = '/control/machine/' + 'ab'.repeat(32) + '/confidential/measurement';

  for (const make of [() => EthWallet.generate(), () => SolWallet.generate()]) {
    const wallet = make();
    describe(wallet.chain, () => {
      const session = createAuthSession(wallet, { domain });
      const req = (h: Record<string, string>, method = 'GET', p = path): VerifyRequest => ({
        method,
        path: p,
        headers: Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v])),
      });

      it('verifies and returns the wallet address', () => {
        const caller = verifyAuthHeaders(req(session.headers('GET', path)), { domain });
        expect(caller).toEqual({ address: wallet.address, chain: wallet.chain });
        expect(isOwner(caller, wallet.chain === 'ETH' ? wallet.address.toLowerCase() : wallet.address)).toBe(true);
        expect(isOwner(caller, EthWallet.generate().address)).toBe(false);
      });

      it('pubkey payload has aleph fields', () => {
        const outer = JSON.parse(session.signedPubKey);
        expect(outer.signature).toMatch(/^0x[0-9a-f]+$/);
        const p = JSON.parse(Buffer.from(outer.payload, 'hex').toString());
        expect(p).toMatchObject({ alg: 'ECDSA', domain, address: wallet.address, chain: wallet.chain, pubkey: { kty: 'EC', crv: 'P-256' } });
        expect(p.expires).toMatch(/Z$/);
        expect(Object.keys(p.pubkey).sort()).toEqual(['crv', 'kty', 'x', 'y']);
      });

      it('operation signature is 64 bytes raw r‖s over the hex payload', () => {
        const h = session.headers('POST', path);
        const op = JSON.parse(h['X-SignedOperation']!);
        expect(op.signature).toMatch(/^[0-9a-f]{128}$/);
        expect(JSON.parse(Buffer.from(op.payload, 'hex').toString())).toMatchObject({ method: 'POST', path, domain });
      });

      it('rejects missing and malformed headers with 400', () => {
        const h = session.headers('GET', path);
        expectAuthError(() => verifyAuthHeaders(req({ 'X-SignedOperation': h['X-SignedOperation']! }), { domain }), 400, 'Missing X-SignedPubKey header');
        expectAuthError(() => verifyAuthHeaders(req({ 'X-SignedPubKey': h['X-SignedPubKey']! }), { domain }), 400, 'Missing X-SignedOperation header');
        expectAuthError(() => verifyAuthHeaders(req({ ...h, 'X-SignedPubKey': '{nope' }), { domain }), 400, 'Invalid X-SignedPubKey format');
        expectAuthError(
          () => verifyAuthHeaders(req({ ...h, 'X-SignedPubKey': '{"payload":"zz","signature":"0x00"}' }), { domain }),
          400,
          'Invalid X-SignedPubKey data',
        );
        expectAuthError(() => verifyAuthHeaders(req({ ...h, 'X-SignedOperation': '[]' }), { domain }), 400, 'Invalid X-SignedOperation format');
        expectAuthError(
          () => verifyAuthHeaders(req({ ...h, 'X-SignedOperation': '{"payload":"7b7d","signature":"00"}' }), { domain }),
          400,
          'Invalid X-SignedOperation fields',
        );
        expectAuthError(() => verifyAuthHeaders(req({ ...h, 'X-SignedPubKey': 'x'.repeat(9000) }), { domain }), 400, 'Invalid X-SignedPubKey format');
        expectAuthError(() => verifyAuthHeaders(req({ ...h, 'X-SignedOperation': 'x'.repeat(9000) }), { domain }), 400, 'Invalid X-SignedOperation format');
      });

      it('rejects wrong method, path (even a sibling VM), domain', () => {
        const h = session.headers('GET', path);
        expectAuthError(() => verifyAuthHeaders(req(h, 'POST'), { domain }), 401, /^Invalid method/);
        expectAuthError(() => verifyAuthHeaders(req(h, 'GET', path.replace('ab', 'cd')), { domain }), 401, /^Invalid path/);
        expectAuthError(() => verifyAuthHeaders(req(h), { domain: 'other.example.org' }), 401, /^Invalid domain/);
      });

      it('enforces the ±2 minute window on the operation time', () => {
        const now = new Date();
        const ok = session.headers('GET', path, new Date(now.getTime() - 100_000));
        expect(verifyAuthHeaders(req(ok), { domain, now }).address).toBe(wallet.address);
        const old = session.headers('GET', path, new Date(now.getTime() - 121_000));
        expectAuthError(() => verifyAuthHeaders(req(old), { domain, now }), 400, 'Invalid X-SignedOperation fields');
        const future = session.headers('GET', path, new Date(now.getTime() + 121_000));
        expectAuthError(() => verifyAuthHeaders(req(future), { domain, now }), 400, 'Invalid X-SignedOperation fields');
      });

      it('rejects an expired key', () => {
        const s = createAuthSession(wallet, { domain, lifetimeMs: 1000 });
        expectAuthError(() => verifyAuthHeaders(req(s.headers('GET', path)), { domain, now: new Date(Date.now() + 5000) }), 401, 'Token expired');
      });

      it('rejects an operation signed by another ephemeral key', () => {
        const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
        const h = { 'X-SignedPubKey': session.signedPubKey, 'X-SignedOperation': signOperation(other, { method: 'GET', path, domain }) };
        expectAuthError(() => verifyAuthHeaders(req(h), { domain }), 401, 'Signature could not verified');
      });

      it('rejects an operation payload altered after signing', () => {
        const h = session.headers('GET', path);
        const op = JSON.parse(h['X-SignedOperation']!);
        const altered = Buffer.from(Buffer.from(op.payload, 'hex').toString().replace(path, path.replace('measurement', 'inject_secre'))).toString('hex');
        const h2 = { ...h, 'X-SignedOperation': JSON.stringify({ payload: altered, signature: op.signature }) };
        expectAuthError(() => verifyAuthHeaders(req(h2, 'GET', path.replace('measurement', 'inject_secre')), { domain }), 401, 'Signature could not verified');
      });

      it('rejects a key payload re-signed by a different wallet claiming this address', () => {
        const thief = wallet.chain === 'ETH' ? EthWallet.generate() : SolWallet.generate();
        const outer = JSON.parse(session.signedPubKey);
        const sig = Buffer.from(thief.signPayload(Buffer.from(outer.payload, 'hex'))).toString('hex');
        const h = { ...session.headers('GET', path), 'X-SignedPubKey': JSON.stringify({ payload: outer.payload, signature: `0x${sig}` }) };
        expectAuthError(() => verifyAuthHeaders(req(h), { domain }), 401, 'Invalid signature');
      });

      it('rejects a key payload for an unsupported chain', () => {
        const outer = JSON.parse(session.signedPubKey);
        const p = JSON.parse(Buffer.from(outer.payload, 'hex').toString());
        p.chain = 'AVAX';
        const bytes = Buffer.from(JSON.stringify(p));
        const h = {
          ...session.headers('GET', path),
          'X-SignedPubKey': JSON.stringify({ payload: bytes.toString('hex'), signature: `0x${Buffer.from(wallet.signPayload(bytes)).toString('hex')}` }),
        };
        expectAuthError(() => verifyAuthHeaders(req(h), { domain }), 400, 'Unsupported chain');
      });

      it('rejects a key issued for another domain, whatever its type; accepts one without a domain (as aleph)', () => {
        const outer = JSON.parse(session.signedPubKey);
        const withDomain = (d: unknown) => {
          const p = JSON.parse(Buffer.from(outer.payload, 'hex').toString());
          if (d === undefined) delete p.domain;
          else p.domain = d;
          const bytes = Buffer.from(JSON.stringify(p));
          return {
            ...session.headers('GET', path),
            'X-SignedPubKey': JSON.stringify({ payload: bytes.toString('hex'), signature: `0x${Buffer.from(wallet.signPayload(bytes)).toString('hex')}` }),
          };
        };
        for (const d of ['other.test', [domain], { domain }, null, 1]) {
          expectAuthError(
            () => verifyAuthHeaders(req(withDomain(d)), { domain }),
            401,
            `Invalid domain: Signed: '${typeof d === 'string' ? d : JSON.stringify(d)}' != '${domain}'`,
          );
        }
        expect(verifyAuthHeaders(req(withDomain(undefined)), { domain }).address).toBe(wallet.address);
      });

      it('rejects a JWK that is not a P-256 point', () => {
        const outer = JSON.parse(session.signedPubKey);
        const p = JSON.parse(Buffer.from(outer.payload, 'hex').toString());
        p.pubkey.y = Buffer.alloc(32, 7).toString('base64url');
        const bytes = Buffer.from(JSON.stringify(p));
        const h = {
          ...session.headers('GET', path),
          'X-SignedPubKey': JSON.stringify({ payload: bytes.toString('hex'), signature: `0x${Buffer.from(wallet.signPayload(bytes)).toString('hex')}` }),
        };
        expectAuthError(() => verifyAuthHeaders(req(h), { domain }), 400, 'Invalid X-SignedPubKey data');
      });
    });
  }
});
