/**
 * The CRN's answers in both modes, byte for byte, as an aleph-style client
 * (aleph-client.ts, written from shared/specs/aleph.md) sees them over a real
 * socket: `mode: 'aleph'` must give aleph-vm's exact status and body,
 * `mode: 'sevkit'` sevkit's documented choices (docs/crn-aleph.md). Plus
 * aleph's allocation endpoints, the authorisation hook with aleph's
 * delegation, and the bugs aleph's users reported (aleph-vm #668, #966,
 * #985), each as a case the CRN must pass. VMs are in-memory fakes here;
 * aleph-sim.test.ts runs the same client through the simulator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCrnServer, type CrnServer } from '../../lib/crn/server.js';
import { AlephAllocations, allocationTokenHash, httpMessageFetcher } from '../../lib/crn/allocations.js';
import { alephSecurityAggregateAuthorizer, httpAggregateFetcher, type Authorizer } from '../../lib/crn/authorize.js';
import { pyJsonDumps, type CrnMode } from '../../lib/crn/aleph-mode.js';
import { FakeCerts, FakeLauncher } from './fakes.js';
import { AlephStyleClient, ethAccount, rawRequest, solAccount, type AlephAccount } from './aleph-client.js';
import { instanceMessage, startFakeAlephApi, type FakeAlephApi } from './aleph-api.js';

const TOKEN = 'scheduler-token';
const FW_HASH = 'f'.repeat(64);
const NODE = 'a'.repeat(64);
const session = () => crypto.randomBytes(128).toString('base64');
const godh = () => crypto.randomBytes(0x824).toString('base64');
const newRef = () => crypto.randomBytes(32).toString('hex');

let tmp: string;
let api: FakeAlephApi;
const owner = ethAccount();

interface Crn {
  srv: CrnServer;
  launcher: FakeLauncher;
  url: string;
  /** Registers `ref` through aleph's notify endpoint (the message is put on the fake API server first). */
  notify(ref: string, who?: AlephAccount): Promise<string>;
  client(who?: AlephAccount): AlephStyleClient;
}
const crns: Crn[] = [];

async function startCrn(mode: CrnMode, o: { authorize?: Authorizer; pendingWaitMs?: number } = {}): Promise<Crn> {
  const launcher = new FakeLauncher();
  const allocations = new AlephAllocations({
    fetchMessage: httpMessageFetcher(api.url),
    resolveFirmware: (h) => (h === FW_HASH ? path.join(tmp, 'OVMF.fd') : undefined),
    tokenHash: allocationTokenHash(TOKEN),
    nodeHash: NODE,
    ...(o.pendingWaitMs ? { pendingWaitMs: o.pendingWaitMs } : {}),
  });
  const srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: 'crn.test',
    certs: new FakeCerts(),
    launcher,
    runDir: fs.mkdtempSync(path.join(tmp, 'run-')),
    mode,
    extensions: [allocations],
    ...(o.authorize ? { authorize: o.authorize } : {}),
  });
  const crn: Crn = {
    srv,
    launcher,
    url: srv.url,
    client: (who = owner) => new AlephStyleClient(srv.url, who, { domain: 'crn.test' }),
    async notify(ref, who = owner) {
      api.messages.set(ref, instanceMessage({ ref, owner: who.address, firmware: FW_HASH, nodeHash: NODE }));
      const r = await post(srv.url, '/control/allocation/notify', { instance: ref });
      expect(r.status, r.text).toBe(200);
      return ref;
    },
  };
  crns.push(crn);
  return crn;
}

function post(url: string, p: string, body: unknown, headers: Record<string, string> = {}) {
  const b = Buffer.from(JSON.stringify(body));
  return rawRequest(`${url}${p}`, { method: 'POST', body: b, headers: { 'Content-Type': 'application/json', 'Content-Length': String(b.length), ...headers } });
}

async function until(fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A VM initialised and awaiting its secret. */
async function awaiting(crn: Crn, who: AlephAccount = owner): Promise<string> {
  const ref = await crn.notify(newRef(), who);
  const r = await crn.client(who).initialize(ref, session(), godh());
  expect(r.status, r.text).toBe(200);
  await until(() => crn.srv.service.state(ref) === 'awaiting-secret');
  return ref;
}

const packet = () => ({ h: crypto.randomBytes(52).toString('base64'), s: crypto.randomBytes(64).toString('base64') });

let aleph: Crn;
let sevkit: Crn;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-aleph-'));
  fs.writeFileSync(path.join(tmp, 'OVMF.fd'), crypto.randomBytes(4096));
  api = await startFakeAlephApi();
  aleph = await startCrn('aleph');
  sevkit = await startCrn('sevkit');
});
afterAll(async () => {
  for (const c of crns) await c.srv.close();
  await api.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("pyJsonDumps is Python's json.dumps", () => {
  it('separators, key order, ensure_ascii (DEL and non-BMP included)', () => {
    expect(pyJsonDumps({ a: 1, b: [true, null, 'x'], c: { d: 'é' } })).toBe('{"a": 1, "b": [true, null, "x"], "c": {"d": "\\u00e9"}}');
    expect(pyJsonDumps('\x7f\x1f\n"\\😀')).toBe('"\\u007f\\u001f\\n\\"\\\\\\ud83d\\ude00"');
    expect(pyJsonDumps({ skip: undefined, n: -3 })).toBe('{"n": -3}');
  });
});

describe('each case in both modes, byte for byte', () => {
  it('second initialize: aleph 400, sevkit 409, same body', async () => {
    for (const [crn, status, body] of [
      [aleph, 400, '{"code": "vm_running", "description": "Operation not allowed, instance already running"}'],
      [sevkit, 409, '{"code":"vm_running","description":"Operation not allowed, instance already running"}'],
    ] as const) {
      const ref = await awaiting(crn);
      const r = await crn.client().initialize(ref, session(), godh());
      expect([r.status, r.text]).toEqual([status, body]);
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    }
  });

  it('initialize answers plain text "Started VM with ref <ref>" in both modes', async () => {
    for (const crn of [aleph, sevkit]) {
      const ref = await crn.notify(newRef());
      const r = await crn.client().initialize(ref, session(), godh());
      expect([r.status, r.text, r.headers['content-type']]).toEqual([200, `Started VM with ref ${ref}`, 'text/plain; charset=utf-8']);
    }
  });

  it('initialize without godh: 400 field_missing in both modes', async () => {
    for (const [crn, body] of [
      [aleph, '{"code": "field_missing", "description": "godh field is missing. Please provide a GODH file"}'],
      [sevkit, '{"code":"field_missing","description":"godh field is missing. Please provide a GODH file"}'],
    ] as const) {
      const ref = await crn.notify(newRef());
      const r = await crn.client().initialize(ref, session(), godh(), { omit: 'godh' });
      expect([r.status, r.text]).toEqual([400, body]);
    }
  });

  it('measurement before initialize: aleph 403, sevkit 409', async () => {
    for (const [crn, status, body] of [
      [aleph, 403, '{"error": "Operation not running"}'],
      [sevkit, 409, '{"error":"Operation not running"}'],
    ] as const) {
      const ref = await crn.notify(newRef());
      const r = await crn.client().measurement(ref);
      expect([r.status, r.text]).toEqual([status, body]);
    }
  });

  it('measurement while QEMU is still starting: aleph 500 QMP socket missing, sevkit 503 + Retry-After', async () => {
    for (const crn of [aleph, sevkit]) {
      crn.launcher.autoReady = false;
      try {
        const ref = await crn.notify(newRef());
        expect((await crn.client().initialize(ref, session(), godh())).status).toBe(200);
        const r = await crn.client().measurement(ref);
        if (crn === aleph)
          expect([r.status, r.text]).toEqual([500, '{"error": "VM is not running (QMP socket missing)", "error_type": "<class \'RuntimeError\'>"}']);
        else {
          expect([r.status, r.text]).toEqual([503, '{"error":"VM is starting, QEMU is not ready yet"}']);
          expect(r.headers['retry-after']).toBe('1');
        }
        crn.launcher.vms.at(-1)!.becomeReady();
      } finally {
        crn.launcher.autoReady = true;
      }
    }
  });

  it('aleph-exact mode ignores ?wait= (aleph has no long-poll): answered at once, even for a value sevkit refuses', async () => {
    aleph.launcher.autoReady = false;
    try {
      const ref = await aleph.notify(newRef());
      expect((await aleph.client().initialize(ref, session(), godh())).status).toBe(200);
      const p = AlephStyleClient.path(ref, 'measurement');
      for (const q of ['?wait=60', '?wait=0', '?wait=abc']) {
        const r = await rawRequest(`${aleph.url}${p}${q}`, { headers: aleph.client().authHeaders('GET', p) });
        expect(r.status, q).toBe(500);
        expect(r.text).toContain('QMP socket missing');
      }
      aleph.launcher.vms.at(-1)!.becomeReady();
    } finally {
      aleph.launcher.autoReady = true;
    }
  });

  it('measurement: aleph json.dumps spacing and sev_info key order', async () => {
    const ref = await awaiting(aleph);
    const vm = aleph.launcher.vms.at(-1)!;
    const r = await aleph.client().measurement(ref);
    const i = vm.sevInfo;
    expect(r.status).toBe(200);
    expect(r.text).toBe(
      `{"sev_info": {"enabled": true, "api_major": 1, "api_minor": 55, "build_id": 24, "policy": 1, "state": "launch-secret", "handle": ${i.handle}}, "launch_measure": "${vm.launchMeasure}"}`,
    );
    const s = await sevkit.client().measurement(await awaiting(sevkit));
    expect(s.text).toMatch(/^\{"sev_info":\{"enabled":true,"api_major":1,/);
  });

  it("inject_secret: aleph's status key order (status, singlestep, running); sevkit's as the VM reports it", async () => {
    const a = await awaiting(aleph);
    const p = packet();
    const r = await aleph.client().injectSecret(a, p.h, p.s);
    expect([r.status, r.text]).toEqual([200, '{"status": {"status": "running", "singlestep": false, "running": true}}']);
    const s = await awaiting(sevkit);
    const r2 = await sevkit.client().injectSecret(s, p.h, p.s);
    expect([r2.status, r2.text]).toEqual([200, '{"status":{"status":"running","running":true,"singlestep":false}}']);
  });

  it("second inject_secret: aleph 500 QEMU's LSECRET error, sevkit 409", async () => {
    for (const [crn, status, body] of [
      [aleph, 500, '{"error": "SEV: Not in correct state. (LSECRET) 3", "error_type": "<class \'qmp.QMPResponseError\'>"}'],
      [sevkit, 409, null],
    ] as const) {
      const ref = await awaiting(crn);
      const p = packet();
      expect((await crn.client().injectSecret(ref, p.h, p.s)).status).toBe(200);
      const r = await crn.client().injectSecret(ref, p.h, p.s);
      expect([r.status, r.text]).toEqual([status, body ?? `{"error":"VM ${ref} already received its secret"}`]);
      expect(crn.launcher.vms.at(-1)!.injected.length).toBe(1);
    }
  });

  it('inject_secret before initialize: aleph 500 QMP socket missing (it has no state check), sevkit 409', async () => {
    for (const [crn, status, body] of [
      [aleph, 500, '{"error": "VM is not running (QMP socket missing)", "error_type": "<class \'RuntimeError\'>"}'],
      [sevkit, 409, null],
    ] as const) {
      const ref = await crn.notify(newRef());
      const p = packet();
      const r = await crn.client().injectSecret(ref, p.h, p.s);
      expect([r.status, r.text]).toEqual([status, body ?? `{"error":"VM ${ref} is allocated, not awaiting a secret"}`]);
    }
  });

  it('wrong method: aleph 404 "404: Not Found", sevkit 405 with Allow', async () => {
    const ref = await aleph.notify(newRef());
    const p = AlephStyleClient.path(ref, 'initialize');
    const a = await rawRequest(`${aleph.url}${p}`, { headers: aleph.client().authHeaders('GET', p) });
    expect([a.status, a.text]).toEqual([404, '{"error": "404: Not Found"}']);
    const alloc = await rawRequest(`${aleph.url}/control/allocation/notify`);
    expect([alloc.status, alloc.text]).toEqual([404, '{"error": "404: Not Found"}']);
    const s = await rawRequest(`${sevkit.url}${p}`);
    expect([s.status, s.text, s.headers.allow]).toEqual([405, '{"error":"Method Not Allowed"}', 'POST']);
    const s2 = await rawRequest(`${sevkit.url}/control/allocations`);
    expect([s2.status, s2.headers.allow]).toEqual([405, 'POST']);
  });

  it('unknown path: 404 in both modes', async () => {
    expect((await rawRequest(`${aleph.url}/nope`)).text).toBe('{"error": "404: Not Found"}');
    const s = await rawRequest(`${sevkit.url}/nope`);
    expect([s.status, s.text]).toEqual([404, '{"error":"Not Found"}']);
  });

  it('error texts: unknown VM, invalid ref (non-ASCII escaped as Python does), non-JSON body, plain-text 403', async () => {
    const ref = newRef();
    const m = await aleph.client().measurement(ref);
    expect([m.status, m.text]).toEqual([404, `{"error": "No virtual machine with ref ${ref}"}`]);
    const bad = '/control/machine/é/confidential/measurement';
    const r = await rawRequest(`${aleph.url}${encodeURI(bad)}`, { headers: aleph.client().authHeaders('GET', bad) });
    expect([r.status, r.text]).toEqual([400, `{"error": "Invalid ref: '\\u00e9'"}`]);
    const s = await rawRequest(`${sevkit.url}${encodeURI(bad)}`, { headers: sevkit.client().authHeaders('GET', bad) });
    expect([s.status, s.text]).toEqual([400, `{"error":"Invalid ref: 'é'"}`]);

    const own = await aleph.notify(newRef());
    const p = AlephStyleClient.path(own, 'inject_secret');
    const nj = await rawRequest(`${aleph.url}${p}`, { method: 'POST', body: 'not json', headers: aleph.client().authHeaders('POST', p) });
    expect([nj.status, nj.text]).toEqual([400, '{"error": "Body is not valid JSON"}']);

    for (const crn of [aleph, sevkit]) {
      const vm = await crn.notify(newRef());
      const other = crn.client(ethAccount());
      const u = await other.measurement(vm);
      expect([u.status, u.text, u.headers['content-type']]).toEqual([403, 'Unauthorized sender', 'text/plain; charset=utf-8']);
    }
  });

  it('auth failures: JSON {"error": reason} with 400/401, spaced the mode\'s way', async () => {
    const ref = await aleph.notify(newRef());
    const noAuth = await rawRequest(`${aleph.url}${AlephStyleClient.path(ref, 'measurement')}`);
    expect(noAuth.status).toBe(400);
    expect(noAuth.text).toMatch(/^\{"error": "[^"]+"\}$/);
    const elsewhere = new AlephStyleClient(aleph.url, owner, { domain: 'other.example' });
    const d = await elsewhere.measurement(ref);
    expect(d.status).toBe(401);
    expect(d.text).toMatch(/^\{"error": "Invalid domain: Signed: 'other.example' != 'crn.test'"\}$/);
  });
});

describe('SOL and ETH wallets, signed the way aleph signs them', () => {
  it('a SOL owner and an ETH owner each run the whole sequence', async () => {
    for (const who of [solAccount(), ethAccount()]) {
      const ref = await awaiting(aleph, who);
      expect((await aleph.client(who).measurement(ref)).status).toBe(200);
      const p = packet();
      expect((await aleph.client(who).injectSecret(ref, p.h, p.s)).status).toBe(200);
    }
  });
});

describe("aleph's users' bugs, as cases the CRN passes", () => {
  const refused = () =>
    Object.assign(new Error('QMP sev-inject-launch-secret failed'), { desc: "SEV: failed to inject secret ret=1 fw_error=11 'Bad measurement'" });

  it('#668 sevkit: a refused secret is a 422 and the VM stays re-injectable; re-initialise meanwhile is 409, never 500', async () => {
    const ref = await awaiting(sevkit);
    const vm = sevkit.launcher.vms.at(-1)!;
    vm.rejectInject = refused();
    const p = packet();
    const r = await sevkit.client().injectSecret(ref, p.h, p.s);
    expect(r.status).toBe(422);
    expect(JSON.parse(r.text).error).toBe(
      `The secret packet was refused (SEV: failed to inject secret ret=1 fw_error=11 'Bad measurement'); VM ${ref} still awaits its secret: send a packet built for this launch`,
    );
    expect(sevkit.srv.service.state(ref)).toBe('awaiting-secret');
    const again = await sevkit.client().initialize(ref, session(), godh());
    expect(again.status).toBe(409);
    vm.rejectInject = undefined;
    const ok = await sevkit.client().injectSecret(ref, p.h, p.s);
    expect([ok.status, sevkit.srv.service.state(ref)]).toEqual([200, 'running']);
  });

  it("#668 aleph: the refusal is aleph's 500 with QEMU's text, and a retry still works", async () => {
    const ref = await awaiting(aleph);
    const vm = aleph.launcher.vms.at(-1)!;
    vm.rejectInject = refused();
    const p = packet();
    const r = await aleph.client().injectSecret(ref, p.h, p.s);
    expect([r.status, r.text]).toEqual([
      500,
      `{"error": "SEV: failed to inject secret ret=1 fw_error=11 'Bad measurement'", "error_type": "<class 'qmp.QMPResponseError'>"}`,
    ]);
    vm.rejectInject = undefined;
    expect((await aleph.client().injectSecret(ref, p.h, p.s)).status).toBe(200);
  });

  it('#668 / aleph-client #256: after a wrong password the guest stops; initialize again, with the kept session files, is a new launch (200), in both modes', async () => {
    for (const crn of [sevkit, aleph]) {
      const ref = await crn.notify(newRef());
      const kept = { s: session(), g: godh() };
      expect((await crn.client().initialize(ref, kept.s, kept.g)).status).toBe(200);
      await until(() => crn.srv.service.state(ref) === 'awaiting-secret');
      const p = packet();
      expect((await crn.client().injectSecret(ref, p.h, p.s)).status).toBe(200);
      const first = crn.launcher.vms.at(-1)!;
      // GRUB could not unlock the disk: with --no-reboot QEMU exits.
      first.exit('guest powered off');
      await until(() => crn.srv.service.state(ref) === 'stopped');
      // The session files exist until the launch is measured (then QEMU has them): read them before that.
      crn.launcher.autoReady = false;
      const r = await crn
        .client()
        .initialize(ref, kept.s, kept.g)
        .finally(() => (crn.launcher.autoReady = true));
      expect([r.status, r.text]).toEqual([200, `Started VM with ref ${ref}`]);
      await until(() => crn.launcher.vms.at(-1) !== first);
      const second = crn.launcher.vms.at(-1)!;
      expect([fs.readFileSync(second.spec.sessionFile, 'latin1'), fs.readFileSync(second.spec.godhFile, 'latin1')]).toEqual([kept.s, kept.g]);
      second.becomeReady();
      await until(() => crn.srv.service.state(ref) === 'awaiting-secret');
      expect(fs.existsSync(second.spec.sessionFile)).toBe(false);
      expect((await crn.client().injectSecret(ref, p.h, p.s)).status).toBe(200);
    }
  });

  it('#966: allocation pushes never stop or re-create a VM awaiting its owner', async () => {
    const ref = newRef();
    api.messages.set(ref, instanceMessage({ ref, owner: owner.address, firmware: FW_HASH, nodeHash: NODE }));
    const push = (list: string[]) =>
      post(aleph.url, '/control/allocations', { persistent_vms: [], instances: list, on_demand_vms: [], jobs: [] }, { 'X-Auth-Signature': TOKEN });
    const first = await push([ref]);
    expect([first.status, first.text]).toEqual([200, `{"success": true, "successful": ["${ref}"], "failing": [], "stopped": [], "errors": {}}`]);
    expect((await aleph.client().initialize(ref, session(), godh())).status).toBe(200);
    await until(() => aleph.srv.service.state(ref) === 'awaiting-secret');
    const vms = aleph.launcher.vms.length;
    const vm = aleph.launcher.vms.at(-1)!;
    const before = JSON.parse((await aleph.client().measurement(ref)).text);
    for (const list of [[ref], [], [ref]]) expect((await push(list)).status).toBe(200);
    expect(aleph.srv.service.state(ref)).toBe('awaiting-secret');
    expect([aleph.launcher.vms.length, vm.stopped]).toEqual([vms, false]);
    expect(JSON.parse((await aleph.client().measurement(ref)).text)).toEqual(before);
    const p = packet();
    expect((await aleph.client().injectSecret(ref, p.h, p.s)).status).toBe(200);
  });

  it('#985: initialize sent while the allocation is still being registered waits for it', async () => {
    for (const crn of [aleph, sevkit]) {
      const ref = newRef();
      api.messages.set(ref, instanceMessage({ ref, owner: owner.address, firmware: FW_HASH, nodeHash: NODE }));
      let release!: () => void;
      api.hold = new Promise((r) => (release = r));
      const asked = api.requests.length;
      const notify = post(crn.url, '/control/allocation/notify', { instance: ref });
      await until(() => api.requests.slice(asked).some((q) => q.includes(ref)));
      const init = crn.client().initialize(ref, session(), godh());
      await new Promise((r) => setTimeout(r, 100));
      release();
      api.hold = undefined;
      const [n, i] = await Promise.all([notify, init]);
      expect(n.status, n.text).toBe(200);
      expect([i.status, i.text]).toEqual([200, `Started VM with ref ${ref}`]);
    }
  });
});

describe("aleph's allocation endpoints", () => {
  it('/control/allocations checks the token as aleph does (sha256 of X-Auth-Signature)', async () => {
    const ref = newRef();
    api.messages.set(ref, instanceMessage({ ref, owner: owner.address, firmware: FW_HASH, nodeHash: NODE }));
    const body = { persistent_vms: [], instances: [ref] };
    for (const h of [{}, { 'X-Auth-Signature': 'wrong' }, { 'X-Auth-Signature': allocationTokenHash(TOKEN) }] as Record<string, string>[]) {
      const r = await post(aleph.url, '/control/allocations', body, h);
      expect([r.status, r.text]).toEqual([401, '{"error": "Authentication token received is invalid"}']);
    }
    expect(aleph.srv.service.state(ref)).toBeUndefined();
    const ok = await post(aleph.url, '/control/allocations', body, { 'X-Auth-Signature': TOKEN });
    expect(ok.status).toBe(200);
    expect(aleph.srv.service.list().find((v) => v.ref === ref)).toMatchObject({ owner: owner.address, state: 'allocated', policy: 1 });
  });

  it('registers the VM from the instance message: policy and firmware from trusted_execution', async () => {
    const ref = newRef();
    api.messages.set(ref, instanceMessage({ ref, owner: owner.address, firmware: FW_HASH, policy: 5, nodeHash: NODE }));
    expect((await post(aleph.url, '/control/allocation/notify', { instance: ref })).status).toBe(200);
    expect((await aleph.client().initialize(ref, session(), godh())).status).toBe(200);
    await until(() => aleph.srv.service.state(ref) === 'awaiting-secret');
    const spec = aleph.launcher.vms.at(-1)!.spec;
    expect([spec.policy, spec.firmware, spec.vcpus, spec.memoryMb]).toEqual([5, path.join(tmp, 'OVMF.fd'), 1, 512]);
  });

  it('notify refuses what cannot run here: not confidential, another node, unknown firmware', async () => {
    const cases: [unknown, number, string][] = [
      [{ confidential: false }, 400, '{"code": "not_confidential", "description": "Instance is not a confidential instance"}'],
      [{ nodeHash: 'b'.repeat(64) }, 400, '{"error": "400: Instance is allocated to a different node"}'],
      [{ firmware: 'c'.repeat(64) }, 400, `{"error": "400: firmware ${'c'.repeat(64)} is not available on this CRN"}`],
    ];
    for (const [over, status, body] of cases) {
      const ref = newRef();
      api.messages.set(ref, instanceMessage({ ref, owner: owner.address, firmware: FW_HASH, nodeHash: NODE, ...(over as object) }));
      const r = await post(aleph.url, '/control/allocation/notify', { instance: ref });
      expect([r.status, r.text]).toEqual([status, body]);
      expect(aleph.srv.service.state(ref)).toBeUndefined();
    }
  });
});

describe("aleph's API server: missing, unreachable, slow", () => {
  it('notify for a hash the network does not have is 404; an unreachable API server is 503 naming the failure', async () => {
    const ref = newRef();
    const r = await post(aleph.url, '/control/allocation/notify', { instance: ref });
    expect([r.status, r.text]).toEqual([404, `{"error": "No message found for hash ${ref}"}`]);
    const dead = await startCrnServer({
      host: '127.0.0.1',
      port: 0,
      domain: 'crn.test',
      certs: new FakeCerts(),
      launcher: new FakeLauncher(),
      runDir: fs.mkdtempSync(path.join(tmp, 'run-')),
      extensions: [new AlephAllocations({ fetchMessage: httpMessageFetcher('http://127.0.0.1:1'), resolveFirmware: () => undefined })],
    });
    try {
      const d = await post(dead.url, '/control/allocation/notify', { instance: ref });
      expect(d.status).toBe(503);
      const body = JSON.parse(d.text);
      expect(body).toMatchObject({ success: false, failing: [ref] });
      expect(body.errors[ref]).toMatch(/^AlephApiError\('aleph message: cannot reach http:\/\/127\.0\.0\.1:1\//);
    } finally {
      await dead.close();
    }
  });

  it('an owner request waits for a registration in progress only up to pendingWaitMs, then 404', async () => {
    const crn = await startCrn('sevkit', { pendingWaitMs: 300 });
    const ref = newRef();
    api.messages.set(ref, instanceMessage({ ref, owner: owner.address, firmware: FW_HASH, nodeHash: NODE }));
    let release!: () => void;
    api.hold = new Promise((r) => (release = r));
    try {
      const asked = api.requests.length;
      const notify = post(crn.url, '/control/allocation/notify', { instance: ref });
      await until(() => api.requests.slice(asked).some((q) => q.includes(ref)));
      const m = await crn.client().measurement(ref);
      expect([m.status, m.text]).toEqual([404, `{"error":"No virtual machine with ref ${ref}"}`]);
      release();
      expect((await notify).status).toBe(200);
    } finally {
      release();
      api.hold = undefined;
    }
  });
});

describe('authorisation hook', () => {
  it('a failing aggregate fetch refuses the delegate, never the owner; an owner without aggregate delegates nobody', async () => {
    const delegate = ethAccount();
    const failing = await startCrn('aleph', {
      authorize: alephSecurityAggregateAuthorizer({ fetchAggregate: httpAggregateFetcher('http://127.0.0.1:1'), onError: () => undefined }),
    });
    const ref = await failing.notify(newRef());
    expect((await failing.client(delegate).initialize(ref, session(), godh())).text).toBe('Unauthorized sender');
    expect((await failing.client(owner).initialize(ref, session(), godh())).status).toBe(200);
    const hooked = await startCrn('aleph', { authorize: alephSecurityAggregateAuthorizer({ fetchAggregate: httpAggregateFetcher(api.url) }) });
    const lonely = ethAccount();
    const ref2 = await hooked.notify(newRef(), lonely);
    expect((await hooked.client(delegate).initialize(ref2, session(), godh())).text).toBe('Unauthorized sender');
  });

  it("aleph's security aggregate: a delegated wallet is authorised, others get 403; without the hook only the exact owner", async () => {
    const delegateSol = solAccount();
    const delegateEth = ethAccount();
    const postOnly = ethAccount();
    api.security.set(owner.address, {
      authorizations: [
        { address: delegateSol.address, types: ['INSTANCE'] },
        // Case differs from the wallet's checksummed form: ETH addresses compare case-insensitively.
        { address: delegateEth.address.toLowerCase() },
        { address: postOnly.address, types: ['POST', 'AGGREGATE'] },
      ],
    });
    const hooked = await startCrn('aleph', { authorize: alephSecurityAggregateAuthorizer({ fetchAggregate: httpAggregateFetcher(api.url) }) });
    for (const who of [delegateSol, delegateEth]) {
      const ref = await hooked.notify(newRef());
      const r = await hooked.client(who).initialize(ref, session(), godh());
      expect([r.status, r.text]).toEqual([200, `Started VM with ref ${ref}`]);
      await until(() => hooked.srv.service.state(ref) === 'awaiting-secret');
      expect((await hooked.client(who).measurement(ref)).status).toBe(200);
    }
    for (const who of [postOnly, ethAccount()]) {
      const ref = await hooked.notify(newRef());
      const r = await hooked.client(who).initialize(ref, session(), godh());
      expect([r.status, r.text]).toEqual([403, 'Unauthorized sender']);
    }
    // The owner itself never needs the aggregate.
    const asked = api.requests.length;
    const mine = await hooked.notify(newRef());
    expect((await hooked.client(owner).initialize(mine, session(), godh())).status).toBe(200);
    expect(api.requests.slice(asked).filter((q) => q.includes('aggregates'))).toEqual([]);

    // Aggregates are cached (aleph's 120 s): another request of the same delegate asks nothing.
    const again = api.requests.length;
    const ref2 = await hooked.notify(newRef());
    expect((await hooked.client(delegateSol).initialize(ref2, session(), godh())).status).toBe(200);
    expect(api.requests.slice(again).filter((q) => q.includes('aggregates'))).toEqual([]);

    // Default rule (no hook): the same delegate is refused.
    const ref = await aleph.notify(newRef());
    const r = await aleph.client(delegateSol).initialize(ref, session(), godh());
    expect([r.status, r.text]).toEqual([403, 'Unauthorized sender']);
  });
});
