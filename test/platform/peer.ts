/**
 * The parent side of sim-peer.ts: a private simulator (daemon in this process,
 * so tests can arm faults on it) plus a child process running SevPlatform
 * against it, exposed as a SevPlatform-shaped proxy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SevError, type SevErrorInfo } from '../../lib/platform/errors.js';
import type { SevPlatform } from '../../lib/platform/platform.js';
import { decode, encode } from './peer-codec.js';

export type PlatformLike = Pick<
  SevPlatform,
  | 'status'
  | 'statusRaw'
  | 'exportCerts'
  | 'pekGen'
  | 'pdhGen'
  | 'pekCsr'
  | 'pekCertImport'
  | 'factoryReset'
  | 'getId'
  | 'getIdInfo'
  | 'snpPlatformStatus'
  | 'snpCommit'
  | 'snpSetConfig'
>;

const METHODS = [
  'status',
  'statusRaw',
  'exportCerts',
  'pekGen',
  'pdhGen',
  'pekCsr',
  'pekCertImport',
  'factoryReset',
  'getId',
  'getIdInfo',
  'snpPlatformStatus',
  'snpCommit',
  'snpSetConfig',
] as const;

/** A SevError rebuilt from the child's fields; `remoteIsSevError` says the child really threw a SevError. */
export class RemoteSevError extends SevError {
  constructor(
    info: SevErrorInfo,
    readonly remoteIsSevError: boolean,
  ) {
    super(info);
  }
}

export interface PrivateSim {
  dir: string;
  env: NodeJS.ProcessEnv;
  daemon: { socketPath: string; platform: { faults: { add(spec: object): void; clear(): void } } };
  platform: PlatformLike;
  close(): Promise<void>;
}

export async function startPrivateSim(device: string, opts: object = {}): Promise<PrivateSim> {
  const { startSim } = await import('../../lib/sim/session.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-platform-test-'));
  // Reuse the global simulator's seed so its (slow to derive) RSA test roots come from the cache.
  let seed = '1';
  try {
    seed = (JSON.parse(fs.readFileSync(path.join(process.env.SEVKIT_SIM_STATE ?? '', 'state.json'), 'utf8')) as { seed: string }).seed;
  } catch {
    // no global simulator state
  }
  const sim = await startSim({ stateDir: dir, seed, ...opts });
  // Only this simulator's shim: the global one (inherited LD_PRELOAD) must not see the child's opens.
  const env: NodeJS.ProcessEnv = { ...sim.env, LD_PRELOAD: sim.shim, SEVKIT_DEVICE: device };
  const peerFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'sim-peer.ts');
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', peerFile, device], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  let nextId = 1;
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    const r = decode(line) as { id: number; ok: boolean; value?: unknown; error?: Record<string, unknown> };
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    if (r.ok) p.resolve(r.value);
    else {
      const e = r.error!;
      const info: SevErrorInfo = { code: String(e.code), message: String(e.message) };
      for (const k of ['errno', 'syscall', 'path', 'command', 'fwStatus', 'detail'] as const)
        if (e[k] !== undefined && e[k] !== null) (info as unknown as Record<string, unknown>)[k] = e[k];
      p.reject(new RemoteSevError(info, e.isSevError === true));
    }
  });
  child.on('exit', () => {
    for (const p of pending.values()) p.reject(new Error('sim peer exited'));
    pending.clear();
  });
  const call = (method: string, args: unknown[]) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      child.stdin!.write(`${encode({ id, method, args })}\n`);
    });
  const platform = Object.fromEntries(METHODS.map((m) => [m, (...args: unknown[]) => call(m, args)])) as unknown as PlatformLike;
  return {
    dir,
    env,
    daemon: sim.daemon as unknown as PrivateSim['daemon'],
    platform,
    async close() {
      child.stdin!.end();
      await new Promise<void>((r) => {
        if (child.exitCode !== null) r();
        else child.once('exit', () => r());
        setTimeout(() => {
          child.kill('SIGKILL');
          r();
        }, 5000).unref();
      });
      await sim.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
