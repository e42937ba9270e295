/**
 * `--json` on the commands that print data, `-` as stdout (and stdin) for the files commands write (read),
 * and the TEST-root warning: `export -` writes the chain to stdout (it used to create a file named `-`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCaChain } from '../../lib/certs/index.js';
import { simulatorCaChain } from '../../lib/sim/ca-chain.js';
import { runCli } from '../helpers/cli.js';

const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;
let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-json-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(Boolean(simReason))('stdout as a file, --json, TEST roots (simulator)', { timeout: 120_000 }, () => {
  it('export - writes the 8336-byte chain to stdout and no file named -', async () => {
    const r = await runCli(['export', '-'], { cwd: tmp });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdoutBuf.length).toBe(8336);
    expect(fs.existsSync(path.join(tmp, '-'))).toBe(false);
    fs.writeFileSync(path.join(tmp, 'chain.cert'), r.stdoutBuf);
    const both = await runCli(['export', '--json', '-'], { cwd: tmp });
    expect(both.code).toBe(2);
  });

  it('session --json (chain from stdin), with a warning for the TEST roots; secret build --json', async () => {
    fs.writeFileSync(path.join(tmp, 'ca.cert'), encodeCaChain(simulatorCaChain(process.env.SEVKIT_SIM_STATE)!));
    const chain = fs.readFileSync(path.join(tmp, 'chain.cert'));
    const s = await runCli(['session', '--json', '--ca', 'ca.cert', '-', '1'], { cwd: tmp, input: chain });
    expect(s.code, s.stderr).toBe(0);
    const j = JSON.parse(s.stdout) as { policy: string; files: Record<string, string>; godh: string };
    expect(j.policy).toBe('0x1');
    expect(Object.keys(j.files).sort()).toEqual(['godh', 'session', 'tek', 'tik']);
    expect(s.stderr).toMatch(/warning: the trust anchor \(CA chain ca.cert\) is a TEST root/);
    const blob = crypto.randomBytes(48).toString('base64');
    fs.writeFileSync(path.join(tmp, 'pw'), 'pw');
    const b = await runCli(
      [
        'secret',
        'build',
        '--json',
        '--tek',
        j.files.tek!,
        '--tik',
        j.files.tik!,
        '--launch-measure-blob',
        blob,
        '--secret',
        'disk-password:pw',
        'h.bin',
        'p.bin',
      ],
      { cwd: tmp },
    );
    expect(b.code, b.stderr).toBe(0);
    const sj = JSON.parse(b.stdout) as { header: string; payload: string; packet_header: string; secret: string };
    expect(sj.header).toBe('h.bin');
    expect(Buffer.from(sj.packet_header, 'base64')).toEqual(fs.readFileSync(path.join(tmp, 'h.bin')));
    // A header to stdout: the notes move to stderr so the bytes stay clean.
    const h = await runCli(
      ['secret', 'build', '--tek', j.files.tek!, '--tik', j.files.tik!, '--launch-measure-blob', blob, '--secret', 'disk-password:pw', '-', 'p2.bin'],
      { cwd: tmp },
    );
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdoutBuf.length).toBe(52);
    expect(h.stderr).toMatch(/Wrote payload to: p2.bin/);
  });

  it('ok --json: the tree as data, same exit code', async () => {
    const text = await runCli(['ok']);
    const r = await runCli(['ok', '--json']);
    expect(r.code).toBe(text.code);
    const j = JSON.parse(r.stdout) as { generation: string; failed: boolean; lines: { status: string; name: string }[] };
    expect(j.lines.length).toBeGreaterThan(3);
    expect(j.failed).toBe(text.code !== 0);
  });

  it('measurement build --json, and --outfile - to stdout', async () => {
    const args = [
      'measurement',
      'build',
      '--api-major',
      '1',
      '--api-minor',
      '55',
      '--build-id',
      '21',
      '--policy',
      '1',
      '--tik',
      crypto.randomBytes(16).toString('base64'),
      '--nonce',
      crypto.randomBytes(16).toString('base64'),
      '--launch-digest',
      crypto.randomBytes(32).toString('base64'),
    ];
    const j = await runCli([...args, '--json']);
    expect(j.code, j.stderr).toBe(0);
    expect(Buffer.from((JSON.parse(j.stdout) as { measurement: string }).measurement, 'base64').length).toBe(48);
    const o = await runCli([...args, '--outfile', '-']);
    expect(o.code, o.stderr).toBe(0);
    expect(o.stdoutBuf.length).toBe(48);
  });
});
