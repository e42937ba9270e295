/**
 * Measurement inputs the way sevctl users give them (issue 13): a FIFO
 * (process substitution) as the kernel, raw command-line bytes from
 * --cmdline-file, and an ill-formed --cmdline refused instead of re-encoded.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VECTORS, runCli } from '../helpers/cli.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-sevctl-in-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const FW = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
const base = [
  'measurement',
  'build',
  '--api-major',
  '1',
  '--api-minor',
  '55',
  '--build-id',
  '21',
  '--policy',
  '0x1',
  '--tik',
  Buffer.alloc(16).toString('base64'),
  '--nonce',
  'wxP6tRHCFrFQWxsuqZA8QA==',
  '--firmware',
  FW,
  '--json',
];
const digest = (stdout: string) => (JSON.parse(stdout) as { digest: string }).digest;

describe('measurement inputs sevctl users type', { timeout: 120_000 }, () => {
  it('a FIFO as the kernel (bash <(...)) gives the digest of the same bytes in a file', async (ctx) => {
    const fifo = path.join(dir, 'kernel.fifo');
    if (spawnSync('mkfifo', [fifo]).status !== 0) ctx.skip('mkfifo is not available');
    const file = path.join(dir, 'kernel.bin');
    fs.writeFileSync(file, 'not really a kernel');
    const writer = spawn('sh', ['-c', 'printf "not really a kernel" > "$1"', 'sh', fifo], { stdio: 'ignore' });
    const viaFifo = await runCli([...base, '--kernel', fifo, '--initrd', '/dev/null', '--cmdline', 'console=ttyS0']);
    writer.kill();
    const viaFile = await runCli([...base, '--kernel', file, '--initrd', '/dev/null', '--cmdline', 'console=ttyS0']);
    expect(viaFifo.stderr).toBe('');
    expect(digest(viaFifo.stdout)).toBe(digest(viaFile.stdout));
  });

  it('--cmdline-file hashes raw bytes; the same bytes as --cmdline are refused, not re-encoded', async () => {
    const raw = path.join(dir, 'cmdline.bin');
    fs.writeFileSync(raw, Buffer.from([0x72, 0xff]));
    const ok = await runCli([...base, '--kernel', '/dev/null', '--initrd', '/dev/null', '--cmdline-file', raw]);
    expect(ok.code).toBe(0);
    const plain = await runCli([...base, '--kernel', '/dev/null', '--initrd', '/dev/null', '--cmdline', 'r']);
    expect(digest(ok.stdout)).not.toBe(digest(plain.stdout));
    // What a shell hands over for those bytes once decoded: refused with one line naming --cmdline-file.
    const replaced = await runCli([...base, '--kernel', '/dev/null', '--initrd', '/dev/null', '--cmdline', 'r\uFFFD']);
    expect(replaced.code).not.toBe(0);
    expect(replaced.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(replaced.stderr).toMatch(/--cmdline-file/);
  });
});
