/**
 * `sevkit snp report` through the real CLI on the suite's simulator: the
 * report and the host's certificates written (atomically), one clear line and
 * exit 2 for usage errors, exit 1 for device failures, and no file touched
 * when the request fails.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { armFault } from '../../lib/sim/faults.js';

const skip = process.env.SEVKIT_HW === '1' ? 'SEVKIT_HW=1: no SNP guest here' : !process.env.SEVKIT_SIM_SOCKET ? 'no simulator' : undefined;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-snp-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe.skipIf(skip)('sevkit snp report', () => {
  it('writes the report and the certificate table; the report verifies with the VCEK written next to it', async () => {
    const data = crypto.randomBytes(64);
    const out = path.join(dir, 'report.bin');
    const certs = path.join(dir, 'certs');
    const r = await runCli(['snp', 'report', '--report-data', data.toString('hex'), '--vmpl', '1', '--out', out, '--certs-out', certs], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^wrote .*report\.bin \(1184 bytes, report version 5, VMPL 1\) via \/dev\/sev-guest; cert-table\.bin, ark\.der, ask\.der, vcek\.der in /,
    );
    const report = fs.readFileSync(out);
    expect(report.subarray(0x50, 0x90).equals(data)).toBe(true);
    expect(fs.readdirSync(certs).sort()).toEqual(['ark.der', 'ask.der', 'cert-table.bin', 'vcek.der']);
    const vcek = new crypto.X509Certificate(fs.readFileSync(path.join(certs, 'vcek.der')));
    const sig = Buffer.concat([Buffer.from(report.subarray(0x2a0, 0x2d0)).reverse(), Buffer.from(report.subarray(0x2e8, 0x318)).reverse()]);
    expect(crypto.verify('sha384', report.subarray(0, 0x2a0), { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    // No temp files left beside the outputs.
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 90_000);

  it('reads REPORT_DATA from a file of exactly 64 bytes', async () => {
    const f = path.join(dir, 'nonce.bin');
    fs.writeFileSync(f, Buffer.alloc(64, 0x42));
    const out = path.join(dir, 'r2.bin');
    const r = await runCli(['snp', 'report', '--report-data-file', f, '--out', out], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    expect(fs.readFileSync(out).subarray(0x50, 0x90).equals(Buffer.alloc(64, 0x42))).toBe(true);
    fs.writeFileSync(f, Buffer.alloc(63));
    const bad = await runCli(['snp', 'report', '--report-data-file', f, '--out', path.join(dir, 'never.bin')], { timeoutMs: 60_000 });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^sevkit: .*nonce\.bin: report data must be exactly 64 bytes, got 63\n$/);
    expect(fs.existsSync(path.join(dir, 'never.bin'))).toBe(false);
  }, 90_000);

  it('usage errors: exit 2 and one line, nothing written', async () => {
    const out = path.join(dir, 'usage.bin');
    for (const args of [
      ['--report-data', 'abcd'],
      ['--report-data', 'zz'.repeat(64)],
      ['--vmpl', '4'],
      ['--vmpl', 'x'],
      ['--report-data', '00'.repeat(64), '--report-data-file', '/dev/null'],
    ]) {
      const r = await runCli(['snp', 'report', ...args, '--out', out], { timeoutMs: 60_000 });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^sevkit: /);
    }
    expect(fs.existsSync(out)).toBe(false);
  }, 120_000);

  it('a firmware error is named, and after it the driver refuses every request (VMPCK wiped) with a hint', async () => {
    // A tag of our own: the fault and the wipe reach only these child processes.
    const tag = `snp-cli-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    armFault(process.env.SEVKIT_SIM_STATE!, { cmd: 'SNP_GET_EXT_REPORT', fwStatus: 'INVALID_GUEST', tag });
    const out = path.join(dir, 'wiped.bin');
    const first = await runCli(['snp', 'report', '--out', out], { env: { SEVKIT_SIM_TAG: tag }, timeoutMs: 60_000 });
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/^sevkit: \/dev\/sev-guest: SNP_GET_EXT_REPORT failed: EIO, firmware status SEV_RET_INVALID_GUEST \(0x[0-9a-f]+\): .*\n$/);
    const second = await runCli(['snp', 'report', '--out', out], { env: { SEVKIT_SIM_TAG: tag }, timeoutMs: 60_000 });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/ENOTTY, .*disabled its VMPCK/);
    expect(fs.existsSync(out)).toBe(false);
    // Another guest (no tag) is unaffected.
    expect((await runCli(['snp', 'report', '--out', out], { timeoutMs: 60_000 })).code).toBe(0);
  }, 120_000);

  it('a device failure is exit 1 with one line, and an existing output file is left as it was', async () => {
    const out = path.join(dir, 'keep.bin');
    fs.writeFileSync(out, 'previous');
    const r = await runCli(['snp', 'report', '--device', '/nonexistent/sev-guest', '--out', out], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'sevkit: /nonexistent/sev-guest: open failed: ENOENT, no SNP guest device (not an SEV-SNP guest, or the sev-guest driver is not loaded)\n',
    );
    expect(fs.readFileSync(out, 'utf8')).toBe('previous');
    const isDir = await runCli(['snp', 'report', '--out', dir], { timeoutMs: 60_000 });
    expect(isDir.code).toBe(1);
    expect(isDir.stderr).toMatch(/is a directory/);
  }, 90_000);
});
