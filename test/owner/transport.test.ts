/**
 * The owner's transport against CRNs that misbehave at the byte level, with real sockets: a body dribbled
 * one byte a second (used to hold the owner for good), bodies too large, dropped connections (GETs are tried
 * again, POSTs never), redirects (only a same-host http → https upgrade is followed), and the measurement
 * long-poll (`?wait=`, Retry-After, fallback to polling).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { httpRequest, HttpRequestError, httpsUpgradeTarget } from '../../lib/util/http-request.js';
import { CrnClient, CrnUnreachableError } from '../../lib/owner/client.js';
import { EthWallet } from '../../lib/aleph/wallet.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
const servers: (http.Server | https.Server)[] = [];
const timers: NodeJS.Timeout[] = [];

async function listen(server: http.Server | https.Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}
async function serve(h: Handler): Promise<string> {
  return `http://127.0.0.1:${await listen(http.createServer(h))}`;
}
/** Headers at once, then one body byte a second, forever. */
const dribble: Handler = (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': '8336' });
  const t = setInterval(() => res.write('x'), 1000);
  timers.push(t);
  res.on('close', () => clearInterval(t));
};

afterEach(async () => {
  timers.splice(0).forEach(clearInterval);
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise((r) => {
          s.closeAllConnections();
          s.close(r);
        }),
    ),
  );
});

describe('a deadline on every byte', () => {
  it('a server that sends its headers and then one byte a second fails at the deadline, in the body', async () => {
    const url = await serve(dribble);
    const t0 = Date.now();
    const e = await httpRequest({ url, method: 'GET', deadlineMs: 2500, maxBytes: 1 << 20 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HttpRequestError);
    expect(e).toMatchObject({ kind: 'timeout', phase: 'body' });
    expect((e as Error).message).toMatch(/no complete answer within 2.5 s \(stalled in the body \(\d+ body bytes received\)\)/);
    // It ended by itself, not after the server gave up (which it never does).
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it('the CRN client names the operation and the CRN, and does not retry a timeout', async () => {
    let hits = 0;
    const url = await serve((req, res) => {
      hits++;
      dribble(req, res);
    });
    const e = await new CrnClient({ url, timeoutMs: 2000 }).getCertificates().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CrnUnreachableError);
    expect((e as CrnUnreachableError).code).toBe('ERR_CRN_TIMEOUT');
    expect((e as Error).message).toBe(
      `CRN certificates: ${url}: no complete answer within 2 s (stalled in the body (${(e as Error).message.match(/\((\d+) body/)![1]} body bytes received))`,
    );
    expect(hits).toBe(1);
  });

  it('the timeout names the deadline given, however much time passed before the request went out', async () => {
    const url = await serve(() => undefined);
    // A clock that moves 7 ms on every read: the time left when the socket opens is below the deadline given.
    const real = Date.now;
    let t = real();
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => (t += 7));
    try {
      const e = await httpRequest({ url, method: 'GET', deadlineMs: 300, maxBytes: 1024 }).catch((x: unknown) => x);
      expect((e as Error).message).toMatch(/^no complete answer within 300 ms \(stalled waiting for the headers\)$/);
    } finally {
      spy.mockRestore();
    }
  });

  it('the CRN client names its own timeout however long its retries and set-up took', async () => {
    const url = await serve(() => undefined);
    const real = Date.now;
    let t = real();
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => (t += 7));
    try {
      const e = await new CrnClient({ url, timeoutMs: 400 }).getCertificates().catch((x: unknown) => x);
      expect((e as Error).message).toBe(`CRN certificates: ${url}: no complete answer within 400 ms (stalled waiting for the headers)`);
    } finally {
      spy.mockRestore();
    }
  });

  it('a server that never answers the headers fails at the deadline too', async () => {
    const url = await serve(() => undefined);
    await expect(httpRequest({ url, method: 'GET', deadlineMs: 1500, maxBytes: 1024 })).rejects.toMatchObject({ kind: 'timeout', phase: 'headers' });
  });

  it('bodies are bounded: by Content-Length at once, and while streaming', async () => {
    const declared = await serve((_q, res) => {
      res.writeHead(200, { 'Content-Length': String(10 << 20) });
      res.write('x');
    });
    await expect(httpRequest({ url: declared, method: 'GET', deadlineMs: 20_000, maxBytes: 1 << 20 })).rejects.toMatchObject({ kind: 'too-large' });
    const chunked = await serve((_q, res) => {
      res.writeHead(200);
      const t = setInterval(() => res.write(Buffer.alloc(64 * 1024)), 5);
      timers.push(t);
      res.on('close', () => clearInterval(t));
    });
    await expect(httpRequest({ url: chunked, method: 'GET', deadlineMs: 30_000, maxBytes: 1 << 20 })).rejects.toMatchObject({ kind: 'too-large' });
  });
});

describe('dropped connections', () => {
  it('a GET whose connection is reset is tried again and succeeds; the CRN saw it twice', async () => {
    let hits = 0;
    const url = await serve((req, res) => {
      hits++;
      if (hits === 1) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"DOMAIN_NAME":"x"}');
    });
    expect(await new CrnClient({ url }).statusConfig()).toEqual({ DOMAIN_NAME: 'x' });
    expect(hits).toBe(2);
  });

  it('gives up after two retries', async () => {
    let hits = 0;
    const url = await serve((req) => {
      hits++;
      req.socket.destroy();
    });
    await expect(new CrnClient({ url }).statusConfig()).rejects.toBeInstanceOf(CrnUnreachableError);
    expect(hits).toBe(3);
  });

  it('a POST is never sent twice (the CRN may have acted on it)', async () => {
    let hits = 0;
    const url = await serve((req) => {
      hits++;
      req.socket.destroy();
    });
    await expect(new CrnClient({ url }).allocate('t', { ref: 'x' })).rejects.toBeInstanceOf(CrnUnreachableError);
    expect(hits).toBe(1);
  });
});

describe('redirects', () => {
  let dir: string;
  let cert: Buffer;
  let key: Buffer;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost',
        '-keyout',
        path.join(dir, 'k.pem'),
        '-out',
        path.join(dir, 'c.pem'),
      ],
      { stdio: 'ignore' },
    );
    cert = fs.readFileSync(path.join(dir, 'c.pem'));
    key = fs.readFileSync(path.join(dir, 'k.pem'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the decision: same host, same path, http → https only', () => {
    const from = new URL('http://crn.example/about/certificates');
    expect(httpsUpgradeTarget(from, 'https://crn.example/about/certificates')).toBeInstanceOf(URL);
    expect(httpsUpgradeTarget(from, 'https://CRN.example:8443/about/certificates')).toBeInstanceOf(URL);
    expect(httpsUpgradeTarget(from, 'https://evil.example/about/certificates')).toMatch(/another host/);
    expect(httpsUpgradeTarget(from, 'http://crn.example/other')).toMatch(/only an http → https upgrade/);
    expect(httpsUpgradeTarget(from, 'https://crn.example/other')).toMatch(/another path/);
    expect(httpsUpgradeTarget(new URL('https://crn.example/a'), 'http://crn.example/a')).toMatch(/only an http → https/);
  });

  it('a same-host http → https upgrade is followed (signed headers and body go along)', async () => {
    const seen: string[] = [];
    const tlsPort = await listen(
      https.createServer({ cert, key }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          seen.push(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end('{"ok":true}');
        });
      }),
    );
    const plainPort = await listen(
      http.createServer((req, res) => {
        res.writeHead(308, { Location: `https://localhost:${tlsPort}${req.url}` });
        res.end();
      }),
    );
    const c = new CrnClient({ url: `http://localhost:${plainPort}`, tlsCa: cert });
    expect(await c.allocate('tok', { ref: 'r' })).toEqual({ ok: true });
    expect(seen).toEqual(['POST /control/allocate {"ref":"r"}']);
  });

  it('a redirect to another host is refused, and nothing is sent there', async () => {
    let elsewhere = 0;
    const otherPort = await listen(
      http.createServer((_q, res) => {
        elsewhere++;
        res.end('{}');
      }),
    );
    const url = await serve((req, res) => {
      res.writeHead(302, { Location: `https://localhost:${otherPort}${req.url}` });
      res.end();
    });
    const e = await new CrnClient({ url }).statusConfig().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CrnUnreachableError);
    expect((e as Error).message).toMatch(/HTTP 302 redirect refused: redirect to another host \(localhost\)/);
    expect(elsewhere).toBe(0);
  });
});

describe('measurement long-poll', () => {
  const ref = 'a'.repeat(64);
  const wallet = EthWallet.generate();

  it('sends ?wait=S, signs the path without the query, and passes the CRN Retry-After back', async () => {
    const seen: { url?: string; op?: string }[] = [];
    const url = await serve((req, res) => {
      seen.push({ url: req.url!, op: String(req.headers['x-signedoperation']) });
      res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '3' });
      res.end('{"error":"VM is starting"}');
    });
    const r = await new CrnClient({ url, wallet }).measurementOnce(ref, { waitSeconds: 7 });
    expect(r).toMatchObject({ status: 503, retryAfterMs: 3000, detail: 'VM is starting' });
    expect(seen[0]!.url).toBe(`/control/machine/${ref}/confidential/measurement?wait=7`);
    const signed = JSON.parse(Buffer.from(JSON.parse(seen[0]!.op!).payload, 'hex').toString()) as { path: string };
    expect(signed.path).toBe(`/control/machine/${ref}/confidential/measurement`);
  });

  it('a held request is given its wait on top of the request deadline', async () => {
    const url = await serve((_q, res) => {
      const t = setTimeout(() => {
        res.writeHead(503, { 'Content-Type': 'application/json' });
        res.end('{"error":"VM is starting"}');
      }, 2500);
      timers.push(t);
    });
    // 1.5 s alone would expire; 1.5 s + the 3 s wait does not.
    const r = await new CrnClient({ url, wallet, timeoutMs: 1500 }).measurementOnce(ref, { waitSeconds: 3 });
    expect(r.status).toBe(503);
  });
});
