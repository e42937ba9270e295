/**
 * Runs the sevkit CLIs from their TypeScript sources (through tsx), so CLI
 * tests never depend on a stale dist/ build.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { findShim } from '../../lib/sim/env.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The vendored test vectors (test/fixtures/vectors/README.md: origin, licence and sha256 of each file). */
export const VECTORS = path.join(ROOT, 'test/fixtures/vectors');

/**
 * Why a test that starts its own simulator (and so needs the LD_PRELOAD shim built) cannot run
 * here, or undefined when it can: on hardware (SEVKIT_HW=1) there is no simulator to start.
 */
export function ownSimSkipReason(): string | undefined {
  if (process.env.SEVKIT_HW === '1') return 'SEVKIT_HW=1';
  try {
    findShim();
    return undefined;
  } catch {
    return 'shim not built';
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBuf: Buffer;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
  timeoutMs?: number;
}

/** tsx by its file URL, so a CLI run from another directory (opts.cwd) still finds it. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export function cliEntry(name: 'sevkit' | 'sev-status' = 'sevkit'): string[] {
  return ['--import', TSX, path.join(ROOT, 'lib/cli', `${name}.ts`)];
}

export function runCli(args: string[], opts: CliOptions = {}, name: 'sevkit' | 'sev-status' = 'sevkit'): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliEntry(name), ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, NO_COLOR: '1', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBuf = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBuf.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBuf });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** A test's `sevkit crn serve` process, up and listening. */
export interface CrnServeProcess {
  proc: ChildProcessWithoutNullStreams;
  /** The address from its `listening on URL` line. */
  url: string;
  /** Everything it has written to stderr so far. */
  stderr(): string;
  /** SIGTERM, then waits for it to exit (at once when it already has). */
  stop(): Promise<void>;
}

/**
 * Starts `sevkit crn serve ARGS` from the sources and resolves once it prints its
 * listening line; rejects (and kills it) when it exits first or says nothing
 * within `timeoutMs`.
 */
export async function startCrnServe(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CrnServeProcess> {
  const proc = spawn(process.execPath, [...cliEntry(), 'crn', 'serve', ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...opts.env } });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`no listening line; stderr: ${err}`)), opts.timeoutMs ?? 60_000);
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^listening on (http:\/\/\S+)$/m.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
      proc.on('exit', (c) => {
        clearTimeout(t);
        reject(new Error(`serve exited ${c}: ${err}`));
      });
    });
    return { proc, url, stderr: () => err, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** What runCommand saw: exit code (null when killed), each stream, both interleaved as written, and the run time. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr in the order they arrived (for failure messages). */
  out: string;
  ms: number;
}

/**
 * Runs `cmd ARGS` to completion with exactly `opts.env` (not merged with this
 * process's: the package tests build a PATH without a compiler), killing it
 * after `timeoutMs`; never throws for a non-zero exit.
 */
export function runCommand(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<CommandResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const both: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => (out.push(d), both.push(d)));
    child.stderr.on('data', (d: Buffer) => (err.push(d), both.push(d)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const text = (b: Buffer[]) => Buffer.concat(b).toString('utf8');
      resolve({ code, stdout: text(out), stderr: text(err), out: text(both), ms: Date.now() - t0 });
    });
  });
}
