/**
 * Runs the sevkit CLIs from their TypeScript sources (through tsx), so CLI
 * tests never depend on a stale dist/ build.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The vendored test vectors (test/fixtures/vectors/README.md: origin, licence and sha256 of each file). */
export const VECTORS = path.join(ROOT, 'test/fixtures/vectors');

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
