/**
 * A plain C /dev/sev client (test/native/devsev_client.c, built here with cc
 * against the kernel's <linux/psp-sev.h>) run under the simulator's shim:
 * every ioctl's success and error paths, bad pointers (EFAULT, never a
 * crash), short lengths, read-only fds, dup'd and forked fds, fopen(), each
 * errno and firmware status as the ccp driver gives them. The C program
 * checks and reports; this test builds it, runs it, and wants 0 failures.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { startSim, type SimSession } from '../../lib/sim/session.js';

const SOURCE = path.join(ROOT, 'test/native/devsev_client.c');
const cc = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);
let skipReason: string | undefined = cc ? undefined : 'no C compiler (cc, gcc or clang) on PATH';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolve, reject) => {
    // Asynchronous: the simulator daemon answers from this process's event loop.
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('error', reject);
    const timer = setTimeout(() => c.kill('SIGKILL'), 120_000);
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out });
    });
  });
}

describe('a C client of /dev/sev under the simulator', () => {
  let dir: string;
  let binary: string;
  let sim: SimSession | undefined;
  let sim616: SimSession | undefined;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-cclient-'));
    binary = path.join(dir, 'devsev_client');
    if (cc) {
      const b = spawnSync(cc, ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-O1', '-o', binary, SOURCE], { encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`${cc} failed:\n${b.stderr}`);
      // Built, but the host has no kernel uapi header: the program says so with 77.
      const probe = spawnSync(binary, [], { env: { ...process.env, LD_PRELOAD: '' }, encoding: 'utf8' });
      if (probe.status === 77) skipReason = `built without <linux/psp-sev.h> (${probe.stdout.trim()})`;
    }
    if (!skipReason) {
      sim = await startSim({ stateDir: path.join(dir, 'state'), seed: '1' });
      sim616 = await startSim({ stateDir: path.join(dir, 'state-616'), seed: '1', kernel: '6.16' });
    }
  }, 180_000);

  afterAll(async () => {
    await sim?.close();
    await sim616?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('passes every check against the simulated driver (pre-6.16)', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const r = await run(binary, [], sim!.env);
    expect(r.signal).toBeNull();
    expect(r.out).toMatch(/^\d+ checks, 0 failed$/m);
    expect(r.code).toBe(0);
    expect(Number(/^(\d+) checks/m.exec(r.out)![1])).toBeGreaterThanOrEqual(90);
  }, 180_000);

  it('passes every check against the 6.16 driver (implicit INIT shuts down again)', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const r = await run(binary, ['6.16'], sim616!.env);
    expect(r.signal).toBeNull();
    expect(r.out).toMatch(/^\d+ checks, 0 failed$/m);
    expect(r.code).toBe(0);
  }, 180_000);
});
