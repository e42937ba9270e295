/**
 * Shared plumbing for sevkit's commands: one place decides how an error
 * becomes a single line on stderr and an exit code, so that no command ever
 * shows a stack trace to an operator. Exit codes, the error text and colour
 * choice live in ./output.ts (commander-free, also used by sev-status).
 */
import { InvalidArgumentError } from 'commander';
import { InputError, UsageError } from '../errors.js';
import { getProgramName, reportError } from './output.js';

export { EXIT_OK, EXIT_FAIL, EXIT_USAGE, exitCodeFor, formatError, printJson, reportError, setProgramName, useColor } from './output.js';

/**
 * Wrap a commander action: awaits it, maps a thrown error to one stderr line,
 * and sets process.exitCode (never calls process.exit, so pending writes and
 * cleanup handlers finish). An action may return a number to set the exit code.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      if (typeof code === 'number') process.exitCode = code;
    } catch (e) {
      process.exitCode = reportError(e);
    }
  };
}

/** Parse an integer flag: decimal or 0x-hex; rejects anything else as a usage error. */
export function parseIntArg(value: string, what = 'number'): number {
  const s = value.trim();
  const n = /^0x[0-9a-f]+$/i.test(s) ? Number.parseInt(s.slice(2), 16) : /^[0-9]+$/.test(s) ? Number.parseInt(s, 10) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${what} must be a decimal or 0x-hex integer, got '${value}'`);
  return n;
}

/**
 * Read a whole file a command takes (`-`: stdin), refusing a directory, and failing
 * with one line that names the file and what it was meant to hold.
 */
export async function readInputFile(file: string, what: string): Promise<Buffer> {
  const fs = await import('node:fs');
  try {
    if (file === '-') return fs.readFileSync(0);
    if (fs.statSync(file).isDirectory()) throw new InputError(`${file}: is a directory, expected ${what}`);
    return fs.readFileSync(file);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${file}: cannot read ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * Write a file a command produces (`-`: stdout): atomically (never half a file, see lib/fsutil),
 * refusing a directory, and failing with one line that names the file and, when
 * given, what it was meant to hold. fsutil is imported lazily to keep start-up fast.
 */
export async function writeOutputFile(file: string, data: string | Uint8Array, opts: { mode?: number; what?: string } = {}): Promise<void> {
  const fs = await import('node:fs');
  if (file === '-') {
    // Key material is written only to a 0600 file, never to a stream someone else may be reading.
    if (opts.mode !== undefined && (opts.mode & 0o077) === 0) throw new UsageError(`${opts.what ?? 'this file'} holds key material: give a file name, not '-'`);
    await new Promise<void>((resolve, reject) => {
      process.stdout.write(data, (e) =>
        e ? reject(new InputError(`stdout: cannot write${opts.what ? ` ${opts.what}` : ''}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)) : resolve(),
      );
    });
    return;
  }
  const { writeFileAtomic } = await import('../util/fs.js');
  if (fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()) {
    throw new InputError(`${file}: is a directory, expected a file path${opts.what ? ` for ${opts.what}` : ''}`);
  }
  try {
    writeFileAtomic(file, data, opts.mode ?? 0o644);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new InputError(`${file}: cannot write${opts.what ? ` ${opts.what}` : ''}: ${err.code ?? err.message}`);
  }
}

/**
 * One warning line on stderr when a TEST root (the simulator's ARK/ASK; certs isTestRoot / TrustAnchor.testRoot
 * decide) is the owner's trust anchor: a chain that verifies against it proves nothing about AMD hardware.
 * Returns whether it warned.
 */
export function warnIfTestRoot(testRoot: boolean, source: string): boolean {
  if (testRoot)
    process.stderr.write(
      `${getProgramName()}: warning: the trust anchor (${source}) is a TEST root (the simulator's, key id SIMTEST-…), not AMD's: a chain verified against it proves nothing about real hardware\n`,
    );
  return testRoot;
}
