/**
 * Child process for the platform suite: runs SevPlatform (real addon) in a
 * process whose LD_PRELOAD shim points at a PRIVATE simulator (the shim reads
 * SEVKIT_SIM_* once at load, so a test process cannot switch simulators), and
 * answers newline-delimited JSON requests on stdin:
 *   {"id": 1, "method": "exportCerts", "args": [...]}
 * → {"id": 1, "ok": true, "value": ...} or {"id": 1, "ok": false, "error": {...}}
 * Buffers travel as {"$buf": base64}, bigints as {"$big": decimal}.
 * Requests are served concurrently, so the per-device queue is exercised for real.
 */
import readline from 'node:readline';
import { SevPlatform } from '../../lib/platform/platform.js';
import { SevError } from '../../lib/platform/errors.js';
import { decode, encode } from './peer-codec.js';

const platform = new SevPlatform({ device: process.argv[2] || undefined });
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const req = decode(line) as { id: number; method: string; args: unknown[] };
  const fn = (platform as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[req.method];
  Promise.resolve()
    .then(() => {
      if (typeof fn !== 'function') throw new Error(`no method ${req.method}`);
      return fn.apply(platform, req.args);
    })
    .then(
      (value) => process.stdout.write(`${encode({ id: req.id, ok: true, value })}\n`),
      (e: unknown) => {
        const err = e as SevError;
        const fields = {
          isSevError: e instanceof SevError,
          name: err.name,
          message: err.message,
          code: err.code,
          errno: err.errno,
          syscall: err.syscall,
          path: err.path,
          command: err.command,
          fwStatus: err.fwStatus,
          fwStatusName: err.fwStatusName,
          detail: err.detail,
        };
        process.stdout.write(`${encode({ id: req.id, ok: false, error: fields })}\n`);
      },
    );
});
rl.on('close', () => process.exit(0));
