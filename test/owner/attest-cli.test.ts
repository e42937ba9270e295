/**
 * The two CLIs end to end on the simulator: `sevkit guest agent` (its reports
 * from the simulated /dev/sev-guest through the addon and the shim) and
 * `sevkit attest` (VCEK from the KDS stand-in, the TEST roots given with
 * --roots): the secret arrives 0600; other firmware is refused in one line that
 * names the field; usage errors exit 2. The agent process is gone afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEntry, ownSimSkipReason, ROOT, runCli, VECTORS } from '../helpers/cli.js';
import { startSim, type SimSession } from '../../lib/sim/session.js';
import { SimSnpGuest } from '../../lib/sim/snp/guest.js';
import { SimKdsServer } from '../../lib/sim/snp/kds-server.js';
import { toPem } from '../../lib/sim/snp/certs.js';
import { writeSnpGuestConfig } from '../../lib/sim/snp/config.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { snpLaunchDigest } from '../../lib/snp/digest.js';

const skip = ownSimSkipReason();
const AMDSEV = path.join(VECTORS, 'sev-snp-measure', 'ovmf_AmdSev_suffix.bin');
const OVMFX64 = path.join(VECTORS, 'sev-snp-measure', 'ovmf_OvmfX64_suffix.bin');

describe.skipIf(skip)('sevkit guest agent ↔ sevkit attest', () => {
  let dir: string;
  let sim: SimSession;
  let kds: SimKdsServer;
  let agent: ChildProcess | undefined;
  let port = 0;
  const wallet = EthWallet.generate();
  const files: Record<string, string> = {};

  async function startAgent(firmware: string): Promise<void> {
    writeSnpGuestConfig(sim.stateDir, { measurement: snpLaunchDigest({ firmware: fs.readFileSync(firmware), vcpus: 2, vcpuType: 'EPYC-v4' }).toString('hex') });
    agent = spawn(
      process.execPath,
      [...cliEntry(), 'guest', 'agent', '--listen', '127.0.0.1:0', '--owner', wallet.address, '--secrets-dir', path.join(dir, 'secrets')],
      { cwd: ROOT, env: { ...process.env, ...sim.env } },
    );
    port = await new Promise<number>((resolve, reject) => {
      let err = '';
      const t = setTimeout(() => reject(new Error(`agent did not start: ${err}`)), 90_000);
      agent!.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        const m = /listening on [^ ]+:(\d+)/.exec(err);
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
      agent!.on('exit', (code) => reject(new Error(`agent exited ${code}: ${err}`)));
    });
  }
  async function stopAgent(): Promise<void> {
    if (!agent || agent.exitCode !== null) return;
    const gone = new Promise((r) => agent!.once('exit', r));
    agent.kill('SIGTERM');
    await gone;
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-attest-cli-'));
    sim = await startSim({ stateDir: path.join(dir, 'state'), seed: '1' });
    const guest = new SimSnpGuest(sim.daemon.platform);
    kds = await SimKdsServer.start(guest);
    const c = guest.chain('Genoa');
    files.roots = path.join(dir, 'roots.pem');
    fs.writeFileSync(files.roots, toPem(c.ask) + toPem(c.ark));
    files.wallet = path.join(dir, 'wallet.key');
    files.secret = path.join(dir, 'disk-key');
    fs.writeFileSync(files.secret, 'the disk passphrase');
  }, 240_000);
  afterAll(async () => {
    await stopAgent();
    await kds?.close();
    await sim?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the owner attests the agent and the secret is written 0600; other firmware is refused naming the field', async () => {
    // The wallet key file: a fresh key written by `sevkit wallet new`, and the agent's owner is its address.
    fs.rmSync(files.wallet, { force: true });
    expect((await runCli(['wallet', 'new', files.wallet], { timeoutMs: 60_000 })).code).toBe(0);
    const addr = (await runCli(['wallet', 'address', files.wallet, '--json'], { timeoutMs: 60_000 })).stdout;
    const owner = (JSON.parse(addr) as { address: string }).address;
    Object.defineProperty(wallet, 'address', { value: owner });
    await startAgent(AMDSEV);
    const base = (): string[] => [
      'attest',
      '--url',
      `https://127.0.0.1:${port}`,
      '--vcpus',
      '2',
      '--kds-url',
      kds.url,
      '--cache-dir',
      path.join(dir, 'kds'),
      '--roots',
      files.roots,
      '--wallet-key',
      files.wallet,
      '--secret-file',
      files.secret,
    ];
    const ok = await runCli([...base(), '--firmware', AMDSEV, '--json'], { env: sim.env, timeoutMs: 90_000 });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, injected: ['disk-key'] });
    const f = path.join(dir, 'secrets', 'disk-key');
    expect(fs.readFileSync(f, 'utf8')).toBe('the disk passphrase');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    await stopAgent();
    fs.rmSync(path.join(dir, 'secrets'), { recursive: true });

    await startAgent(OVMFX64);
    const bad = await runCli([...base(), '--firmware', AMDSEV, '--other-firmware', OVMFX64], { env: sim.env, timeoutMs: 90_000 });
    expect(bad.code).toBe(1);
    expect(
      bad.stderr
        .trim()
        .split('\n')
        .filter((l) => !/warning/.test(l)),
    ).toHaveLength(1);
    expect(bad.stderr).toMatch(/NOT trusted, nothing was sent \(measurement: .*diagnosis: .*OvmfX64/);
    expect(fs.readdirSync(path.join(dir, 'secrets'))).toEqual([]);
    await stopAgent();
    expect(agent!.exitCode).toBe(0);
  }, 240_000);

  it('usage errors exit 2', async () => {
    const r = await runCli(['attest', '--url', 'https://127.0.0.1:1', '--firmware', AMDSEV, '--vcpus', 'two', '--wallet-key', 'x'], { timeoutMs: 60_000 });
    expect(r.code).toBe(2);
    const g = await runCli(['guest', 'agent', '--listen', 'nowhere', '--owner', '0x' + '1'.repeat(40), '--secrets-dir', dir], { timeoutMs: 60_000 });
    expect(g.code).toBe(2);
  });
});
