/**
 * Shared plumbing for sevkit's commands: one place decides how an error
 * becomes a single line on stderr and an exit code, so that no command ever
 * shows a stack trace to an operator. Exit codes, the error text and colour
 * choice live in ./output.ts (commander-free, also used by sev-status).
 */
import { InvalidArgumentError } from 'commander';
import { InputError, UsageError } from '../errors.js';
import { EXIT_FAIL, EXIT_USAGE, formatError } from './output.js';

export { EXIT_OK, EXIT_FAIL, EXIT_USAGE, formatError, useColor } from './output.js';

/** Set by the entry point; used as the prefix of error lines ("sevkit: ..."). */
let programName = 'sevkit';
export function setProgramName(name: string): void {
  programName = name;
}

export function exitCodeFor(e: unknown): number {
  if (e instanceof UsageError || e instanceof InvalidArgumentError) return EXIT_USAGE;
  return EXIT_FAIL;
}

export function reportError(e: unknown): number {
  process.stderr.write(`${programName}: ${formatError(e)}\n`);
  if (process.env.SEVKIT_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return exitCodeFor(e);
}

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

/** A Buffer as JSON.stringify hands it to a replacer (`{ type: 'Buffer', data }`) → hex; anything else → undefined. */
function bufferHex(v: unknown): string | undefined {
  const b = v as { type?: unknown; data?: unknown } | null;
  return b && b.type === 'Buffer' && Array.isArray(b.data) ? Buffer.from(b.data as number[]).toString('hex') : undefined;
}

/** Print data as stable, pretty JSON (for --json). Buffers become hex strings. */
export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v: unknown) => bufferHex(v) ?? (typeof v === 'bigint' ? v.toString() : v), 2)}\n`,
  );
}

/** Parse an integer flag: decimal or 0x-hex; rejects anything else as a usage error. */
export function parseIntArg(value: string, what = 'number'): number {
  const s = value.trim();
  const n = /^0x[0-9a-f]+$/i.test(s) ? Number.parseInt(s.slice(2), 16) : /^[0-9]+$/.test(s) ? Number.parseInt(s, 10) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${what} must be a decimal or 0x-hex integer, got '${value}'`);
  return n;
}

/**
 * Write a file a command produces: atomically (never half a file, see lib/fsutil),
 * refusing a directory, and failing with one line that names the file and, when
 * given, what it was meant to hold. fsutil is imported lazily to keep start-up fast.
 */
export async function writeOutputFile(file: string, data: string | Uint8Array, opts: { mode?: number; what?: string } = {}): Promise<void> {
  const fs = await import('node:fs');
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
