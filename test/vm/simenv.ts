/**
 * A simulator environment for the QEMU wrapper: the real `sevkit sim` one when
 * the global setup provides it (SEVKIT_SIM_SOCKET), else a private state dir
 * made with the sim's platform model plus a Genoa CPUID file and a launcher,
 * driving the wrapper's in-process firmware.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/cli.js';

export interface SimEnv {
  env: NodeJS.ProcessEnv;
  qemu: string;
  stateDir: string;
  cleanup(): void;
  daemon: boolean;
}

/** CPUID leaves of the simulated EPYC 9004 (Genoa) host: C-bit 51, reduced-phys-bits 1, SEV/ES/SNP. */
export const GENOA_CPUID = {
  '0x0:0': [0x10, 0x68747541, 0x444d4163, 0x69746e65],
  '0x1:0': [0x00a10f11, 0, 0, 0],
  '0x80000000:0': [0x80000028, 0, 0, 0],
  '0x80000001:0': [0x00a10f11, 0, 0, 0],
  '0x8000001f:0': [0x0101fd3f, 51 | (1 << 6), 509, 100],
};

export function writeLauncher(dir: string): string {
  const file = path.join(dir, 'qemu-system-x86_64');
  const loader = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
  fs.writeFileSync(
    file,
    `#!/bin/sh\n# sevkit-sim-qemu-wrapper (test launcher)\nexec "${process.execPath}" --import "file://${loader}" "${path.join(ROOT, 'lib/sim/qemu/main.ts')}" "$@"\n`,
    { mode: 0o755 },
  );
  return file;
}

export async function makeSimEnv(opts: { realQemu?: string | 'none'; private?: boolean } = {}): Promise<SimEnv> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-simenv-'));
  const bin = path.join(base, 'bin');
  fs.mkdirSync(bin);
  const qemu = writeLauncher(bin);
  const extra: NodeJS.ProcessEnv = { SEVKIT_REAL_QEMU: opts.realQemu ?? 'none', SEVKIT_QEMU: qemu };
  if (!opts.private && process.env.SEVKIT_SIM_SOCKET && process.env.SEVKIT_SIM_STATE) {
    // The simulator's own launcher when it has one: tests the real integration.
    const simQemu = process.env.SEVKIT_QEMU && fs.existsSync(process.env.SEVKIT_QEMU) ? process.env.SEVKIT_QEMU : qemu;
    return {
      env: { ...process.env, ...extra, SEVKIT_QEMU: simQemu },
      qemu: simQemu,
      stateDir: process.env.SEVKIT_SIM_STATE,
      daemon: true,
      cleanup: () => fs.rmSync(base, { recursive: true, force: true }),
    };
  }
  const stateDir = path.join(base, 'state');
  const { SimPlatform } = await import('../../lib/sim/platform.js');
  SimPlatform.open(stateDir);
  const cpuid = path.join(base, 'cpuid.json');
  fs.writeFileSync(cpuid, JSON.stringify(GENOA_CPUID));
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra, SEVKIT_SIM_STATE: stateDir, SEVKIT_CPUID: cpuid };
  delete env.SEVKIT_SIM_SOCKET;
  return { env, qemu, stateDir, daemon: false, cleanup: () => fs.rmSync(base, { recursive: true, force: true }) };
}
