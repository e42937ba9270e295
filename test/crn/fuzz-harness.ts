/**
 * Request fuzzing of the CRN through a real server (raw TCP, so nothing in a
 * client library tidies the input): multipart uploads, JSON bodies, auth
 * headers, paths and methods, each mutated from a valid request. Used by
 * test/crn/fuzz.test.ts (a few thousand cases) and scripts/crn-fuzz.ts
 * (≥ 100,000). Deterministic for a given seed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createAuthSession, type AuthSession } from '../../lib/aleph/auth.js';
import { startCrnServer } from '../../lib/crn/server.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { FakeCerts, FakeLauncher } from './fakes.js';

export interface FuzzTarget {
  port: number;
  /** A VM of the fuzzing owner (any state). */
  ref: string;
  auth: AuthSession;
  allocationToken: string;
}

export interface FuzzStats {
  cases: number;
  byStatus: Record<string, number>;
  /** Cases whose answer was not acceptable (5xx other than 503, or no answer where one is owed). */
  bad: Array<{ kind: string; status: number; request: string }>;
}

/** xorshift32: reproducible cases from a seed. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

const INTERESTING = ['', '0', '-1', '1e309', 'null', 'true', '[]', '{}', '"', '\\u0000', '%', '%zz', '..', '/', '\u00ff', 'A'.repeat(300), '{"a":'.repeat(200)];

function mutate(r: Rng, b: Buffer): Buffer {
  const out = Buffer.from(b);
  switch (r.int(6)) {
    case 0: // truncate
      return out.subarray(0, r.int(out.length + 1));
    case 1: // flip bytes
      for (let i = 0, n = 1 + r.int(8); i < n && out.length; i++) out[r.int(out.length)] ^= 1 << r.int(8);
      return out;
    case 2: // insert an interesting token
      return Buffer.concat([out.subarray(0, r.int(out.length + 1)), Buffer.from(r.pick(INTERESTING)), out.subarray(r.int(out.length + 1))]);
    case 3: {
      // duplicate a slice
      const a = r.int(out.length + 1);
      const z = Math.min(out.length, a + r.int(64));
      return Buffer.concat([out.subarray(0, z), out.subarray(a, z), out.subarray(z)]);
    }
    case 4: // random bytes in place
      return Buffer.concat([out.subarray(0, r.int(out.length + 1)), r.bytes(r.int(64))]);
    default:
      return out;
  }
}

function multipartBody(r: Rng, boundary: string): Buffer {
  const part = (name: string, data: string, file: boolean) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file ? `; filename="${name}"` : ''}\r\nContent-Type: application/octet-stream\r\n\r\n${data}\r\n`;
  const session = crypto.randomBytes(128).toString('base64');
  const godh = crypto.randomBytes(0x824).toString('base64');
  const parts = [part('session', session, r.int(2) === 0), part('godh', godh, r.int(2) === 0)];
  if (r.int(8) === 0) parts.push(part(r.pick(['session', 'godh', 'x', '']), 'QUFB', true));
  return Buffer.from(`${parts.join('')}--${boundary}--\r\n`);
}

function jsonBody(r: Rng, kind: 'allocate' | 'inject'): Buffer {
  const obj: Record<string, unknown> =
    kind === 'inject'
      ? { packet_header: crypto.randomBytes(52).toString('base64'), secret: crypto.randomBytes(16 * (1 + r.int(4))).toString('base64') }
      : {
          ref: crypto.randomBytes(32).toString('hex'),
          owner: `0x${crypto.randomBytes(20).toString('hex')}`,
          firmware: '/nonexistent',
          policy: r.int(8),
          vcpus: 1,
          memory_mb: 256,
        };
  const keys = Object.keys(obj);
  if (r.int(3) === 0) obj[r.pick(keys)] = r.pick([null, -1, 1e308, 'x', [], {}, true, 'A'.repeat(70_000)]);
  return Buffer.from(JSON.stringify(obj));
}

/** One raw request; resolves with the response status (0 when the connection closed without one). */
function send(port: number, head: Buffer, body: Buffer, timeoutMs = 15_000): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    let status = 0;
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      if (m) {
        status = Number(m[1]);
        s.destroy();
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(status));
    s.setTimeout(timeoutMs, () => s.destroy());
    s.end(Buffer.concat([head, body]));
  });
}

function headOf(method: string, p: string, headers: Record<string, string>): Buffer {
  let h = `${method} ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`;
  for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  return Buffer.from(`${h}\r\n`, 'latin1');
}

/** Runs `n` fuzz cases (up to `concurrency` at a time) against the target; never throws for a bad answer, counts it. */
export async function runFuzz(t: FuzzTarget, n: number, seed = 1, concurrency = 16): Promise<FuzzStats> {
  const r = new Rng(seed);
  const stats: FuzzStats = { cases: 0, byStatus: {}, bad: [] };
  const machine = (op: string) => `/control/machine/${t.ref}/confidential/${op}`;
  const authFor = new Map<string, Record<string, string>>();
  const auth = (method: 'GET' | 'POST', p: string): Record<string, string> => {
    const k = `${method} ${p}`;
    if (!authFor.has(k)) authFor.set(k, t.auth.headers(method, p));
    return { ...authFor.get(k)! };
  };
  const one = async (): Promise<void> => {
    const kind = r.pick(['multipart', 'multipart', 'json-inject', 'json-allocate', 'auth', 'path'] as const);
    let method = 'POST';
    let p = machine('initialize');
    let headers: Record<string, string> = {};
    let body: Buffer = Buffer.alloc(0);
    if (kind === 'multipart') {
      const boundary = r.int(10) === 0 ? r.pick(['', '"', 'a'.repeat(80), '--']) : crypto.randomBytes(8).toString('hex');
      body = r.int(4) === 0 ? multipartBody(r, boundary) : mutate(r, multipartBody(r, boundary));
      headers = {
        ...auth('POST', p),
        'Content-Type':
          r.int(12) === 0
            ? r.pick(['text/plain', 'multipart/form-data', `multipart/form-data; boundary=`, `multipart/mixed; boundary=${boundary}`])
            : `multipart/form-data; boundary=${boundary}`,
      };
    } else if (kind === 'json-inject') {
      p = machine('inject_secret');
      body = r.int(2) === 0 ? jsonBody(r, 'inject') : mutate(r, jsonBody(r, 'inject'));
      headers = { ...auth('POST', p), 'Content-Type': 'application/json' };
    } else if (kind === 'json-allocate') {
      p = '/control/allocate';
      body = r.int(2) === 0 ? jsonBody(r, 'allocate') : mutate(r, jsonBody(r, 'allocate'));
      headers = {
        'X-Auth-Signature':
          r.int(4) === 0
            ? mutate(r, Buffer.from(t.allocationToken))
                .toString('latin1')
                .replace(/[\r\n]/g, '')
            : t.allocationToken,
        'Content-Type': 'application/json',
      };
    } else if (kind === 'auth') {
      const op = r.pick(['initialize', 'measurement', 'inject_secret']);
      method = op === 'measurement' ? 'GET' : 'POST';
      p = machine(op);
      const a = auth(method as 'GET' | 'POST', p);
      const which = r.pick(['X-SignedPubKey', 'X-SignedOperation'] as const);
      a[which] = mutate(r, Buffer.from(a[which]!))
        .toString('latin1')
        .replace(/[\r\n\0]/g, '');
      if (r.int(10) === 0) delete a[which];
      headers = a;
      if (method === 'POST') body = op === 'inject_secret' ? jsonBody(r, 'inject') : multipartBody(r, 'bnd');
      if (op === 'initialize') headers['Content-Type'] = 'multipart/form-data; boundary=bnd';
    } else {
      method = r.pick(['GET', 'POST', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'PATCH']);
      const base = r.pick([
        machine('initialize'),
        machine('measurement'),
        '/about/certificates',
        '/status/config',
        '/control/allocate',
        '/about/executions/list',
      ]);
      p =
        mutate(r, Buffer.from(base))
          .toString('latin1')
          .replace(/[\s\0]/g, '') || '/';
      if (!p.startsWith('/') && r.int(2) === 0) p = `/${p}`;
      headers = r.int(2) === 0 ? auth(method === 'GET' ? 'GET' : 'POST', p) : {};
    }
    if (r.int(6) === 0) headers['Transfer-Encoding'] = 'chunked';
    let wire = body;
    if (headers['Transfer-Encoding'] === 'chunked') {
      wire = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from(r.int(5) === 0 ? '\r\n' : '\r\n0\r\n\r\n')]);
    } else headers['Content-Length'] = String(body.length);
    const status = await send(t.port, headOf(method, p, headers), wire);
    stats.cases++;
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    // Owed an answer: everything whose head parses. Node itself answers 400 to what does not.
    // A chunked body cut before its last chunk is an aborted body: a close without an answer is fine there.
    const unfinished = headers['Transfer-Encoding'] === 'chunked' && !wire.subarray(-5).equals(Buffer.from('0\r\n\r\n'));
    if ((status >= 500 && status !== 503 && status !== 507) || (status === 0 && !unfinished)) {
      // past 20 examples, only byStatus keeps counting
      if (stats.bad.length < 20) stats.bad.push({ kind, status, request: `${method} ${p.slice(0, 120)} (${body.length} bytes)` });
    }
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        await one();
      }
    }),
  );
  return stats;
}

/** What a fuzz run against a fresh server found: its statistics and the state of the bystanders. */
export interface CrnFuzzOutcome {
  stats: FuzzStats;
  /** /status/config still answers 200 afterwards. */
  alive: boolean;
  /** Another owner's VM, awaiting its secret during the whole run. */
  victim: { state: string | undefined; stopped: boolean; injected: unknown[] };
}

/**
 * Starts a CRN on loopback (fake platform and launcher, a private temp run dir), allocates a victim VM of
 * another owner and brings it to awaiting-secret, fuzzes `n` requests as a third owner of its own VM, then
 * reports and removes everything. Shared by test/crn/fuzz.test.ts and scripts/crn-fuzz.ts.
 */
export async function fuzzFreshCrn(n: number, seed: number): Promise<CrnFuzzOutcome> {
  const token = crypto.randomBytes(16).toString('hex');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-fuzz-'));
  const firmware = path.join(tmp, 'OVMF.fd');
  fs.writeFileSync(firmware, crypto.randomBytes(4096));
  const launcher = new FakeLauncher();
  const srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: '127.0.0.1',
    certs: new FakeCerts(),
    launcher,
    runDir: path.join(tmp, 'run'),
    allocationToken: token,
    maxVms: n + 16,
  });
  try {
    const alloc = async (who: EthWallet): Promise<string> => {
      const ref = crypto.randomBytes(32).toString('hex');
      await new CrnClient({ url: srv.url }).allocate(token, { ref, owner: who.address, firmware, policy: 1, vcpus: 1, memory_mb: 256 });
      return ref;
    };
    const victimOwner = EthWallet.generate();
    const victim = await alloc(victimOwner);
    await new CrnClient({ url: srv.url, wallet: victimOwner, domain: '127.0.0.1' }).initialize(victim, {
      session: crypto.randomBytes(128).toString('base64'),
      godh: crypto.randomBytes(0x824).toString('base64'),
    });
    const fuzzer = EthWallet.generate();
    const ref = await alloc(fuzzer);
    const stats = await runFuzz(
      { port: Number(new URL(srv.url).port), ref, auth: createAuthSession(fuzzer, { domain: '127.0.0.1' }), allocationToken: token },
      n,
      seed,
    );
    const alive = (await fetch(`${srv.url}/status/config`)).status === 200;
    const v = launcher.vms.find((x) => x.spec.ref === victim)!;
    return { stats, alive, victim: { state: srv.service.state(victim), stopped: v.stopped, injected: v.injected } };
  } finally {
    await srv.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
