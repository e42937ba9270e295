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
