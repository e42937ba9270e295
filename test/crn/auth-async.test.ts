/**
 * The CRN's asynchronous authentication: the wallet signature of a new
 * X-SignedPubKey is recovered on a worker thread (EthRecoverWorker), and it
 * must answer exactly as the synchronous verifier does, share one recovery
 * between requests that bring the same new header at once, and fail cleanly.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AuthError, createAuthSession, SignedPubKeyCache, verifyAuthHeaders, verifyAuthHeadersAsync, type VerifyRequest } from '../../lib/aleph/auth.js';
import { EthRecoverWorker } from '../../lib/aleph/recover-worker.js';
import { ethRecoverAddress, EthWallet, SolWallet, WalletError } from '../../lib/aleph/wallet.js';

const worker = new EthRecoverWorker();
afterAll(() => worker.close());

const domain = 'crn.example.org';
const vmPath = `/control/machine/${'cd'.repeat(32)}/confidential/measurement`;

function request(h: Record<string, string>, method = 'GET', p = vmPath): VerifyRequest {
  return { method, path: p, headers: Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v])) };
}

/** The outcome of a verification as data: the caller, or the AuthError's status and reason. */
async function outcome(fn: () => unknown): Promise<unknown> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof AuthError) return { status: e.status, reason: e.reason };
    throw e;
  }
}

function flipHex(s: string, at: number): string {
  return s.slice(0, at) + (s[at] === '0' ? '1' : '0') + s.slice(at + 1);
}

describe('EthRecoverWorker', () => {
  it('recovers the same address as ethRecoverAddress, for many signatures at once', async () => {
    const cases = Array.from({ length: 24 }, (_, i) => {
      const w = EthWallet.generate();
      const m = Buffer.from(`payload ${i}`);
      return { w, m, sig: w.signPayload(m) };
    });
    const got = await Promise.all(cases.map((c) => worker.recover(c.m, c.sig)));
    expect(got).toEqual(cases.map((c) => c.w.address));
    expect(got).toEqual(cases.map((c) => ethRecoverAddress(c.m, c.sig)));
    expect(worker.offThread).toBe(true);
  });

  it('another message recovers another address; a malformed signature is a WalletError', async () => {
    const w = EthWallet.generate();
    const sig = w.signPayload(Buffer.from('a'));
    expect(await worker.recover(Buffer.from('b'), sig)).not.toBe(w.address);
    const badV = Uint8Array.from(sig);
    badV[64] = 29;
    await expect(worker.recover(Buffer.from('a'), badV)).rejects.toBeInstanceOf(WalletError);
    await expect(worker.recover(Buffer.from('a'), sig.subarray(0, 64))).rejects.toBeInstanceOf(WalletError);
    // r = 0 is not a signature: the worker's recovery fails and says so
    const zeroR = Uint8Array.from(sig);
    zeroR.fill(0, 0, 32);
    await expect(worker.recover(Buffer.from('a'), zeroR)).rejects.toThrow(/does not recover/);
  });

  it('after close() a call waiting fails, and later calls still answer (in-thread)', async () => {
    const w = new EthRecoverWorker();
    const wallet = EthWallet.generate();
    const m = Buffer.from('x');
    expect(await w.recover(m, wallet.signPayload(m))).toBe(wallet.address);
    const waiting = w.recover(m, wallet.signPayload(m));
    await w.close();
    const r = await waiting.then(
      (a) => ({ ok: a }),
      (e: unknown) => ({ err: e }),
    );
    // it either finished before the close or failed with a WalletError; never hangs or throws anything else
    if ('err' in r) expect(r.err).toBeInstanceOf(WalletError);
    else expect(r.ok).toBe(wallet.address);
    expect(await w.recover(m, wallet.signPayload(m))).toBe(wallet.address);
  });
});

describe('verifyAuthHeadersAsync answers as verifyAuthHeaders', () => {
  for (const make of [() => EthWallet.generate(), () => SolWallet.generate()]) {
    const wallet = make();
    it(`${wallet.chain}: good, tampered and mis-addressed requests`, async () => {
      const s = createAuthSession(wallet, { domain });
      const good = s.headers('GET', vmPath);
      const pub = JSON.parse(good['X-SignedPubKey']!) as { payload: string; signature: string };
      const op = JSON.parse(good['X-SignedOperation']!) as { payload: string; signature: string };
      const cases: VerifyRequest[] = [
        request(good),
        request(good, 'POST'),
        request(good, 'GET', '/control/machine/other'),
        request({ ...good, 'X-SignedPubKey': JSON.stringify({ ...pub, signature: flipHex(pub.signature, 12) }) }),
        request({ ...good, 'X-SignedOperation': JSON.stringify({ ...op, signature: flipHex(op.signature, 3) }) }),
        request({ ...good, 'X-SignedPubKey': 'not json' }),
        request({ 'X-SignedOperation': good['X-SignedOperation']! }),
      ];
      for (const [i, req] of cases.entries()) {
        const sync = await outcome(() => verifyAuthHeaders(req, { domain }));
        const async = await outcome(() => verifyAuthHeadersAsync(req, { domain, recoverEth: (m, g) => worker.recover(m, g) }));
        expect(async, `case ${i}`).toEqual(sync);
      }
      expect(await outcome(() => verifyAuthHeadersAsync(request(good), { domain: 'other.example', recoverEth: (m, g) => worker.recover(m, g) }))).toMatchObject(
        {
          status: 401,
        },
      );
    });
  }
});

describe('verifyAuthHeadersAsync with a cache', () => {
  it('requests bringing the same new header at once share one recovery; the result is cached', async () => {
    const wallet = EthWallet.generate();
    const s = createAuthSession(wallet, { domain });
    const cache = new SignedPubKeyCache();
    let recoveries = 0;
    const recoverEth = (m: Uint8Array, g: Uint8Array) => {
      recoveries++;
      return worker.recover(m, g);
    };
    const callers = await Promise.all(
      Array.from({ length: 8 }, () => verifyAuthHeadersAsync(request(s.headers('GET', vmPath)), { domain, cache, recoverEth })),
    );
    expect(callers.every((c) => c.address === wallet.address)).toBe(true);
    expect(recoveries).toBe(1);
    await verifyAuthHeadersAsync(request(s.headers('GET', vmPath)), { domain, cache, recoverEth });
    expect(recoveries).toBe(1);
    expect(cache.size).toBe(1);
  });

  it('a header whose signature fails is not cached and every try is refused', async () => {
    const wallet = EthWallet.generate();
    const good = createAuthSession(wallet, { domain }).headers('GET', vmPath);
    const pub = JSON.parse(good['X-SignedPubKey']!) as { payload: string; signature: string };
    const bad = request({ ...good, 'X-SignedPubKey': JSON.stringify({ ...pub, signature: flipHex(pub.signature, 20) }) });
    const cache = new SignedPubKeyCache();
    let recoveries = 0;
    const recoverEth = (m: Uint8Array, g: Uint8Array) => {
      recoveries++;
      return worker.recover(m, g);
    };
    for (let i = 0; i < 2; i++) {
      expect(await outcome(() => verifyAuthHeadersAsync(bad, { domain, cache, recoverEth }))).toEqual({ status: 401, reason: 'Invalid signature' });
    }
    expect(recoveries).toBe(2);
    expect(cache.size).toBe(0);
  });

  it('a recovery that fails (worker lost) is a 401, not a crash', async () => {
    const wallet = EthWallet.generate();
    const req = request(createAuthSession(wallet, { domain }).headers('GET', vmPath));
    const r = await outcome(() => verifyAuthHeadersAsync(req, { domain, recoverEth: () => Promise.reject(new WalletError('the recovery worker exited')) }));
    expect(r).toEqual({ status: 401, reason: 'Invalid signature' });
  });
});
