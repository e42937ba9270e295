/**
 * The README's owner launch, exactly as written: the block between the owner-launch markers is taken from
 * README.md (so the two cannot drift) and run with sh in an empty directory against `sevkit crn serve` on
 * the simulator. Only two things come from the test: the CRN's URL (the block's own default port may be
 * taken on a shared machine) and the allocation token, both as environment variables the block reads.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEntry, ROOT, startCrnServe, type CrnServeProcess } from '../helpers/cli.js';

const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;
const TOKEN = crypto.randomBytes(16).toString('hex');

/** The shell lines of the README's owner launch block. */
function readmeOwnerBlock(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- owner-launch:begin -->\n```sh\n([\s\S]*?)```\n<!-- owner-launch:end -->/.exec(readme);
  if (!m) throw new Error('README.md has no owner-launch block');
  return m[1]!;
}

describe.skipIf(Boolean(simReason))("the README's owner launch", { timeout: 240_000 }, () => {
  let tmp: string;
  let serve: CrnServeProcess | undefined;
  let url = '';
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-readme-'));
    serve = await startCrnServe(['--listen', '127.0.0.1:0', '--domain', '127.0.0.1', '--run-dir', path.join(tmp, 'run')], {
      env: { SEVKIT_ALLOCATION_TOKEN: TOKEN, SEVKIT_REAL_QEMU: 'none' },
    });
    url = serve.url;
  });
  afterAll(async () => {
    await serve?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('runs as written: wallet, firmware, CA, allocation, launch; the VM runs', async () => {
    const work = fs.mkdtempSync(path.join(tmp, 'owner-'));
    const block = readmeOwnerBlock();
    expect(block).toMatch(/npx sevkit launch /);
    // `npx sevkit` is this checkout's CLI, from source (as npx would find the package's bin, without a stale dist/).
    const tsx = createRequire(import.meta.url).resolve('tsx');
    const entry = cliEntry().at(-1)!;
    const prelude = `set -eu\nnpx() { shift; node --import "file://${tsx}" "${entry}" "$@"; }\n`;
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn('sh', ['-c', prelude + block], { cwd: work, env: { ...process.env, CRN: url, SEVKIT_ALLOCATION_TOKEN: TOKEN, NO_COLOR: '1' } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const killer = setTimeout(() => child.kill('SIGKILL'), 200_000);
      child.on('close', (code) => {
        clearTimeout(killer);
        resolve({ code, out, err });
      });
    });
    expect(r.code, `${r.out}\n${r.err}\n${serve!.stderr()}`).toBe(0);
    expect(r.out).toMatch(/^0x[0-9a-fA-F]{40}$/m); // wallet new printed the address
    expect(r.out).toMatch(/^VM [0-9a-f]{64} is running \(secret delivered/m);
    expect(r.err).toMatch(/warning: the trust anchor \(--ca sim-ca.cert\) is a TEST root/);
    expect(fs.statSync(path.join(work, 'owner.key')).mode & 0o777).toBe(0o600);
  });
});
