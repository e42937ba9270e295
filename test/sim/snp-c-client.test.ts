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
    // Two launches as the QEMU wrapper records them, for the named-guest paths (SEVKIT_SIM_GUEST, <device>/<vm>).
    for (const [vm, byte] of [
      ['cguest', '5a'],
      ['cguest2', '3c'],
    ] as const) {
      fs.mkdirSync(path.join(sim.stateDir, 'guests', vm), { recursive: true });
      fs.writeFileSync(
        path.join(sim.stateDir, 'guests', vm, 'snp-launch.json'),
        JSON.stringify({
          measurement: byte.repeat(48),
          policy: '0x30000',
          hostData: '00'.repeat(32),
          familyId: '00'.repeat(16),
          imageId: '00'.repeat(16),
          guestSvn: 0,
          idKeyDigest: '00'.repeat(48),
          authorKeyDigest: '00'.repeat(48),
          authorKeyEn: false,
        }),
      );
    }
  }, 180_000);
  const named = { SEVKIT_TEST_NAMED_GUEST: 'cguest2', SEVKIT_TEST_NAMED_BYTE: '3c' };

  afterAll(async () => {
    await sim?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('passes every check', async () => {
    const r = await run(binary, [], { ...sim.env, ...named });
    expect(r.out).toMatch(/^\d+ checks, 0 failed$/m);
    expect(Number(/^(\d+) checks/m.exec(r.out)![1])).toBeGreaterThanOrEqual(28);
    expect(r.code).toBe(0);
  }, 180_000);

  it('inside a named guest (SEVKIT_SIM_GUEST): every check passes with that launch in the reports', async () => {
    const r = await run(binary, [], { ...sim.env, ...named, SEVKIT_SIM_GUEST: 'cguest', SEVKIT_TEST_MEASUREMENT_BYTE: '5a' });
    expect(r.out).toMatch(/^\d+ checks, 0 failed$/m);
    expect(r.out).not.toMatch(/FAIL/);
    expect(r.code).toBe(0);
  }, 180_000);

  it.skipIf(!valgrind)(
    'and under valgrind memcheck: no memory errors in the shim',
    async () => {
      const r = await run('valgrind', ['--tool=memcheck', '--error-exitcode=99', '--num-callers=30', binary], {
        ...sim.env,
        ...named,
        SEVKIT_SIM_GUEST: 'cguest',
        SEVKIT_TEST_MEASUREMENT_BYTE: '5a',
      });
      expect(r.out).toMatch(/^\d+ checks, 0 failed$/m);
      expect(r.out).toMatch(/ERROR SUMMARY: 0 errors/);
      expect(r.code).toBe(0);
    },
    180_000,
  );
});
