/**
 * VM lifetime independent of the supervisor: records, adoption by a second
 * supervisor on the same run root (QMP reconnected, state and measurement
 * restored), records of dead or unrelated processes removed without touching
 * them, keepVms, and the run-root / run-dir safety checks in the library.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Supervisor } from '../../lib/vm/index.js';
import { procIdentity } from '../../lib/vm/proc.js';
import { CrnService } from '../../lib/crn/service.js';
import { UnsafeDirError } from '../../lib/util/fs.js';
import { buildSecret, createSession } from '../../lib/launch/index.js';
import { makeDemoFirmware } from '../../lib/demo/demo.js';
import { FakeCerts, FakeLauncher } from '../crn/fakes.js';
import { filesUnder, processesMentioning, tmpRunRoot } from './helpers.js';
import { makeSimEnv, type SimEnv } from './simenv.js';

let sim: SimEnv;
let base: string;
let firmware: string;
let pdh: Buffer;

beforeAll(async () => {
  sim = await makeSimEnv({ realQemu: 'none' });
  base = tmpRunRoot('adopt');
  firmware = makeDemoFirmware(base).path;
  pdh = fs.readFileSync(path.join(sim.stateDir, 'pdh.cert'));
});
afterAll(() => {
  fs.rmSync(base, { recursive: true, force: true });
  sim?.cleanup();
});

function sup(root: string): Supervisor {
  return new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot: root, launchTimeoutMs: 30_000 });
}

function spec(name: string) {
  const s = createSession(pdh, 1);
  return { name, firmware, memMb: 64, sev: { policy: 1, godh: s.godhB64, session: s.sessionB64 } };
}

describe('adoption', () => {
  it('a second supervisor adopts a VM left running with keepVms: same process, measurement, QMP works, then a clean stop', async () => {
    const root = path.join(base, 'keep');
    const a = sup(root);
    const vm = await a.launch(spec('keep-1'));
    const rec = JSON.parse(fs.readFileSync(path.join(vm.runDir!, 'vm.json'), 'utf8')) as {
      pid: number;
      startTime: string;
      state: string;
      measurement: unknown;
    };
    expect((fs.statSync(path.join(vm.runDir!, 'vm.json')).mode & 0o777).toString(8)).toBe('600');
    expect(rec).toMatchObject({ pid: vm.pid, startTime: procIdentity(vm.pid!)!.startTime, state: 'awaiting-secret' });
    const m1 = await vm.measurement();
    await a.close({ keepVms: true });
    expect(procIdentity(rec.pid)).toBeDefined();

    const b = sup(root);
    const t0 = performance.now();
    const { adopted, removed } = await b.adopt();
    const ms = performance.now() - t0;
    process.stdout.write(`adopt: 1 VM in ${ms.toFixed(0)} ms\n`);
    expect(removed).toEqual([]);
    expect(adopted.map((v) => [v.name, v.state, v.pid, v.adopted])).toEqual([['keep-1', 'awaiting-secret', rec.pid, true]]);
    const v2 = b.get('keep-1')!;
    expect(await v2.measurement()).toEqual(m1);
    expect((await v2.qmpClient!.queryStatus()).status).toBe('prelaunch');
    await v2.resume();
    expect(v2.state).toBe('running');
    expect(JSON.parse(fs.readFileSync(path.join(v2.runDir!, 'vm.json'), 'utf8')).state).toBe('running');
    await b.close();
    expect(procIdentity(rec.pid)).toBeUndefined();
    expect(processesMentioning(root)).toEqual([]);
    expect(fs.existsSync(root)).toBe(false);
  });

  it('an adopted VM whose QEMU dies is reported failed and its files removed', async () => {
    const root = path.join(base, 'dies');
    const a = sup(root);
    const vm = await a.launch(spec('dies-1'));
    const pid = vm.pid!;
    await a.close({ keepVms: true });
    const b = sup(root);
    const [v] = (await b.adopt()).adopted;
    const ended = new Promise<Error>((r) => v!.once('failed', r));
    process.kill(-pid, 'SIGKILL');
    expect((await ended).message).toMatch(/QEMU for VM dies-1 was killed by|exited \(adopted/);
    expect(await v!.waitEnded()).toBe('failed');
    await b.close();
    expect(filesUnder(root)).toEqual([]);
  });

  it('records of dead processes, of a reused pid and of a launch cut short are removed; an unrelated process is never signalled', async () => {
    const root = path.join(base, 'junk');
    const b0 = sup(root);
    const sleeper = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    await new Promise((r) => sleeper.once('spawn', r));
    const st = procIdentity(sleeper.pid!)!;
    const mk = (name: string, fields: Record<string, unknown>) => {
      const dir = fs.mkdtempSync(path.join(root, `${name}-`));
      fs.writeFileSync(
        path.join(dir, 'vm.json'),
        JSON.stringify({
          version: 1,
          name,
          state: 'awaiting-secret',
          pid: sleeper.pid,
          startTime: st.startTime,
          pgid: sleeper.pid,
          runDir: dir,
          qmpSocket: path.join(dir, 'qmp.sock'),
          spec: { name, firmware },
          ...fields,
        }),
        { mode: 0o600 },
      );
      return dir;
    };
    const reused = mk('reused', { startTime: String(BigInt(st.startTime) + 1n) }); // same pid, another process
    const dead = mk('dead', { pid: 4_000_000, pgid: 4_000_000 });
    const garbage = fs.mkdtempSync(path.join(root, 'garbage-'));
    fs.writeFileSync(path.join(garbage, 'vm.json'), '{"version":1,');
    const outside = mk('outside', {});
    // A record naming a run dir other than its own is not trusted.
    const rec = JSON.parse(fs.readFileSync(path.join(outside, 'vm.json'), 'utf8'));
    fs.writeFileSync(path.join(outside, 'vm.json'), JSON.stringify({ ...rec, runDir: '/tmp', qmpSocket: '/tmp/qmp.sock' }));
    const { adopted, removed } = await b0.adopt();
    expect(adopted).toEqual([]);
    // By VM name when the record was readable, else by directory name.
    expect(removed.sort()).toEqual(['dead', path.basename(garbage), path.basename(outside), 'reused'].sort());
    for (const d of [reused, dead, garbage, outside]) expect(fs.existsSync(d)).toBe(false);
    expect(procIdentity(sleeper.pid!)).toBeDefined(); // never signalled: its start time did not match / no record trusted
    // The same process recorded with its true start time but still 'starting': a launch that cannot be resumed is killed.
    const b1 = sup(path.join(base, 'junk2'));
    const dir = fs.mkdtempSync(path.join(b1.runRoot, 'starting-'));
    fs.writeFileSync(
      path.join(dir, 'vm.json'),
      JSON.stringify({
        version: 1,
        name: 'starting',
        state: 'starting',
        pid: sleeper.pid,
        startTime: st.startTime,
        pgid: sleeper.pid,
        runDir: dir,
        qmpSocket: path.join(dir, 'qmp.sock'),
        spec: { name: 'starting', firmware },
      }),
    );
    const gone = new Promise((r) => sleeper.once('exit', r));
    expect((await b1.adopt()).removed).toEqual(['starting']);
    await gone;
    expect(fs.existsSync(dir)).toBe(false);
    await b0.close();
    await b1.close();
  });
});

describe("the simulated guest's secret", () => {
  it('goes when the guest is decommissioned, even when its QEMU wrapper is SIGKILLed', async () => {
    const root = path.join(base, 'secret');
    const a = sup(root);
    const s = createSession(pdh, 1);
    const vm = await a.launch({ name: 'secret-1', firmware, memMb: 64, sev: { policy: 1, godh: s.godhB64, session: s.sessionB64 } });
    const m = await vm.measurement();
    const b = buildSecret({ tek: s.tek, tik: s.tik, measurement: Buffer.from(m.launchMeasure, 'base64'), plaintext: Buffer.from('gone-with-the-guest') });
    await vm.injectSecret({ packetHeader: b.header.toString('base64'), secret: b.payload.toString('base64') });
    const dir = path.join(sim.stateDir, 'guests', 'secret-1');
    expect(fs.readFileSync(path.join(dir, 'launch-secret.bin')).toString()).toBe('gone-with-the-guest');
    const pid = vm.pid!;
    await a.close({ keepVms: true });
    process.kill(-pid, 'SIGKILL');
    // In-process firmware (no daemon) has nobody left to decommission a SIGKILLed guest.
    if (sim.daemon) {
      const end = Date.now() + 20_000;
      while (fs.existsSync(dir) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(fs.existsSync(dir)).toBe(false);
    }
    await sup(root).adopt();
    expect(filesUnder(root).filter((f) => f !== 'supervisor.lock')).toEqual([]);
  });
});

describe('run-dir safety checks in the library', () => {
  it('Supervisor and CrnService refuse a group-writable, foreign or symlinked directory with UnsafeDirError', () => {
    const open = path.join(base, 'open');
    fs.mkdirSync(open, { mode: 0o777 });
    fs.chmodSync(open, 0o777);
    const link = path.join(base, 'link');
    fs.symlinkSync(os.tmpdir(), link);
    for (const dir of [open, link]) {
      expect(() => new Supervisor({ runRoot: dir })).toThrow(UnsafeDirError);
      let err: unknown;
      try {
        new CrnService({ domain: 'x', certs: new FakeCerts(), launcher: new FakeLauncher(), runDir: dir });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UnsafeDirError);
      expect((err as UnsafeDirError).code).toBe('ERR_UNSAFE_DIR');
      expect((err as Error).message).toMatch(
        new RegExp(`^${dir}: the run directory must be a directory of this user, not writable by group or others \\((mode 777|a symlink)\\)$`),
      );
    }
    // Nothing was created inside the refused directory.
    expect(fs.readdirSync(open)).toEqual([]);
  });
});

describe('CrnService records', () => {
  it('allocations survive a restart; a clean close leaves the run dir empty', async () => {
    const runDir = path.join(base, 'crn-rec');
    const ref = crypto.randomBytes(32).toString('hex');
    const s1 = new CrnService({ domain: 'x', certs: new FakeCerts(), launcher: new FakeLauncher(), runDir });
    await s1.restored();
    await s1.allocate({ ref, owner: `0x${'ab'.repeat(20)}`, firmware, policy: 1, vcpus: 1, memory_mb: 256 });
    expect((fs.statSync(path.join(runDir, 'machines', `${ref}.json`)).mode & 0o777).toString(8)).toBe('600');
    // A crash: no close. The next service on the run dir knows the allocation.
    const s2 = new CrnService({ domain: 'x', certs: new FakeCerts(), launcher: new FakeLauncher(), runDir });
    expect((await s2.restored()).allocated).toEqual([ref]);
    expect(s2.state(ref)).toBe('allocated');
    await s2.close();
    expect(filesUnder(runDir)).toEqual([]);
  });
});
