/**
 * A plain C client of /dev/sev-guest (test/sim/snp_guest_client.c) under the
 * simulator's shim, and under valgrind memcheck when it is installed: the shim's
 * guest-device path from C (bad pointers, guard bytes past the response and
 * certs_len, the INVALID_LEN rewrite). The C program checks; this wants 0 failed.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { startSim, type SimSession } from '../../lib/sim/session.js';
import { findShim } from '../../lib/sim/env.js';

const SOURCE = path.join(ROOT, 'test/sim/snp_guest_client.c');
const cc = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);
const valgrind = spawnSync('valgrind', ['--version'], { stdio: 'ignore' }).status === 0;
let shimOk = true;
try {
  findShim();
} catch {
  shimOk = false;
}
const skip = process.env.SEVKIT_HW === '1' ? 'SEVKIT_HW=1' : !cc ? 'no C compiler' : !shimOk ? 'shim not built' : undefined;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    // Asynchronous: the daemon answers from this process's event loop.
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('error', reject);
    const timer = setTimeout(() => c.kill('SIGKILL'), 150_000);
    c.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe.skipIf(skip)('a C client of /dev/sev-guest under the simulator', () => {
  let dir: string;
  let binary: string;
  let sim: SimSession;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-snpc-'));
    binary = path.join(dir, 'snp_guest_client');
    const b = spawnSync(cc!, ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-g', '-O0', '-o', binary, SOURCE], { encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`${cc} failed:\n${b.stderr}`);
    sim = await startSim({ stateDir: path.join(dir, 'state'), seed: '1' });
  }, 180_000);

  afterAll(async () => {
    await sim?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('passes every check', async () => {
    const r = await run(binary, [], sim.env);
    expect(r.out).toMatch(/^\d+ checks, 0 failed$/m);
    expect(Number(/^(\d+) checks/m.exec(r.out)![1])).toBeGreaterThanOrEqual(28);
    expect(r.code).toBe(0);
  }, 180_000);

  it.skipIf(!valgrind)(
    'and under valgrind memcheck: no memory errors in the shim',
    async () => {
      const r = await run('valgrind', ['--tool=memcheck', '--error-exitcode=99', '--num-callers=30', binary], sim.env);
      expect(r.out).toMatch(/^\d+ checks, 0 failed$/m);
      expect(r.out).toMatch(/ERROR SUMMARY: 0 errors/);
      expect(r.code).toBe(0);
    },
    180_000,
  );
});
