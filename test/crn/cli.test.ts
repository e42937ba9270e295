/**
 * The CLIs end to end over the simulator: `sevkit crn serve` as a process,
 * `sevkit launch` against it, and `sevkit demo` (VM-less, so it runs anywhere).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli, startCrnServe, type CrnServeProcess } from '../helpers/cli.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { encodeCaChain } from '../../lib/certs/index.js';
import { simulatorCaChain } from '../../lib/sim/ca-chain.js';
import { makeDemoFirmware } from '../../lib/demo/demo.js';

const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;
const TOKEN = crypto.randomBytes(16).toString('hex');
const KEY = `0x${'11'.repeat(32)}`;
let tmp: string;
let serve: CrnServeProcess | undefined;
let url = '';
let firmware: string;

describe.skipIf(Boolean(simReason))('sevkit crn serve + sevkit launch (simulator, VM-less)', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-cli-'));
    firmware = makeDemoFirmware(tmp).path;
    fs.writeFileSync(path.join(tmp, 'wallet.key'), `${KEY}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(tmp, 'secret.txt'), 'hunter2-disk-password\n', { mode: 0o600 });
    fs.writeFileSync(path.join(tmp, 'ca.bin'), encodeCaChain(simulatorCaChain(process.env.SEVKIT_SIM_STATE)!));
    serve = await startCrnServe(['--listen', '127.0.0.1:0', '--domain', '127.0.0.1', '--run-dir', path.join(tmp, 'run'), '--cpu', 'EPYC-v4'], {
      env: { SEVKIT_ALLOCATION_TOKEN: TOKEN, SEVKIT_REAL_QEMU: 'none' },
      timeoutMs: 30_000,
    });
    url = serve.url;
  });

  afterAll(async () => {
    await serve?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function allocate(policy = 1, vcpus = 1): Promise<string> {
    const ref = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url }).allocate(TOKEN, { ref, owner: EthWallet.fromPrivateKey(KEY).address, firmware, policy, vcpus, memory_mb: 256 });
    return ref;
  }
  const launchArgs = (ref: string, extra: string[] = []) => [
    'launch',
    '--crn',
    url,
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
    ...extra,
  ];

  it('serve reports a simulated platform in /status/config', async () => {
    const cfg = (await new CrnClient({ url }).statusConfig()) as { sevkit: { platform: string }; computing: { ENABLE_CONFIDENTIAL_COMPUTING: boolean } };
    expect(cfg.sevkit.platform).toBe('simulated');
    expect(cfg.computing.ENABLE_CONFIDENTIAL_COMPUTING).toBe(true);
    expect((await new CrnClient({ url }).getCertificates()).length).toBe(8336);
  });

  it('launch: one progress line per step, VM running, the guest got the password', async () => {
    const ref = await allocate();
    const r = await runCli(launchArgs(ref, ['--ca', path.join(tmp, 'ca.bin')]));
    expect(r.stderr).not.toContain('hunter2');
    expect(r.code, r.stderr).toBe(0);
    const steps = r.stderr.split('\n').filter((l) => /^\[\d\/9\]/.test(l));
    expect(steps.map((l) => l.split(/\s+/)[1])).toEqual([
      'firmware',
      'certificates',
      'chain',
      'session',
      'initialize',
      'measurement',
      'verify',
      'secret',
      'inject',
    ]);
    expect(steps.every((l) => / ms /.test(l))).toBe(true);
    expect(r.stdout).toMatch(new RegExp(`VM ${ref} is running`));
    const table = fs.readFileSync(path.join(process.env.SEVKIT_SIM_STATE!, 'guests', ref, 'launch-secret.bin'));
    expect(table.includes(Buffer.from('hunter2-disk-password\0'))).toBe(true);
    expect(serve!.stderr()).not.toContain('hunter2');
  });

  it('launch refuses against AMD roots (the simulator is not AMD) and sends nothing', async () => {
    const ref = await allocate();
    const r = await runCli(launchArgs(ref, ['--generation', 'genoa']));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sevkit: launch refused at step 'chain': ASK → CEK.*the secret was not sent$/m);
    expect(serve!.stderr()).not.toMatch(new RegExp(`${ref}/confidential/(initialize|inject_secret)`));
  });

  it('launch refuses firmware other than the one the CRN boots', async () => {
    const ref = await allocate();
    const other = path.join(tmp, 'other.fd');
    const img = fs.readFileSync(firmware);
    img[0]! ^= 0xff;
    fs.writeFileSync(other, img);
    const r = await runCli([...launchArgs(ref, ['--ca', path.join(tmp, 'ca.bin')]).map((a) => (a === firmware ? other : a))]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused at step 'verify': launch measurement does not match/);
    expect(serve!.stderr()).not.toMatch(new RegExp(`${ref}/confidential/inject_secret`));
  });

  it('SEV-ES: the owner predicts the VMSAs of a pinned CPU model; a wrong model is refused', async () => {
    const ref = await allocate(0x5, 2);
    const args = launchArgs(ref, ['--ca', path.join(tmp, 'ca.bin')]).map((a) => (a === '0x1' ? '0x5' : a));
    const wrong = await runCli([...args, '--vcpus', '2', '--vcpu-type', 'EPYC-Milan']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/refused at step 'verify': launch measurement does not match/);
    // It still refuses, and says what the host did differently (the CRN launched EPYC-v4, signature 0x800f12 like EPYC).
    expect(wrong.stderr).toMatch(/the host launched 2 vCPUs of EPYC \(0x800f12\); you expected 2 vCPUs of EPYC-Milan \(0xa00f11\); the secret was not sent/);
    const ref2 = await allocate(0x5, 2);
    const ok = await runCli([...args.map((a) => (a === ref ? ref2 : a)), '--vcpus', '2', '--vcpu-type', 'EPYC-v4']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/policy 0x5 \(NODBG\|ES\)/);
    const missing = await runCli(args);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/SEV-ES/);
  });

  it('usage errors exit 2 with one line', async () => {
    const r = await runCli(['launch', '--crn', url, '--vm', 'x', '--firmware', firmware, '--policy', 'one', '--secret-file', 'f']);
    expect(r.code).toBe(2);
    const noKey = await runCli(
      ['launch', '--crn', url, '--vm', 'ab'.repeat(32), '--firmware', firmware, '--policy', '1', '--secret-file', path.join(tmp, 'secret.txt')],
      {
        env: { SEVKIT_WALLET_KEY_FILE: '' },
      },
    );
    expect(noKey.code).toBe(2);
    expect(noKey.stderr.trim().split('\n')).toHaveLength(1);
    // Flag refusals come before the secret is read (a missing secret file is not reached).
    const esNoCpu = await runCli([
      'launch',
      '--crn',
      url,
      '--vm',
      'ab'.repeat(32),
      '--firmware',
      firmware,
      '--policy',
      '0x5',
      '--secret-file',
      path.join(tmp, 'absent.txt'),
    ]);
    expect(esNoCpu.code).toBe(2);
    expect(esNoCpu.stderr).toMatch(/^sevkit: SEV-ES \(policy bit 0x4\) needs --vcpus/);
    const shared = path.join(tmp, 'shared-run');
    fs.mkdirSync(shared, { mode: 0o777 });
    fs.chmodSync(shared, 0o777);
    const unsafe = await runCli(['crn', 'serve', '--listen', '127.0.0.1:0', '--domain', 'x', '--run-dir', shared, '--no-confidential']);
    expect(unsafe.code).toBe(1);
    expect(unsafe.stderr).toBe(`sevkit: ${shared}: the run directory must be a directory of this user, not writable by group or others (mode 777)\n`);
    fs.symlinkSync(path.join(tmp, 'run'), path.join(tmp, 'run-link'));
    expect(
      (await runCli(['crn', 'serve', '--listen', '127.0.0.1:0', '--domain', 'x', '--run-dir', path.join(tmp, 'run-link'), '--no-confidential'])).code,
    ).toBe(1);
    const bad = await runCli(['crn', 'serve', '--listen', 'nope', '--domain', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--listen must be HOST:PORT/);
  });
});

describe('sevkit crn serve --max-vms', { timeout: 120_000 }, () => {
  it('refuses the allocation after the limit with 503; a limit below 1 is a usage error', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-maxvms-'));
    const fw = makeDemoFirmware(dir).path;
    const bad = await runCli([
      'crn',
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--domain',
      'x',
      '--run-dir',
      path.join(dir, 'run'),
      '--no-confidential',
      '--max-vms',
      '0',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('sevkit: --max-vms must be in [1, 65536], got 0\n');
    const child = await startCrnServe(
      ['--listen', '127.0.0.1:0', '--domain', '127.0.0.1', '--run-dir', path.join(dir, 'run'), '--no-confidential', '--quiet', '--max-vms', '2'],
      {
        env: { SEVKIT_ALLOCATION_TOKEN: TOKEN },
      },
    );
    try {
      const base = child.url;
      const allocate = (i: number) =>
        fetch(`${base}/control/allocate`, {
          method: 'POST',
          headers: { 'X-Auth-Signature': TOKEN, 'Content-Type': 'application/json' },
          body: JSON.stringify({ ref: String(i).repeat(64), owner: EthWallet.fromPrivateKey(KEY).address, firmware: fw, policy: 1, vcpus: 1, memory_mb: 512 }),
        });
      expect((await allocate(1)).status).toBe(200);
      expect((await allocate(2)).status).toBe(200);
      const third = await allocate(3);
      expect(third.status).toBe(503);
      expect(await third.text()).toMatch(/No capacity left/);
    } finally {
      await child.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(Boolean(simReason))('sevkit demo', { timeout: 180_000 }, () => {
  it('runs VM-less end to end, says SIMULATED, never prints the password, cleans up', async () => {
    const r = await runCli(['demo', '--vm-less'], { timeoutMs: 170_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SIMULATED/);
    expect(r.stdout).toMatch(/matches what the owner sent/);
    expect(r.stdout.split('\n').filter((l) => /^\[owner \d\/9\]/.test(l))).toHaveLength(9);
    expect(r.stdout).toMatch(/launch refused at step 'verify'.*the secret was not sent/);
    expect(r.stdout).toMatch(/inject_secret requests for that VM: none/);
    expect(r.stdout).toMatch(/demo: OK/);
    const m = /\[sim\] simulator started in \d+ ms \(state (.+)\/sim\)/.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(fs.existsSync(m![1]!)).toBe(false);
  });
});

describe.skipIf(Boolean(simReason))('certificate cache and platform rotation (private simulator)', { timeout: 180_000 }, () => {
  it('serves the cached chain, and the new one after `sevkit rotate` + SIGHUP', async () => {
    const { startSim } = await import('../../lib/sim/session.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-rotate-'));
    const sim = await startSim({ stateDir: path.join(dir, 'sim'), seed: '7' });
    const env = { ...sim.env, SEVKIT_REAL_QEMU: 'none', NO_COLOR: '1' };
    const crn = await startCrnServe(['--listen', '127.0.0.1:0', '--domain', 'localhost', '--run-dir', path.join(dir, 'run'), '--quiet'], { env });
    try {
      const u = crn.url;
      const get = () => new CrnClient({ url: u }).getCertificates();
      const before = await get();
      const rot = await runCli(['rotate'], { env });
      expect(rot.code, rot.stderr).toBe(0);
      expect((await get()).equals(before)).toBe(true); // cached
      crn.proc.kill('SIGHUP');
      let after = before;
      for (let i = 0; i < 50 && after.equals(before); i++) {
        await new Promise((r) => setTimeout(r, 100));
        after = await get();
      }
      expect(after.subarray(0, 0x824).equals(before.subarray(0, 0x824))).toBe(false); // new PDH
      expect(after.subarray(0x824 * 2).equals(before.subarray(0x824 * 2))).toBe(true); // same OCA and CEK
    } finally {
      await crn.stop();
      await sim.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
