/**
 * Connect to a QMP socket that a just-spawned QEMU has not created yet.
 * Watches the socket's directory instead of sleeping a fixed time, keeps a
 * short backoff retry as a safety net (inotify can miss events on some file
 * systems), and gives up when the deadline passes or `signal` aborts (e.g.
 * because QEMU exited). While the socket file exists but refuses (QEMU has
 * bound it and not yet called listen(), no directory event will follow) it
 * retries every millisecond for up to REFUSED_FAST_MS, then falls back to
 * the backoff so a stale socket file does not spin the loop until the deadline.
 */
import fs from 'node:fs';
import path from 'node:path';
import { QmpClient, type QmpClientOptions } from './client.js';
import { QmpConnectError, QmpTimeoutError } from './errors.js';

/**
 * QmpClientOptions plus the total time (ms) to wait for the socket to appear and QEMU to greet, and an abort
 * signal.
 */
export interface WaitForQmpOptions extends QmpClientOptions {
  /** Total time allowed for the socket to appear and QEMU to greet. Default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** How long a refusing socket is retried at FAST_RETRY_MS before the normal backoff applies. */
const REFUSED_FAST_MS = 2000;
const FAST_RETRY_MS = 1;

/**
 * Resolves with a connected, capability-negotiated client once QEMU listens on `socketPath`.
 * Throws QmpTimeoutError after `timeoutMs`, the signal's reason when it aborts, and any
 * non-connect error of the greeting (protocol, disconnect).
 */
export async function waitForQmp(socketPath: string, options: WaitForQmpOptions = {}): Promise<QmpClient> {
  const { timeoutMs = 30_000, signal, ...clientOpts } = options;
  const deadline = Date.now() + timeoutMs;
  let watcher: fs.FSWatcher | undefined;
  let kick: (() => void) | undefined;
  try {
    watcher = fs.watch(path.dirname(socketPath), () => kick?.());
    watcher.on('error', () => undefined);
  } catch {
    watcher = undefined;
  }
  let backoff = 5;
  let refusedSince: number | undefined;
  let lastError = '';
  try {
    for (;;) {
      signal?.throwIfAborted();
      const left = deadline - Date.now();
      if (left <= 0) throw new QmpTimeoutError(`QMP ${socketPath}: QEMU did not answer within ${timeoutMs} ms${lastError ? ` (last: ${lastError})` : ''}`);
      let refused = false;
      if (fs.existsSync(socketPath)) {
        try {
          return await withAbort(QmpClient.connect(socketPath, { ...clientOpts, connectTimeoutMs: left }), signal);
        } catch (e) {
          // Socket file present but nobody listening yet (or a stale one): retry until the deadline.
          if (!(e instanceof QmpConnectError)) throw e;
          lastError = e.message;
          refused = (e.cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED';
        }
      }
      if (refused) refusedSince ??= Date.now();
      else refusedSince = undefined;
      const fast = refusedSince !== undefined && Date.now() - refusedSince < REFUSED_FAST_MS;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(fast ? FAST_RETRY_MS : backoff, Math.max(1, deadline - Date.now())));
        const onAbort = () => done();
        signal?.addEventListener('abort', onAbort, { once: true });
        function done() {
          clearTimeout(t);
          kick = undefined;
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }
        kick = done;
      });
      if (!fast) backoff = Math.min(backoff * 2, 100);
    }
  } finally {
    watcher?.close();
  }
}

/** Races a connect against an abort; a connect that wins late is closed, not leaked. */
function withAbort(p: Promise<QmpClient>, signal: AbortSignal | undefined): Promise<QmpClient> {
  if (!signal) return p;
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      p.then(
        (c) => c.close(),
        () => undefined,
      );
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (c) => {
        signal.removeEventListener('abort', onAbort);
        resolve(c);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
