/**
 * A device path that is not a character device (a FIFO, a regular file) is refused at open, without
 * blocking: a FIFO used to park a pool thread in open(2) for good, so `show version` and `sev-status`
 * never returned and even process.exit() hung.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getNativeBinding } from '../../lib/binding.js';
import { SevPlatform } from '../../lib/platform/platform.js';
import { SevError } from '../../lib/platform/errors.js';
import { runCli } from '../helpers/cli.js';

const b = getNativeBinding();
let dir: string;
let fifo: string;
let file: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-notdev-'));
  fifo = path.join(dir, 'fifo');
  file = path.join(dir, 'file');
  execFileSync('mkfifo', [fifo]);
  fs.writeFileSync(file, 'not a device');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('the addon opens only character devices, never blocking', () => {
  it('a FIFO is refused by every kind of command (read-only, read-write, KVM) with ENODEV naming it', async () => {
    const want = { code: 'ENODEV', syscall: 'open', path: fifo, detail: 'not a character device (a FIFO)' };
    await expect(b.platformStatus(fifo)).rejects.toMatchObject(want);
    await expect(b.pdhCertExport(fifo)).rejects.toMatchObject(want);
    await expect(b.pekGen(fifo)).rejects.toMatchObject(want);
    await expect(b.kvmApiVersion(fifo)).rejects.toMatchObject(want);
  });

  it('a regular file is refused the same way, and SevPlatform turns it into one line', async () => {
    const e = await new SevPlatform({ device: file }).status().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SevError);
    expect((e as SevError).code).toBe('ENODEV');
    expect((e as SevError).message).toBe(`${file}: open failed: ENODEV, not a character device (a regular file)`);
  });

  it('/dev/null (a character device) still gets as far as the ioctl', async () => {
    await expect(b.platformStatus('/dev/null')).rejects.toMatchObject({ code: 'ENOTTY', syscall: 'ioctl' });
  });
});

describe('the CLIs return with SEVKIT_DEVICE pointing at a FIFO', () => {
  // Without O_NONBLOCK these never exit; the kill timer is far above the sub-second they take.
  it('sevkit show version: exit 1, one line naming the FIFO', async () => {
    const t0 = performance.now();
    const r = await runCli(['show', 'version'], { env: { SEVKIT_DEVICE: fifo }, timeoutMs: 30_000 });
    process.stderr.write(`show version on a FIFO: ${(performance.now() - t0).toFixed(0)} ms (including tsx start-up)\n`);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([`sevkit: ${fifo}: open failed: ENODEV, not a character device (a FIFO)`]);
  });

  it('sev-status --json: exits and reports PLATFORM_STATUS failed on the FIFO', async () => {
    const r = await runCli(['--json', '--device', fifo], { env: { SEVKIT_DEVICE: fifo }, timeoutMs: 30_000 }, 'sev-status');
    expect(r.signal).toBeNull();
    expect(r.stdout).toContain('not a character device (a FIFO)');
    expect(r.stdout).toContain('does not name a device node');
  });
});
