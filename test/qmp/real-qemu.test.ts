/** The QMP client against Debian's QEMU 7.2 (TCG, no SEV): the real peer's wire format. */
import { describe, it, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QmpCommandError, waitForQmp, type QmpClient } from '../../lib/qmp/index.js';
import { runCli } from '../helpers/cli.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
const haveQemu = fs.existsSync(QEMU);

let proc: ChildProcess | undefined;
let dir: string | undefined;
let client: QmpClient | undefined;

function startQemu(): { socketPath: string; exited: Promise<number | null> } {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-qemu-'));
  const socketPath = path.join(dir, 'qmp.sock');
  proc = spawn(QEMU, ['-machine', 'q35', '-nodefaults', '-display', 'none', '-S', '-m', '64', '-qmp', `unix:${socketPath},server=on,wait=off`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => proc!.on('exit', (code) => r(code)));
  return { socketPath, exited };
}

afterEach(async () => {
  client?.close();
  client = undefined;
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGKILL');
    await new Promise((r) => proc!.on('exit', r));
  }
  proc = undefined;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe.skipIf(!haveQemu)('QMP against real QEMU 7.2', () => {
  it('prelaunch → cont (RESUME) → running → quit (SHUTDOWN, exit 0)', async () => {
    const { socketPath, exited } = startQemu();
    client = await waitForQmp(socketPath, { timeoutMs: 20_000 });
    expect(client.greeting.QMP.version.qemu.major).toBe(7);
    const s0 = await client.queryStatus();
    expect(s0).toMatchObject({ status: 'prelaunch', running: false });
    const resumed = client.waitForEvent('RESUME', { timeoutMs: 10_000 });
    await client.cont();
    await resumed;
    expect(await client.queryStatus()).toMatchObject({ status: 'running', running: true });
    await client.stop();
    expect(await client.queryStatus()).toMatchObject({ status: 'paused', running: false });
    const shutdown = client.waitForEvent('SHUTDOWN', { timeoutMs: 10_000 });
    await client.quit();
    expect((await shutdown).data).toEqual({ guest: false, reason: 'host-qmp-quit' });
    expect(await exited).toBe(0);
  });

  it('reports SEV as disabled, and SEV commands fail with the QMP error class on a non-SEV guest', async () => {
    const { socketPath } = startQemu();
    client = await waitForQmp(socketPath, { timeoutMs: 20_000 });
    const info = await client.querySev();
    expect(info).toMatchObject({ enabled: false, state: 'uninit', policy: 0, handle: 0, 'sev-type': 'sev' });
    const m = await client.querySevLaunchMeasure().catch((e) => e);
    expect(m).toBeInstanceOf(QmpCommandError);
    expect(m.errorClass).toBe('GenericError');
    expect(m.desc).toBe('SEV launch measurement is not available');
    const inj = await client.sevInjectLaunchSecret({ 'packet-header': 'AAAA', secret: 'AAAA' }).catch((e) => e);
    expect(inj).toBeInstanceOf(QmpCommandError);
    expect(inj.desc).toBe('SEV not enabled for guest');
    const nf: any = await client.execute('no-such-command').catch((e) => e);
    expect(nf.errorClass).toBe('CommandNotFound');
    // Many commands in flight on the real peer.
    const all = await Promise.all(Array.from({ length: 16 }, () => client!.queryStatus()));
    expect(all.every((s) => s.status === 'prelaunch')).toBe(true);
    await client.quit();
  });

  it('sevkit qmp prints the return value as JSON and exits 1 with the class on error', async () => {
    const { socketPath } = startQemu();
    client = await waitForQmp(socketPath, { timeoutMs: 20_000 });
    client.close(); // QEMU 7.2 serves one QMP client at a time
    client = undefined;
    const ok = await runCli(['qmp', socketPath, 'query-status']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ status: 'prelaunch', singlestep: false, running: false });
    const bad = await runCli(['qmp', socketPath, 'query-sev-launch-measure']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('sevkit: QMP query-sev-launch-measure failed: GenericError: SEV launch measurement is not available\n');
    const withArgs = await runCli(['qmp', socketPath, 'qom-get', '{"path":"/machine","property":"type"}']);
    expect(withArgs.code).toBe(0);
    expect(JSON.parse(withArgs.stdout)).toBe('pc-q35-7.2-machine');
    const badJson = await runCli(['qmp', socketPath, 'qom-get', '{not json']);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/^sevkit: ARGS_JSON/);
    const badTimeout = await runCli(['qmp', socketPath, 'query-status', '--timeout', '-5']);
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.stderr).toBe("sevkit: option '--timeout <ms>' argument '-5' is invalid. --timeout must be a decimal or 0x-hex integer, got '-5'\n");
    const q = await runCli(['qmp', socketPath, 'quit']);
    expect(q.code).toBe(0);
  });
});
