#!/usr/bin/env -S node --import tsx
/**
 * Measures the CRN's lifecycle with real processes (run under the simulator:
 * `sevkit sim -- node --import tsx scripts/crn-lifecycle.ts [N...]`): for each N,
 * `crn serve` with N VM-less VMs awaiting their secret; files in the run dir;
 * SIGTERM → time until the process is gone and files left; then N VMs again,
 * SIGINT with --keep-vms, a second `crn serve` on the same run dir and its
 * adoption time (as it reports it), its stop, files left. Not part of `npm test`.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDemoFirmware } from '../lib/demo/demo.js';
import { EthWallet } from '../lib/aleph/wallet.js';
import { CrnClient } from '../lib/owner/client.js';
import { createSession } from '../lib/launch/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TOKEN = crypto.randomBytes(16).toString('hex');
const owner = EthWallet.generate();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-lifecycle-'));
const firmware = makeDemoFirmware(tmp).path;

const files = (d: string): number => (fs.existsSync(d) ? fs.readdirSync(d, { recursive: true }).length : 0);

async function serve(runDir: string, extra: string[] = []) {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(ROOT, 'lib/cli/sevkit.ts'),
      'crn',
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--domain',
      '127.0.0.1',
      '--run-dir',
      runDir,
      '--quiet',
      ...extra,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, SEVKIT_ALLOCATION_TOKEN: TOKEN, SEVKIT_REAL_QEMU: process.env.SEVKIT_REAL_QEMU ?? 'none' },
      detached: true,
    },
  );
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^listening on (\S+)$/m.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`serve exited: ${err}`)));
  });
  return { proc, url, exited, stderr: () => err };
}

async function vms(url: string, n: number): Promise<void> {
  const chain = await new CrnClient({ url }).getCertificates();
  const c = new CrnClient({ url, wallet: owner, domain: '127.0.0.1' });
  const refs: string[] = [];
  for (let i = 0; i < n; i++) {
    const ref = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url }).allocate(TOKEN, { ref, owner: owner.address, firmware, policy: 1, vcpus: 1, memory_mb: 256 });
    const s = createSession(chain.subarray(0, 0x824), 1);
    await c.initialize(ref, { session: s.sessionB64, godh: s.godhB64 });
    refs.push(ref);
  }
  for (const end = Date.now() + 300_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    const list = (await (await fetch(`${url}/about/executions/list`)).json()) as Record<string, { state: string }>;
    if (refs.every((r) => list[r]?.state === 'awaiting-secret')) return;
  }
  throw new Error('VMs did not reach awaiting-secret');
}

try {
  for (const n of (process.argv.slice(2).length ? process.argv.slice(2) : ['1', '4', '8']).map(Number)) {
    const runDir = fs.mkdtempSync(path.join(tmp, `run-${n}-`));
    let s = await serve(runDir);
    await vms(s.url, n);
    const before = files(runDir);
    let t0 = performance.now();
    s.proc.kill('SIGTERM');
    await s.exited;
    const stopMs = performance.now() - t0;
    const after = files(runDir);
    s = await serve(runDir, ['--keep-vms']);
    await vms(s.url, n);
    s.proc.kill('SIGINT');
    await s.exited;
    const kept = files(runDir);
    t0 = performance.now();
    s = await serve(runDir);
    const startMs = performance.now() - t0;
    const adopted = /adopted (\d+) running VM\(s\) in (\d+) ms/.exec(s.stderr());
    t0 = performance.now();
    s.proc.kill('SIGTERM');
    await s.exited;
    const stop2 = performance.now() - t0;
    process.stdout.write(
      (files(runDir) ? `stderr of the last crn serve: ${s.stderr()}\n` : '') +
        `N=${n}: files ${before} → ${after} after SIGTERM (stop ${stopMs.toFixed(0)} ms); --keep-vms leaves ${kept}; restart adopts ${adopted?.[1] ?? '?'} in ${adopted?.[2] ?? '?'} ms (process start to listening ${startMs.toFixed(0)} ms); its stop ${stop2.toFixed(0)} ms → ${files(runDir)} files\n`,
    );
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
