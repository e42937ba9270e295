/**
 * The guest owner against honest and hostile CRNs. In every hostile case the
 * client must refuse at the right step and the CRN must never see an
 * inject_secret request (the secret never leaves the owner).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { CrnService } from '../../lib/crn/service.js';
import { makeDemoFirmware } from '../../lib/demo/demo.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { launchOnCrn, LaunchRefusedError, type LaunchProgress, type OwnerLaunchOptions } from '../../lib/owner/launch.js';
import { createSession } from '../../lib/launch/index.js';
import { makeCa, makePlatform, ModelLauncher, StaticCerts, substitutePdh, type TestCa, type TestPlatform } from './fake-sev.js';

const TOKEN = 't0ken';
const SECRET = 'correct horse battery staple';
let tmp: string;
let ca: TestCa;
let otherCa: TestCa;
let firmware: Buffer;
let firmwarePath: string;
const owner = EthWallet.generate();

interface Crn {
  url: string;
  service: CrnService;
  launcher: ModelLauncher;
  certs: StaticCerts;
  requests: string[];
  /** Lets a test rewrite requests on the way in (a tampering proxy). */
  rewrite?: (req: http.IncomingMessage, body: Buffer) => Buffer;
  /** Answers a request itself instead of the CRN when it returns true. */
  intercept?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  close(): Promise<void>;
  /** Client connections still open. */
  openSockets(): number;
}
const open: Crn[] = [];

async function startCrn(platform: TestPlatform): Promise<Crn> {
  const launcher = new ModelLauncher(platform);
  const certs = new StaticCerts(platform.certs);
  const service = new CrnService({ domain: '127.0.0.1', certs, launcher, runDir: fs.mkdtempSync(path.join(tmp, 'run-')), allocationToken: TOKEN });
  const crn = { service, launcher, certs, requests: [] as string[] } as unknown as Crn;
  const server = http.createServer((req, res) => {
    crn.requests.push(`${req.method} ${req.url}`);
    if (crn.intercept?.(req, res)) return;
    if (!crn.rewrite) return service.handler(req, res);
    // A man in the middle: read, rewrite, replay into the handler.
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = crn.rewrite!(req, Buffer.concat(chunks));
      const fake = Object.assign(Readable.from([body]), {
        headers: { ...req.headers, 'content-length': String(body.length) },
        method: req.method,
        url: req.url,
      }) as unknown as http.IncomingMessage;
      service.handler(fake, res);
    });
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  crn.openSockets = () => sockets.size;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  crn.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  crn.close = async () => {
    await service.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  open.push(crn);
  return crn;
}

async function allocate(crn: Crn, over: { firmware?: string; policy?: number } = {}): Promise<string> {
  const ref = crypto.randomBytes(32).toString('hex');
  await new CrnClient({ url: crn.url }).allocate(TOKEN, {
    ref,
    owner: owner.address,
    firmware: over.firmware ?? firmwarePath,
    policy: over.policy ?? 1,
    vcpus: 1,
    memory_mb: 512,
  });
  return ref;
}

function opts(crn: Crn, ref: string, over: Partial<OwnerLaunchOptions> = {}): OwnerLaunchOptions {
  return {
    client: new CrnClient({ url: crn.url, wallet: owner }),
    ref,
    firmware,
    policy: 1,
    secret: Buffer.from(SECRET),
    ca: ca.bytes,
    measurementTimeoutMs: 2000,
    pollIntervalMs: 10,
    ...over,
  };
}

async function expectRefused(crn: Crn, o: OwnerLaunchOptions, step: string, why: RegExp): Promise<void> {
  const err = await launchOnCrn(o).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'launch should have been refused').toBeInstanceOf(LaunchRefusedError);
  const r = err as LaunchRefusedError;
  expect(r.step).toBe(step);
  expect(r.message).toMatch(why);
  expect(r.message).toMatch(/the secret was not sent/);
  expect(r.message).not.toContain(SECRET);
  // The secret never left: no inject_secret request reached the CRN, no guest got a password.
  expect(crn.requests.filter((l) => l.includes('inject_secret'))).toEqual([]);
  expect(crn.launcher.guests.every((g) => g.passwords.length === 0)).toBe(true);
}

/** A man in the middle replacing the owner's session and GODH by its own. */
function swapSession(crn: Crn, own: { sessionB64: string; godhB64: string }): void {
  crn.rewrite = (req, body) => {
    if (!req.url?.endsWith('/initialize')) return body;
    const boundary = /boundary=(.+)$/.exec(String(req.headers['content-type']))![1]!;
    return Buffer.from(
      [
        `--${boundary}\r\nContent-Disposition: form-data; name="session"; filename="session"\r\n\r\n${own.sessionB64}\r\n`,
        `--${boundary}\r\nContent-Disposition: form-data; name="godh"; filename="godh"\r\n\r\n${own.godhB64}\r\n`,
        `--${boundary}--\r\n`,
      ].join(''),
      'latin1',
    );
  };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-owner-'));
  ca = makeCa();
  otherCa = makeCa();
  // The owner refuses a firmware without a launch-secret area before uploading anything: use one that has it.
  firmwarePath = makeDemoFirmware(tmp).path;
  firmware = fs.readFileSync(firmwarePath);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('honest CRN', () => {
  it('launches: the guest receives exactly the disk password, one progress line per step', async () => {
    const crn = await startCrn(makePlatform(ca));
    const ref = await allocate(crn);
    const progress: LaunchProgress[] = [];
    const res = await launchOnCrn(opts(crn, ref, { onProgress: (p) => progress.push(p) }));
    expect(res.status).toMatchObject({ status: 'running', running: true });
    expect(progress.map((p) => p.step)).toEqual(['firmware', 'certificates', 'chain', 'session', 'initialize', 'measurement', 'verify', 'secret', 'inject']);
    expect(progress.every((p) => p.ms >= 0 && p.total === 9)).toBe(true);
    expect(Object.keys(res.timings)).toHaveLength(9);
    expect(res.chain.caSource).toBe('given');
    expect(crn.launcher.guests).toHaveLength(1);
    expect(crn.launcher.guests[0]!.passwords).toEqual([SECRET]);
    // aleph layout: header length = padded total, NUL-terminated entry.
    const t = crn.launcher.guests[0]!.table!;
    expect(t.readUInt32LE(16)).toBe(t.length);
    expect(crn.service.state(ref)).toBe('running');
  });

  it('SEV-ES policy without the vCPU description is refused before the secret', async () => {
    const crn = await startCrn(makePlatform(ca));
    const ref = await allocate(crn, { policy: 0x5 });
    await expectRefused(crn, opts(crn, ref, { policy: 0x5 }), 'firmware', /SEV-ES/);
    // Refused before anything was uploaded.
    expect(crn.requests).toEqual(['POST /control/allocate']);
  });
});

describe('aleph CRN behaviour the owner must tolerate or stop at', () => {
  it('polls through aleph\'s 500 "QMP socket missing" and 403 "Operation not running"', async () => {
    const crn = await startCrn(makePlatform(ca));
    const answers = [
      [500, 'application/json', JSON.stringify({ error: 'VM is not running (QMP socket missing)', error_type: "<class 'RuntimeError'>" })],
      [403, 'application/json', JSON.stringify({ error: 'Operation not running' })],
    ];
    crn.intercept = (req, res) => {
      if (!req.url?.split('?')[0]!.endsWith('/measurement') || answers.length === 0) return false;
      const [status, type, body] = answers.shift()!;
      res.writeHead(status as number, { 'Content-Type': type as string });
      res.end(body);
      return true;
    };
    const res = await launchOnCrn(opts(crn, await allocate(crn)));
    expect(res.status).toMatchObject({ running: true });
    expect(crn.requests.filter((l) => l.split('?')[0]!.endsWith('/measurement')).length).toBeGreaterThanOrEqual(3);
  });

  it('stops at aleph\'s plain-text 403 "Unauthorized sender"', async () => {
    const crn = await startCrn(makePlatform(ca));
    crn.intercept = (req, res) => {
      if (!req.url?.split('?')[0]!.endsWith('/measurement')) return false;
      res.writeHead(403, { 'Content-Type': 'text/plain' });
      res.end('Unauthorized sender');
      return true;
    };
    await expectRefused(crn, opts(crn, await allocate(crn)), 'measurement', /HTTP 403: Unauthorized sender/);
  });

  it('gives up after the measurement timeout when QEMU never gets ready', async () => {
    const crn = await startCrn(makePlatform(ca));
    crn.intercept = (req, res) => {
      if (!req.url?.split('?')[0]!.endsWith('/measurement')) return false;
      res.writeHead(503, { 'Content-Type': 'application/json' });
      res.end('{"error":"VM is starting"}');
      return true;
    };
    await expectRefused(crn, opts(crn, await allocate(crn), { measurementTimeoutMs: 300 }), 'measurement', /no measurement within 300 ms/);
  });

  it('the whole launch has a deadline: a CRN that holds every measurement request ends it there, naming the step and the CRN', async () => {
    const crn = await startCrn(makePlatform(ca));
    const waits: string[] = [];
    crn.intercept = (req) => req.url?.split('?')[0]!.endsWith('/measurement') === true; // held, never answered
    await expectRefused(
      crn,
      opts(crn, await allocate(crn), { measurementTimeoutMs: 600_000, deadlineMs: 2500, onWait: (w) => waits.push(`${w.step}: ${w.waitingFor}`) }),
      'measurement',
      new RegExp(
        `the launch did not finish within its deadline of 2.5 s \\(still waiting for the launch measurement \\(VM starting\\) from ${crn.url.replace(/\./g, '\\.')}\\)`,
      ),
    );
    // The long-poll asked the CRN to hold the request, and the owner saw what it waited for.
    expect(crn.requests.find((l) => l.includes('/measurement'))).toMatch(/\/measurement\?wait=\d+$/);
    expect(waits).toContain('measurement: the launch measurement (VM starting)');
    // The held request was cancelled with the launch, not left to its own (30 s + wait) deadline.
    const until = Date.now() + 10_000;
    while (crn.openSockets() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(crn.openSockets()).toBe(0);
  });
});

describe('malicious host matrix', () => {
  it('substituted PDH (host-made key not signed by the PEK)', async () => {
    const crn = await startCrn(substitutePdh(makePlatform(ca)));
    await expectRefused(crn, opts(crn, await allocate(crn)), 'chain', /PEK → PDH/);
    expect(crn.requests.some((l) => l.includes('initialize'))).toBe(false);
  });

  it('a whole chain under another root', async () => {
    const crn = await startCrn(makePlatform(otherCa));
    await expectRefused(crn, opts(crn, await allocate(crn)), 'chain', /ASK → CEK/);
  });

  it("a CEK signed by another generation's ASK", async () => {
    const crn = await startCrn(makePlatform(ca, { cekSigner: otherCa }));
    await expectRefused(crn, opts(crn, await allocate(crn)), 'chain', /ASK → CEK/);
  });

  it("a test-CA chain checked against AMD's built-in roots of a named generation", async () => {
    const crn = await startCrn(makePlatform(ca));
    await expectRefused(crn, opts(crn, await allocate(crn), { ca: undefined, generation: 'genoa' }), 'chain', /ASK → CEK/);
  });

  it('no matching built-in root at all', async () => {
    const crn = await startCrn(makePlatform(ca));
    await expectRefused(crn, opts(crn, await allocate(crn), { ca: undefined }), 'chain', /no built-in AMD ASK/);
  });

  it('a truncated certificate blob', async () => {
    const p = makePlatform(ca);
    const crn = await startCrn(p);
    crn.certs.certs = { ...p.certs, cek: p.certs.cek.subarray(0, 100) };
    await expectRefused(crn, opts(crn, await allocate(crn)), 'certificates', /./);
  });

  it('a policy other than requested (debugging allowed), reported honestly', async () => {
    const p = makePlatform(ca);
    const crn = await startCrn(p);
    // Real firmware refuses the owner's 0x1 session under policy 0, so the host
    // also swaps in its own session made for policy 0.
    swapSession(crn, createSession(p.certs.pdh, 0));
    const ref = await allocate(crn, { policy: 0 });
    await expectRefused(crn, opts(crn, ref), 'verify', /policy 0x0, requested 0x1/);
  });

  it('a policy other than requested, hidden in sev_info (firmware rejects the session)', async () => {
    const crn = await startCrn(makePlatform(ca));
    crn.launcher.hostile = { launchPolicy: 0, reportPolicy: 1 };
    await expectRefused(crn, opts(crn, await allocate(crn)), 'measurement', /VM launch failed/);
  });

  it("different firmware than the owner's", async () => {
    const crn = await startCrn(makePlatform(ca));
    crn.launcher.hostile = { firmware: Buffer.concat([firmware.subarray(0, -1), Buffer.of(firmware.at(-1)! ^ 1)]) };
    await expectRefused(crn, opts(crn, await allocate(crn)), 'verify', /does not match/);
  });

  it('a replayed measurement from an earlier launch', async () => {
    const crn = await startCrn(makePlatform(ca));
    await launchOnCrn(opts(crn, await allocate(crn)));
    const earlier = crn.launcher.measurements[0]!;
    crn.requests.length = 0;
    crn.launcher.guests.length = 0;
    crn.launcher.hostile = { measurement: () => Buffer.from(earlier) };
    await expectRefused(crn, opts(crn, await allocate(crn)), 'verify', /does not match/);
  });

  it('a tampered measurement (one bit of the MAC, or of the nonce)', async () => {
    for (const bit of [0, 40 * 8]) {
      const crn = await startCrn(makePlatform(ca));
      crn.launcher.hostile = {
        measurement: (b) => {
          const c = Buffer.from(b);
          c[bit >> 3]! ^= 1;
          return c;
        },
      };
      await expectRefused(crn, opts(crn, await allocate(crn)), 'verify', /does not match/);
    }
  });

  it('a malformed measurement (wrong length) and a guest already running', async () => {
    let crn = await startCrn(makePlatform(ca));
    crn.launcher.hostile = { measurement: (b) => b.subarray(0, 47) };
    await expectRefused(crn, opts(crn, await allocate(crn)), 'measurement', /host reported an impossible value: launch measurement of 47 bytes/);
    crn = await startCrn(makePlatform(ca));
    crn.launcher.hostile = { reportState: 'running' };
    await expectRefused(crn, opts(crn, await allocate(crn)), 'verify', /state 'running'/);
    crn = await startCrn(makePlatform(ca));
    crn.launcher.hostile = { reportEnabled: false };
    await expectRefused(crn, opts(crn, await allocate(crn)), 'verify', /SEV not enabled/);
  });

  it('a firmware API older than the policy minimum', async () => {
    const crn = await startCrn(makePlatform(ca));
    crn.launcher.api = { major: 0, minor: 17, build: 1 };
    // policy 0x1 with minimum firmware 1.40 (API_MAJOR bits 16-23, API_MINOR bits 24-31)
    const policy = 0x1 | (1 << 16) | (40 << 24);
    await expectRefused(crn, opts(crn, await allocate(crn, { policy }), { policy }), 'verify', /older than the policy minimum/);
  });

  it('versions that do not fit their byte are a lying host, even when the MAC (over the low bytes) matches', async () => {
    // The MAC covers one byte each: 55+256 and 24+256 MAC exactly like 55 and 24, so only the range check catches them.
    let crn = await startCrn(makePlatform(ca));
    crn.launcher.api = { major: 1, minor: 55 + 256, build: 24 + 256 };
    await expectRefused(
      crn,
      opts(crn, await allocate(crn)),
      'measurement',
      /host reported an impossible value: API minor 311 \(the firmware reports it in one byte, 0\.\.255\)/,
    );
    // The minimum-version bypass: a 1.17 firmware claiming 1.273 to pass a policy minimum of 1.40.
    crn = await startCrn(makePlatform(ca));
    crn.launcher.api = { major: 1, minor: 17 + 256, build: 1 };
    const policy = 0x1 | (1 << 16) | (40 << 24);
    await expectRefused(crn, opts(crn, await allocate(crn, { policy }), { policy }), 'measurement', /impossible value: API minor 273/);
  });

  it('an altered upload: a byte of the session flipped in transit', async () => {
    const crn = await startCrn(makePlatform(ca));
    crn.rewrite = (req, body) => {
      if (!req.url?.endsWith('/initialize')) return body;
      const s = body.toString('latin1');
      const i = s.indexOf('name="session"');
      const start = s.indexOf('\r\n\r\n', i) + 4;
      const c = s[start + 10] === 'A' ? 'B' : 'A';
      return Buffer.from(s.slice(0, start + 10) + c + s.slice(start + 11), 'latin1');
    };
    await expectRefused(crn, opts(crn, await allocate(crn)), 'measurement', /VM launch failed/);
  });

  it('an altered upload: the host swaps in its own session (its own TIK) for the same PDH', async () => {
    const p = makePlatform(ca);
    const crn = await startCrn(p);
    swapSession(crn, createSession(p.certs.pdh, 1));
    await expectRefused(crn, opts(crn, await allocate(crn)), 'verify', /does not match/);
  });
});
