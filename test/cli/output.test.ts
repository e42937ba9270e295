/** The one error line every CLI prints, and the exit code it maps to. */
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { InputError, SevkitError, UsageError } from '../../lib/errors.js';
import { formatError } from '../../lib/cli/output.js';
import { exitCodeFor, parseIntArg } from '../../lib/cli/run.js';
import { runCli } from '../helpers/cli.js';

describe('formatError / exitCodeFor', () => {
  it('prints a SevkitError as its message; usage errors exit 2, others 1', () => {
    expect(formatError(new InputError('x.cert: 3 bytes'))).toBe('x.cert: 3 bytes');
    expect(exitCodeFor(new InputError('x'))).toBe(1);
    expect(exitCodeFor(new UsageError('x'))).toBe(2);
    expect(exitCodeFor(new SevkitError('ERR_X', 'x'))).toBe(1);
  });

  it("prints commander's InvalidArgumentError (parseIntArg inside an action) as a usage line, not an internal error", () => {
    let err: unknown;
    try {
      parseIntArg('0xZZ', '--seed');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(formatError(err)).toBe("--seed must be a decimal or 0x-hex integer, got '0xZZ'");
    expect(exitCodeFor(err)).toBe(2);
  });

  it('keeps node errno errors on one line with their path, and labels anything else internal', () => {
    const e = Object.assign(new Error("ENOENT: no such file or directory, open '/x'"), { code: 'ENOENT', path: '/x' });
    expect(formatError(e)).toBe("/x: ENOENT: no such file or directory, open '/x'");
    expect(formatError(new TypeError('boom'))).toBe('internal error: boom');
  });

  it('the CLI prints that line once, with no stack, and exits 2', async () => {
    const r = await runCli(['sim', '--seed', '0xZZ', 'ca', '/nonexistent-dir/ca.cert']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("sevkit: --seed must be a decimal or 0x-hex integer, got '0xZZ'\n");
  });
});

describe('sevkit start-up: the plain show read-outs skip commander', () => {
  it('quickShow takes exactly `show <what>` and `show <what> --json`', async () => {
    const { quickShow } = await import('../../lib/cli/commands/show.js');
    expect(quickShow(['show', 'version'])).toEqual({ what: 'version', json: false });
    expect(quickShow(['show', 'flags', '--json'])).toEqual({ what: 'flags', json: true });
    for (const a of [
      ['show'],
      ['show', 'nope'],
      ['show', 'version', '--device', '/x'],
      ['show', 'version', '-h'],
      ['-q', 'show', 'version'],
      ['export', 'version'],
      [],
    ]) {
      expect(quickShow(a), a.join(' ')).toBeUndefined();
    }
  });

  it('`sevkit show version` resolves no commander module; `sevkit show version --device X` still goes through it', async () => {
    const { spawnSync } = await import('node:child_process');
    const path = await import('node:path');
    const { ROOT } = await import('../helpers/cli.js');
    const hook = `data:text/javascript,${encodeURIComponent(
      `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent('export async function resolve(s, c, n) { const r = await n(s, c); if (/commander/.test(r.url)) process.stderr.write("LOADED-COMMANDER\\\\n"); return r; }'));`,
    )}`;
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', '--import', hook, path.join(ROOT, 'lib/cli/sevkit.ts'), ...args], {
        encoding: 'utf8',
        env: { ...process.env, SEVKIT_DEVICE: '/nonexistent/sev' },
        timeout: 60_000,
      });
    const quick = run(['show', 'version']);
    expect(quick.status).toBe(1);
    expect(quick.stderr).toMatch(/^sevkit: \/nonexistent\/sev: open failed: ENOENT/m);
    expect(quick.stderr).not.toContain('LOADED-COMMANDER');
    const full = run(['show', 'version', '--device', '/nonexistent/sev']);
    expect(full.status).toBe(1);
    expect(full.stderr).toContain('LOADED-COMMANDER');
    expect(full.stderr).toMatch(/^sevkit: \/nonexistent\/sev: open failed: ENOENT/m);
  });
});
