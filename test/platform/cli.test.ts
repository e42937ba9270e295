/** CLI behaviour that needs no platform: device errors, usage errors, exit codes. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

// The simulator shim only answers its own device path, so these paths fail the same way with or without it.
describe('sevkit show/export/rotate/reset without a platform', () => {
  it('SEVKIT_DEVICE=/nonexistent/sev: one line naming the path and ENOENT, exit 1', async () => {
    const rs = await Promise.all([
      runCli(['show', 'version'], { env: { SEVKIT_DEVICE: '/nonexistent/sev' } }),
      runCli(['show', 'identifier'], { env: { SEVKIT_DEVICE: '/nonexistent/sev' } }),
      runCli(['rotate'], { env: { SEVKIT_DEVICE: '/nonexistent/sev' } }),
    ]);
    for (const r of rs) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe('sevkit: /nonexistent/sev: open failed: ENOENT, no such device (is the ccp module loaded and SEV enabled in the BIOS?)\n');
    }
  });

  it('--device overrides SEVKIT_DEVICE; /dev/null is not a SEV device (ENOTTY)', async () => {
    const r = await runCli(['show', 'flags', '--device', '/dev/null'], { env: { SEVKIT_DEVICE: '/nonexistent/sev' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('sevkit: /dev/null: PLATFORM_STATUS failed: ENOTTY, not a SEV device (SEV_ISSUE_CMD is not understood)\n');
  });

  it('export on a failing device leaves no file behind', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-cli-'));
    try {
      const r = await runCli(['export', path.join(dir, 'out.cert'), '--device', '/dev/null']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^sevkit: \/dev\/null: PDH_CERT_EXPORT failed: ENOTTY/);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('usage errors exit 2', async () => {
    const [a, b, c] = await Promise.all([runCli(['export']), runCli(['show', 'nonsense']), runCli(['rotate', '--bogus'])]);
    for (const r of [a, b, c]) expect(r.code).toBe(2);
    expect(a.stderr).toMatch(/missing required argument 'destination'/);
  });
});
