/**
 * aleph's own side driving `sevkit crn serve` end to end over the simulator
 * (VM-less QEMU wrapper): aleph's scheduler allocates through
 * `POST /control/allocations`, aleph's owner through
 * `POST /control/allocation/notify`; an aleph-style client (aleph-client.ts)
 * and sevkit's own `sevkit launch` each deliver the non-ASCII disk password
 * `pässwörd` and the VM runs. The aleph-exact process answers with aleph's
 * bytes, the default process with sevkit's; a delegated wallet is authorised
 * through the owner's security aggregate (served by a fake aleph API server).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli, startCrnServe, type CrnServeProcess } from '../helpers/cli.js';
import { encodeCaChain } from '../../lib/certs/index.js';
import { simulatorCaChain } from '../../lib/sim/ca-chain.js';
import { makeDemoFirmware } from '../../lib/demo/demo.js';
import { createSession } from '../../lib/launch/index.js';
import { parseSecretTable, secretEntryText } from '../../lib/launch/secret.js';
import { alephBuildSecret, alephMakeSecretTable, alephValidateMeasure, AlephStyleClient, ethAccount, rawRequest, solAccount } from './aleph-client.js';
import { instanceMessage, startFakeAlephApi, type FakeAlephApi } from './aleph-api.js';

const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;
const TOKEN = crypto.randomBytes(16).toString('hex');
const OWNER_KEY = crypto.randomBytes(32);
const owner = ethAccount(OWNER_KEY);
const delegate = solAccount();
const PASSWORD = 'pässwörd';
const NODE = 'd'.repeat(64);
const newRef = () => crypto.randomBytes(32).toString('hex');

let tmp: string;
let api: FakeAlephApi;
let firmware: string;
let fwHash: string;
const procs: CrnServeProcess[] = [];
let runs = 0;

async function serve(extra: string[]): Promise<{ url: string; err: () => string }> {
  // Counted before the await: two serve() started together each get their own run dir (a run dir takes one CRN).
  const run = path.join(tmp, `run-${runs++}`);
  const p = await startCrnServe(
    [
      '--listen',
      '127.0.0.1:0',
      '--domain',
      '127.0.0.1',
      '--run-dir',
      run,
      '--api-server',
      api.url,
      '--data-cache',
      path.join(tmp, 'cache'),
      '--node-hash',
      NODE,
      ...extra,
    ],
    { env: { SEVKIT_ALLOCATION_TOKEN: TOKEN, SEVKIT_REAL_QEMU: 'none' } },
  );
  procs.push(p);
  return { url: p.url, err: p.stderr };
}

function post(url: string, p: string, body: unknown, headers: Record<string, string> = {}) {
  const b = Buffer.from(JSON.stringify(body));
  return rawRequest(`${url}${p}`, { method: 'POST', body: b, headers: { 'Content-Type': 'application/json', 'Content-Length': String(b.length), ...headers } });
}

function publish(ref: string): void {
  api.messages.set(ref, instanceMessage({ ref, owner: owner.address, firmware: fwHash, nodeHash: NODE }));
}

const guestSecret = (ref: string) => fs.readFileSync(path.join(process.env.SEVKIT_SIM_STATE!, 'guests', ref, 'launch-secret.bin'));

/** aleph-client's confidential flow: certificates → sevctl session → initialize → measurement → validate → secret. */
async function alephLaunch(
  c: AlephStyleClient,
  ref: string,
  password: string,
): Promise<{ table: Buffer; inject: Awaited<ReturnType<AlephStyleClient['injectSecret']>> }> {
  const certs = await c.getCertificates();
  expect([certs.status, certs.body.length]).toEqual([200, 8336]);
  // `sevctl session` uses the first certificate of the file (the PDH) and verifies nothing.
  const s = createSession(certs.body.subarray(0, 0x824), 1);
  const init = await c.initialize(ref, s.sessionB64, s.godhB64);
  expect([init.status, init.text]).toEqual([200, `Started VM with ref ${ref}`]);
  const m = await c.waitMeasurement(ref);
  expect(m.sev_info.state).toBe('launch-secret');
  expect(alephValidateMeasure(m, s.tik, crypto.createHash('sha256').update(fs.readFileSync(firmware)).digest())).toBe(true);
  const table = alephMakeSecretTable(password);
  const p = alephBuildSecret(s.tek, s.tik, m.launch_measure, table);
  return { table, inject: await c.injectSecret(ref, p.packetHeader, p.secret) };
}

describe.skipIf(Boolean(simReason))("aleph's client and scheduler against `crn serve` (simulator, VM-less)", { timeout: 240_000 }, () => {
  let exact: { url: string; err: () => string };
  let plain: { url: string; err: () => string };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-aleph-sim-'));
    firmware = makeDemoFirmware(tmp).path;
    const img = fs.readFileSync(firmware);
    fwHash = crypto.createHash('sha256').update(img).digest('hex');
    fs.mkdirSync(path.join(tmp, 'cache'));
    fs.copyFileSync(firmware, path.join(tmp, 'cache', fwHash));
    fs.writeFileSync(path.join(tmp, 'wallet.key'), `0x${OWNER_KEY.toString('hex')}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(tmp, 'secret.txt'), `${PASSWORD}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(tmp, 'ca.bin'), encodeCaChain(simulatorCaChain(process.env.SEVKIT_SIM_STATE)!));
    api = await startFakeAlephApi();
    api.security.set(owner.address, { authorizations: [{ address: delegate.address, types: ['INSTANCE'], chain: 'SOL' }] });
    [exact, plain] = await Promise.all([serve(['--aleph-exact', '--delegation']), serve([])]);
  });

  afterAll(async () => {
    for (const p of procs) await p.stop();
    await api?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("scheduler allocation + a delegated SOL wallet + aleph's 66-byte table for pässwörd: the firmware accepts it, the VM runs", async () => {
    const ref = newRef();
    publish(ref);
    const alloc = await post(exact.url, '/control/allocations', { persistent_vms: [], instances: [ref] }, { 'X-Auth-Signature': TOKEN });
    expect([alloc.status, alloc.text]).toEqual([200, `{"success": true, "successful": ["${ref}"], "failing": [], "stopped": [], "errors": {}}`]);
    const { table, inject } = await alephLaunch(new AlephStyleClient(exact.url, delegate), ref, PASSWORD);
    // aleph sizes by characters: 64 declared, 66 sent (not a multiple of 16); sevkit 0.x refused it with a 400.
    expect([table.length, table.readUInt32LE(16), table.readUInt32LE(36)]).toEqual([66, 64, 29]);
    expect([inject.status, inject.text]).toEqual([200, '{"status": {"status": "running", "singlestep": false, "running": true}}']);
    // The guest's secret area holds exactly what aleph's client encrypted.
    expect(guestSecret(ref).equals(table)).toBe(true);
    expect(exact.err()).not.toContain(PASSWORD);
  });

  it('notify + `sevkit launch` with pässwörd: the owner pads by bytes and the guest reads the whole password', async () => {
    const ref = newRef();
    publish(ref);
    const n = await post(exact.url, '/control/allocation/notify', { instance: ref });
    expect([n.status, n.text]).toEqual([200, '{"success": true, "successful": true, "failing": [], "errors": {}}']);
    const r = await runCli(
      [
        'launch',
        '--crn',
        exact.url,
        '--vm',
        ref,
        '--firmware',
        firmware,
        '--policy',
        '0x1',
        '--secret-file',
        path.join(tmp, 'secret.txt'),
        '--wallet-key',
        path.join(tmp, 'wallet.key'),
        '--ca',
        path.join(tmp, 'ca.bin'),
      ],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`VM ${ref} is running`));
    expect(r.stderr).not.toContain(PASSWORD);
    const t = parseSecretTable(guestSecret(ref));
    expect([t.layout, t.length % 16, t.length]).toEqual(['aleph', 0, guestSecret(ref).length]);
    expect(t.entries.map((e) => [e.guid, secretEntryText(e.data)])).toEqual([['736869e5-84f0-4973-92ec-06879ce3da0b', PASSWORD]]);
    // 16+4+10 UTF-8 bytes + NUL: the entry length counts bytes.
    expect(t.entries[0]!.data.length).toBe(11);
  });

  it("the aleph-exact process answers each wrong step with aleph's status and body", async () => {
    const ref = newRef();
    publish(ref);
    expect((await post(exact.url, '/control/allocation/notify', { instance: ref })).status).toBe(200);
    const c = new AlephStyleClient(exact.url, owner);
    const before = await c.measurement(ref);
    expect([before.status, before.text]).toEqual([403, '{"error": "Operation not running"}']);
    const { inject } = await alephLaunch(c, ref, 'hunter2');
    expect(inject.status).toBe(200);
    const again = await c.initialize(ref, 'x', 'y');
    expect([again.status, again.text]).toEqual([400, '{"code": "vm_running", "description": "Operation not allowed, instance already running"}']);
    const twice = await c.injectSecret(ref, Buffer.alloc(52).toString('base64'), Buffer.alloc(64).toString('base64'));
    expect([twice.status, twice.text]).toEqual([500, '{"error": "SEV: Not in correct state. (LSECRET) 3", "error_type": "<class \'qmp.QMPResponseError\'>"}']);
    const p = AlephStyleClient.path(ref, 'inject_secret');
    const wrong = await rawRequest(`${exact.url}${p}`, { headers: c.authHeaders('GET', p) });
    expect([wrong.status, wrong.text]).toEqual([404, '{"error": "404: Not Found"}']);
    const stranger = await new AlephStyleClient(exact.url, ethAccount()).measurement(ref);
    expect([stranger.status, stranger.text]).toEqual([403, 'Unauthorized sender']);
  });

  it("the default process gives sevkit's answers for the same steps, and no delegation without --delegation", async () => {
    const ref = newRef();
    publish(ref);
    expect((await post(plain.url, '/control/allocation/notify', { instance: ref })).status).toBe(200);
    expect((await new AlephStyleClient(plain.url, delegate).measurement(ref)).text).toBe('Unauthorized sender');
    const c = new AlephStyleClient(plain.url, owner);
    const before = await c.measurement(ref);
    expect([before.status, before.text]).toEqual([409, '{"error":"Operation not running"}']);
    // A packet the firmware refuses (MACed with the wrong key) leaves the VM re-injectable (aleph #668).
    const certs = await c.getCertificates();
    const s = createSession(certs.body.subarray(0, 0x824), 1);
    expect((await c.initialize(ref, s.sessionB64, s.godhB64)).status).toBe(200);
    const m = await c.waitMeasurement(ref);
    const bad = alephBuildSecret(s.tek, crypto.randomBytes(16), m.launch_measure, alephMakeSecretTable(PASSWORD));
    const refused = await c.injectSecret(ref, bad.packetHeader, bad.secret);
    expect(refused.status, refused.text).toBe(422);
    expect(JSON.parse(refused.text).error).toMatch(/^The secret packet was refused \(.*\); VM [0-9a-f]{64} still awaits its secret/);
    const good = alephBuildSecret(s.tek, s.tik, m.launch_measure, alephMakeSecretTable(PASSWORD));
    const ok = await c.injectSecret(ref, good.packetHeader, good.secret);
    expect([ok.status, ok.text]).toEqual([200, '{"status":{"status":"running","running":true,"singlestep":false}}']);
    const again = await c.initialize(ref, s.sessionB64, s.godhB64);
    expect([again.status, again.text]).toEqual([409, '{"code":"vm_running","description":"Operation not allowed, instance already running"}']);
    const twice = await c.injectSecret(ref, good.packetHeader, good.secret);
    expect([twice.status, twice.text]).toEqual([409, `{"error":"VM ${ref} already received its secret"}`]);
    const p = AlephStyleClient.path(ref, 'inject_secret');
    const wrong = await rawRequest(`${plain.url}${p}`, { headers: c.authHeaders('GET', p) });
    expect([wrong.status, wrong.headers.allow]).toEqual([405, 'POST']);
  });
});

describe('crn serve: the aleph flags refuse what they cannot serve, in one line', { timeout: 120_000 }, () => {
  it('usage errors exit 2, bad input exits 1', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-aleph-flags-'));
    try {
      const base = ['crn', 'serve', '--listen', '127.0.0.1:0', '--domain', 'x', '--run-dir', path.join(dir, 'run'), '--no-confidential'];
      const cases: [string[], NodeJS.ProcessEnv, number, RegExp][] = [
        [['--delegation'], {}, 2, /^sevkit: --data-cache, --node-hash and --delegation need --api-server$/],
        [['--api-server', 'ftp://api.example', '--data-cache', dir], {}, 2, /^sevkit: --api-server must be an http\(s\) URL, got 'ftp:\/\/api.example'$/],
        [['--api-server', 'http://api.example'], {}, 2, /^sevkit: --api-server needs --data-cache DIR/],
        [
          ['--api-server', 'http://api.example', '--data-cache', dir, '--node-hash', 'XYZ'],
          {},
          2,
          /^sevkit: --node-hash must be 64 lower-case hex digits \(an aleph node hash\), got 'XYZ'$/,
        ],
        [['--api-server', 'http://api.example', '--data-cache', path.join(dir, 'absent')], {}, 1, /^sevkit: --data-cache .*absent: not a directory$/],
        [
          ['--api-server', 'http://api.example', '--data-cache', dir],
          { SEVKIT_ALLOCATION_TOKEN_HASH: 'zz' },
          1,
          /^sevkit: SEVKIT_ALLOCATION_TOKEN_HASH must be a sha256 in hex \(64 digits\)$/,
        ],
      ];
      for (const [extra, env, code, why] of cases) {
        const r = await runCli([...base, ...extra], { env });
        expect(r.code, `${extra.join(' ')}: ${r.stderr}`).toBe(code);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr.trim()).toMatch(why);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
