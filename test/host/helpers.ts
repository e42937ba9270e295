/** Shared helpers for the host tests: temp fixtures and fake platforms/bindings. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeHostFixture, type HostFixture, type HostFixtureSpec } from '../../lib/sim/host-fixture.js';
import { probeHost, type StatusProbeOptions } from '../../lib/host/gather.js';
import type { FirmwareStatus, PlatformLike } from '../../lib/host/probes.js';
import { HostFs, type HostFsOptions } from '../../lib/host/fs.js';

const dirs: string[] = [];

export function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-host-'));
  dirs.push(d);
  return d;
}

export function cleanup(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export function fixture(spec: HostFixtureSpec = {}): HostFixture {
  return writeHostFixture(tempDir(), spec);
}

export const GOOD_STATUS: FirmwareStatus = { apiMajor: 1, apiMinor: 55, build: 21, state: 'INIT', owner: 'self', esEnabled: true, guestCount: 0 };

export function fakePlatform(status: Partial<FirmwareStatus> | Error = {}, snp?: Record<string, unknown> | Error): PlatformLike {
  return {
    status: async () => {
      if (status instanceof Error) throw status;
      return { ...GOOD_STATUS, ...status };
    },
    snpPlatformStatus: async () => {
      if (snp instanceof Error) throw snp;
      return snp ?? { apiMajor: 1, apiMinor: 55, state: 'INIT', buildId: 21 };
    },
  };
}

export function errnoError(code: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`/dev/sev: ${code}`), { code, ...extra });
}

/** Probe a fixture with every seam pinned (no real CPU, addon, QEMU or OVMF involved). */
export async function probeFixture(fx: HostFixture, opts: StatusProbeOptions & { deny?: HostFsOptions['deny'] } = {}) {
  const { deny, ...rest } = opts;
  return probeHost({
    fs: new HostFs(fx.root, { deny }),
    cpuidFile: fx.cpuidFile,
    qemu: fx.qemu,
    ovmfDirs: fx.ovmfDirs,
    dpkgStatus: '/nonexistent',
    platform: fakePlatform(),
    euid: 1000,
    ...rest,
  });
}
