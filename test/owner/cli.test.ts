/**
 * `sevkit launch` and the owner's set-up commands as a user runs them: a dribbling CRN ends the launch by
 * itself at its deadline with one line naming the step and the CRN, while a progress line says what it waits
 * for; Ctrl-C says what it leaves where and exits 130; a firmware without a launch-secret area is refused
 * before any request; a malformed --vm is a usage error.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeDemoFirmware } from '../../lib/demo/demo.js';
import { cliEntry, ROOT, runCli } from '../helpers/cli.js';

let tmp: string;
let key: string;
let firmware: string;
let secretFile: string;
const servers: http.Server[] = [];
const timers: NodeJS.Timeout[] = [];
const VM = crypto.randomBytes(32).toString('hex');

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-owner-cli-'));
  key = path.join(tmp, 'owner.key');
  const r = await runCli(['wallet', 'new', key]);
  expect(r.code, r.stderr).toBe(0);
  firmware = makeDemoFirmware(tmp).path;
  secretFile = path.join(tmp, 'pw');
  fs.writeFileSync(secretFile, 'hunter2\n');
});
afterEach(async () => {
  timers.splice(0).forEach(clearInterval);
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r)))));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function serve(h: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const s = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    h(req, res);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, requests };
}

const launchArgs = (crn: string, over: string[] = []) => [
  'launch',
  '--crn',
  crn,
  '--vm',
  VM,
  '--firmware',
  firmware,
  '--policy',
  '1',
  '--secret-file',
  secretFile,
  '--wallet-key',
  key,
  ...over,
];

describe('sevkit launch never hangs', () => {
  it('a CRN that sends headers and then one byte a second: fails by itself at --request-timeout, naming the step and the CRN', async () => {
    const crn = await serve((_q, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': '8336' });
      timers.push(setInterval(() => res.write('x'), 1000));
    });
    const t0 = performance.now();
    const r = await runCli(launchArgs(crn.url, ['--request-timeout', '7']), { timeoutMs: 120_000 });
    process.stderr.write(`launch against a dribbling CRN ended after ${(performance.now() - t0).toFixed(0)} ms (deadline 7 s)\n`);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines.at(-1)).toMatch(
      new RegExp(
        `^sevkit: launch refused at step 'certificates': CRN certificates: ${crn.url}: no complete answer within 7 s \\(stalled in the body \\(\\d+ body bytes received\\)\\); the secret was not sent$`,
      ),
    );
    // Not a TTY: a progress line every few seconds says what it waits for and for how long.
    expect(lines.some((l) => new RegExp(`^\\[certificates\\] waiting \\d+ s for the platform certificates from ${crn.url}$`).test(l))).toBe(true);
  });

  it('Ctrl-C: says which VM it leaves in which state on which CRN, exits 130', async () => {
    const crn = await serve(() => undefined); // never answers
    const child = spawn(process.execPath, [...cliEntry(), ...launchArgs(crn.url)], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    // Wait until the request is in flight, then interrupt.
    for (let i = 0; i < 600 && crn.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(crn.requests).toEqual(['GET /about/certificates']);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    clearTimeout(killer);
    expect(code).toBe(130);
    expect(err).toContain(`sevkit: interrupted during step 'certificates': VM ${VM} on ${crn.url} is left allocated and untouched (nothing was uploaded)`);
  });
});

describe('refused before anything is uploaded', () => {
  it('a firmware without a launch-secret area: refused at the firmware step, the CRN saw no request', async () => {
    const crn = await serve((_q, res) => res.end());
    const bare = path.join(tmp, 'bare.fd');
    fs.writeFileSync(bare, crypto.randomBytes(64 * 1024));
    const r = await runCli(launchArgs(crn.url).map((a) => (a === firmware ? bare : a)));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/launch refused at step 'firmware': .*declares no launch-secret area.*; the secret was not sent/);
    expect(crn.requests).toEqual([]);
  });

  it('--secret-gpa lets such a firmware through the firmware step (the CRN is then asked)', async () => {
    const crn = await serve((_q, res) => {
      res.writeHead(503);
      res.end('{"error":"nope"}');
    });
    const bare = path.join(tmp, 'bare2.fd');
    fs.writeFileSync(bare, crypto.randomBytes(64 * 1024));
    const r = await runCli([...launchArgs(crn.url).map((a) => (a === firmware ? bare : a)), '--secret-gpa', '0x80d000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/step 'certificates'/);
    expect(crn.requests).toEqual(['GET /about/certificates']);
  });

  it('SEV-ES without vCPU inputs, and a secret larger than the area', async () => {
    const crn = await serve((_q, res) => res.end());
    let r = await runCli(launchArgs(crn.url).map((a) => (a === '1' ? '5' : a)));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/SEV-ES \(policy bit 0x4\) needs --vcpus/);
    const big = path.join(tmp, 'big');
    fs.writeFileSync(big, 'x'.repeat(8000));
    r = await runCli(launchArgs(crn.url).map((a) => (a === secretFile ? big : a)));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/step 'firmware': the secret table is \d+ bytes, larger than the firmware's launch-secret area \(4096 bytes\)/);
    expect(crn.requests).toEqual([]);
  });
});

describe('usage', () => {
  it('a malformed --vm exits 2 with one line', async () => {
    const r = await runCli(launchArgs('http://127.0.0.1:9').map((a) => (a === VM ? 'nothex' : a)));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(["sevkit: --vm must be 64 lower-case hex digits (the instance item hash), got 'nothex'"]);
  });

  it('wallet new: 0600, refuses to overwrite, --json gives the address', async () => {
    const f = path.join(tmp, 'w2.key');
    const a = await runCli(['wallet', 'new', '--json', f]);
    expect(a.code).toBe(0);
    const j = JSON.parse(a.stdout) as { address: string; chain: string };
    expect(j.chain).toBe('ETH');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    const before = fs.readFileSync(f);
    const b = await runCli(['wallet', 'new', f]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/already exists; refusing to overwrite/);
    expect(fs.readFileSync(f)).toEqual(before);
    const c = await runCli(['wallet', 'address', f]);
    expect(c.stdout.trim()).toBe(j.address);
  });
});
