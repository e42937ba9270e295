/**
 * The commander-free half of the CLI plumbing (exit codes, the error line, colour
 * choice), shared by `sevkit` (through ./run.ts) and `sev-status`, which keeps its
 * start-up free of commander.
 *
 * Exit codes (documented in the README):
 *   0  success / valid / ready
 *   1  failure: an invalid chain, a refused launch, a device or firmware error, bad input file
 *   2  usage error: unknown command or flag, missing or malformed argument
 */
import { SevkitError, UsageError } from '../errors.js';

export const EXIT_OK = 0;
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;

/** The one line printed for an error. Never includes a stack unless SEVKIT_DEBUG is set. */
export function formatError(e: unknown): string {
  if (e instanceof SevkitError) return e.message;
  // commander's InvalidArgumentError (e.g. parseIntArg called inside an action), recognised
  // by its code so that this module stays free of commander.
  if (e instanceof Error && (e as { code?: unknown }).code === 'commander.invalidArgument') return e.message;
  if (e instanceof Error) {
    // Errors from node (fs, net) carry code/path; keep them on one line.
    const err = e as NodeJS.ErrnoException;
    if (err.code && err.path) return `${err.path}: ${err.code}: ${err.message.replace(/^[A-Z]+: /, '')}`;
    return `internal error: ${e.message}`;
  }
  return `internal error: ${String(e)}`;
}

/** Colours only on a TTY and never with NO_COLOR (https://no-color.org). */
export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  return Boolean(stream.isTTY);
}

/** Set by the entry point; used as the prefix of error lines ("sevkit: ..."). */
let programName = 'sevkit';
/** The name the current CLI prints before its error and warning lines. */
export function getProgramName(): string {
  return programName;
}
export function setProgramName(name: string): void {
  programName = name;
}

/** 2 for a usage error (ours, or commander's InvalidArgumentError, known by its code), else 1. */
export function exitCodeFor(e: unknown): number {
  if (e instanceof UsageError || (e instanceof Error && (e as { code?: unknown }).code === 'commander.invalidArgument')) return EXIT_USAGE;
  return EXIT_FAIL;
}

/** Prints the one error line (the stack only with SEVKIT_DEBUG) and returns the exit code. */
export function reportError(e: unknown): number {
  process.stderr.write(`${programName}: ${formatError(e)}\n`);
  if (process.env.SEVKIT_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return exitCodeFor(e);
}

/** A Buffer as JSON.stringify hands it to a replacer (`{ type: 'Buffer', data }`) → hex; anything else → undefined. */
function bufferHex(v: unknown): string | undefined {
  const b = v as { type?: unknown; data?: unknown } | null;
  return b && b.type === 'Buffer' && Array.isArray(b.data) ? Buffer.from(b.data as number[]).toString('hex') : undefined;
}

/** Print data as stable, pretty JSON (for --json). Buffers become hex strings. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (_k, v: unknown) => bufferHex(v) ?? (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}
