import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { simulatorCaChain } from '../../lib/sim/ca-chain.js';
import {
  Algo,
  KdsError,
  Usage,
  cachedCek,
  createCaCert,
  createSevCert,
  encodeCaCert,
  encodeSevCert,
  fetchCek,
  fullChainFor,
  parseRetryAfter,
  signCaCert,
  signSevCert,
  platformSevChain,
  type FetchLike,
  decodeFullChain,
  verifyChain,
  SEV_CHAIN_SIZE,
} from '../../lib/certs/index.js';
import { derived, realCert, testRsa } from './fixtures.js';

const ID = Buffer.from('0123456789abcdef'.repeat(4), 'hex');
const ID_HEX = ID.toString('hex').toUpperCase();

function res(status: number, body: Buffer = Buffer.alloc(0), headers: Record<string, string> = {}) {
  return {
    ok: status >= 200 && status < 300,
    status,
    headers: { get: (n: string) => headers[n.toLowerCase()] ?? null },
    arrayBuffer: async () => body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer,
  };
}

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-kds-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('AMD KDS CEK', () => {
  it('retries 429 and 5xx honouring Retry-After, then caches by chip id', async () => {
    const answers = [res(429, undefined, { 'retry-after': '2' }), res(503), res(200, realCert('rome', 'cek'))];
    const urls: string[] = [];
    const sleeps: number[] = [];
    const fetch: FetchLike = async (url) => {
      urls.push(url);
      return answers.shift()!;
    };
    const cek = await fetchCek(ID, { fetch, cacheDir: dir, sleep: async (ms) => void sleeps.push(ms) });
    expect(cek.equals(realCert('rome', 'cek'))).toBe(true);
    expect(urls).toEqual(Array(3).fill(`https://kdsintf.amd.com/cek/id/${ID_HEX}`));
    expect(sleeps).toEqual([2000, 5000]);
    expect(fs.readFileSync(path.join(dir, `cek-${ID_HEX}.cert`)).equals(cek)).toBe(true);
    // now offline works, and no fetch is made
    const again = await fetchCek(ID, {
      fetch: async () => {
        throw new Error('network used');
      },
      cacheDir: dir,
      offline: true,
    });
    expect(again.equals(cek)).toBe(true);
  });

  it('gives up after the attempts, and does not retry other 4xx', async () => {
    let n = 0;
    const always500: FetchLike = async () => (n++, res(500));
    await expect(fetchCek(ID, { fetch: always500, cacheDir: dir, sleep: async () => {} })).rejects.toThrow(/HTTP 500/);
    expect(n).toBe(4);
    n = 0;
    const notFound: FetchLike = async () => (n++, res(404));
    const err = await fetchCek(ID, { fetch: notFound, cacheDir: dir, sleep: async () => {} }).catch((e) => e);
    expect(err).toBeInstanceOf(KdsError);
    expect(err.status).toBe(404);
    expect(n).toBe(1);
    expect(cachedCek(ID, { cacheDir: dir })).toBeUndefined();
  });

  it('times out a hanging request, and caps Retry-After', async () => {
    const hang: FetchLike = (_u, init) => new Promise((_r, rej) => init.signal.addEventListener('abort', () => rej(init.signal.reason)));
    await expect(fetchCek(ID, { fetch: hang, cacheDir: dir, timeoutMs: 50 })).rejects.toThrow(/timed out after 50 ms/);
    const sleeps: number[] = [];
    const answers = [res(429, undefined, { 'retry-after': '3600' }), res(200, realCert('naples', 'cek'))];
    await fetchCek(ID, { fetch: async () => answers.shift()!, cacheDir: false, maxRetryAfterMs: 1000, sleep: async (ms) => void sleeps.push(ms) });
    expect(sleeps).toEqual([1000]);
    expect(parseRetryAfter(new Date(Date.now() + 10_000).toUTCString())).toBeGreaterThan(8000);
    expect(parseRetryAfter('soon')).toBe(5000);
  });

  it('refuses a body that is not a CEK, and a damaged cache entry is refetched', async () => {
    await expect(fetchCek(ID, { fetch: async () => res(200, realCert('rome', 'pek')), cacheDir: dir })).rejects.toThrow(/not a CEK.*pubkey_usage is PEK/);
    fs.writeFileSync(path.join(dir, `cek-${ID_HEX}.cert`), Buffer.alloc(10));
    let fetched = 0;
    const cek = await fetchCek(ID, { fetch: async () => (fetched++, res(200, realCert('rome', 'cek'))), cacheDir: dir });
    expect(fetched).toBe(1);
    expect(cek.length).toBe(0x824);
    await expect(fetchCek(ID, { cacheDir: false, offline: true })).rejects.toThrow(/offline/);
  });
});

describe('platform chains', () => {
  const naples = {
    pdh: realCert('naples', 'pdh'),
    pek: realCert('naples', 'pek'),
    oca: realCert('naples', 'oca'),
    cek: realCert('naples', 'cek'),
  };
  const fakePlatform = (certs: typeof naples) => ({ exportCerts: async () => certs, getId: async () => ID });

  it('firmware CEK already signed by an AMD ASK: no KDS, built-in roots', async () => {
    const r = await fullChainFor(fakePlatform(naples), { kds: { offline: true, cacheDir: false } });
    expect(r.cekSource).toBe('firmware');
    expect(r.caSource).toBe('builtin');
    expect(r.generation).toBe('naples');
    expect(r.bytes.equals(derived('naples', 'full_chain'))).toBe(true);
  });

  it('unsigned firmware CEK is replaced by the KDS CEK', async () => {
    const unsignedCek = Buffer.from(naples.cek);
    unsignedCek.fill(0, 0x41c, 0x41c + 512);
    unsignedCek.writeUInt32LE(Usage.INV, 0x414);
    unsignedCek.writeUInt32LE(0, 0x418);
    const fetch: FetchLike = async (url) => (expect(url).toContain(ID_HEX), res(200, naples.cek));
    const p = fakePlatform({ ...naples, cek: unsignedCek });
    const sev = await platformSevChain(p, { kds: { fetch, cacheDir: dir } });
    expect(sev.cekSource).toBe('kds');
    const r = await fullChainFor(p, { kds: { offline: true, cacheDir: dir } });
    expect(r.cekSource).toBe('kds');
    expect(r.bytes.equals(derived('naples', 'full_chain'))).toBe(true);
    await expect(fullChainFor(p, { kds: { offline: true, cacheDir: false } })).rejects.toThrow(KdsError);
  });

  it("simulator state dir: its own ASK/ARK when they sign the CEK; such a chain fails against AMD's roots", async () => {
    const ark = testRsa('ark', 2048);
    const ask = testRsa('ask', 2048);
    const arkCert = signCaCert(createCaCert({ usage: Usage.ARK, publicKey: ark.publicKey }), { privateKey: ark.privateKey });
    const askCert = signCaCert(createCaCert({ usage: Usage.ASK, publicKey: ask.publicKey, certifyingId: arkCert.keyId }), { privateKey: ark.privateKey });
    fs.writeFileSync(path.join(dir, 'ark.cert'), encodeCaCert(arkCert));
    fs.writeFileSync(path.join(dir, 'ask.cert'), encodeCaCert(askCert));
    const ec = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const [cek, oca, pek, pdh] = [ec(), ec(), ec(), ec()];
    const sign = (c: ReturnType<typeof createSevCert>, usage: number, key: crypto.KeyObject, algo: number = Algo.ECDSA_SHA256) =>
      signSevCert(c, 'first-empty', { signerUsage: usage, signerAlgo: algo, privateKey: key });
    const cekC = sign(createSevCert({ usage: Usage.CEK, publicKey: cek.publicKey }), Usage.ASK, ask.privateKey, Algo.RSA_SHA256);
    const ocaC = sign(createSevCert({ usage: Usage.OCA, publicKey: oca.publicKey }), Usage.OCA, oca.privateKey);
    const pekC = sign(sign(createSevCert({ usage: Usage.PEK, publicKey: pek.publicKey }), Usage.OCA, oca.privateKey), Usage.CEK, cek.privateKey);
    const pdhC = sign(createSevCert({ usage: Usage.PDH, publicKey: pdh.publicKey }), Usage.PEK, pek.privateKey);
    const p = fakePlatform({ pdh: encodeSevCert(pdhC), pek: encodeSevCert(pekC), oca: encodeSevCert(ocaC), cek: encodeSevCert(cekC) });
    const r = await fullChainFor(p, { testCa: simulatorCaChain(dir), kds: { offline: true, cacheDir: false } });
    expect(r.caSource).toBe('simulator');
    expect(r.cekSource).toBe('firmware');
    expect(r.bytes.length).toBe(SEV_CHAIN_SIZE + 2 * 832);
    const full = decodeFullChain(r.bytes);
    expect(verifyChain({ sev: full.sev, ca: full.ca }).ok).toBe(true);
    const amd = verifyChain({ sev: full.sev });
    expect(amd.ok).toBe(false);
    expect(amd.caSource).toBe('none');
    // Without the state dir there is no root for this CEK.
    await expect(fullChainFor(p, { kds: { offline: true, cacheDir: false } })).rejects.toThrow(/offline/);
  });
});

describe('AMD KDS transport: a deadline on every byte', () => {
  it('a real server that sends its headers and then one byte a second fails at the deadline', async () => {
    const http = await import('node:http');
    const timers: NodeJS.Timeout[] = [];
    const server = http.createServer((_q, r) => {
      r.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': '2084' });
      timers.push(setInterval(() => r.write('x'), 1000));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as import('node:net').AddressInfo).port;
    try {
      const e = await fetchCek(ID, { baseUrl: `http://127.0.0.1:${port}/cek/id/`, cacheDir: dir, timeoutMs: 2000 }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(KdsError);
      expect((e as Error).message).toMatch(/AMD KDS request for the CEK failed: timed out after 2000 ms \(http:\/\/127\.0\.0\.1:\d+\)/);
    } finally {
      timers.forEach(clearInterval);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('an injected transport whose body never ends is bounded by the same deadline', async () => {
    const slowBody: FetchLike = async () => ({ ...res(200), arrayBuffer: () => new Promise<ArrayBuffer>(() => undefined) });
    await expect(fetchCek(ID, { fetch: slowBody, cacheDir: dir, timeoutMs: 100 })).rejects.toThrow(/timed out after 100 ms/);
  });

  it('a body far larger than a CEK is refused', async () => {
    const huge: FetchLike = async () => res(200, Buffer.alloc(1 << 20));
    await expect(fetchCek(ID, { fetch: huge, cacheDir: dir })).rejects.toThrow(/larger than the 65536 accepted/);
  });
});
