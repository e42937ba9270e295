/**
 * Vitest global setup: unless SEVKIT_HW=1 (run against a real /dev/sev), start
 * the software SEV platform on a temp state dir and put its environment
 * (LD_PRELOAD shim, SEVKIT_SIM_SOCKET, SEVKIT_SIM_STATE, SEVKIT_HOST_ROOT,
 * SEVKIT_CPUID, SEVKIT_QEMU, PATH) into process.env, which the forked test
 * workers inherit at exec, so the real addon in a worker reaches the simulator.
 *
 * When the shim is not built, the platform tests skip and say why
 * (SEVKIT_SIM_UNAVAILABLE holds the reason).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default async function setup(): Promise<(() => Promise<void>) | void> {
  if (process.env.SEVKIT_HW === '1') return;
  if (process.env.SEVKIT_SIM_SOCKET) return; // already under `sevkit sim --`
  const { startSim } = await import('../../lib/sim/session.js');
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-sim-test-'));
  let sim;
  try {
    sim = await startSim({ stateDir, seed: '1' });
  } catch (e) {
    fs.rmSync(stateDir, { recursive: true, force: true });
    // In CI the simulator is part of what is tested: a missing shim must fail the run, not skip it.
    if (process.env.CI) throw new Error(`the software SEV platform did not start: ${(e as Error).message}`, { cause: e });
    process.env.SEVKIT_SIM_UNAVAILABLE = (e as Error).message;
    return;
  }
  const before = { ...process.env };
  for (const [k, v] of Object.entries(sim.env)) if (v !== undefined && before[k] !== v) process.env[k] = v;
  return async () => {
    await sim.close();
    for (const k of Object.keys(sim.env)) {
      if (before[k] === undefined) delete process.env[k];
      else process.env[k] = before[k];
    }
    fs.rmSync(stateDir, { recursive: true, force: true });
  };
}
