/**
 * The simulator wrapper's QMP server against a client that pipelines requests
 * faster than they are answered, and one that never reads what it is sent.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { QmpServer } from '../../lib/sim/qemu/qmp-server.js';

const GREETING = { QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'test' }, capabilities: [] } };
let server: QmpServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await server?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  server = dir = undefined;
});

async function start(handler: ConstructorParameters<typeof QmpServer>[1]): Promise<net.Socket> {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-qmpsrv-'));
  const sock = path.join(dir, 'qmp.sock');
  server = new QmpServer(GREETING, handler);
  await server.listen(sock);
  const c = net.createConnection(sock);
  await new Promise((r) => c.once('connect', r));
  return c;
}

/** Collects reply lines (greeting and events skipped) until `n` have come. */
function replies(c: net.Socket, n: number): Promise<Array<Record<string, unknown>>> {
  const got: Array<Record<string, unknown>> = [];
  let buf = '';
  return new Promise((resolve) => {
    c.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if ('id' in m) got.push(m);
        if (got.length === n) resolve(got);
      }
    });
  });
}

describe('QmpServer', () => {
  it('answers every pipelined request in order while reading is held back behind a slow one', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const c = await start(async (command, args) => {
      if (command === 'block') await gate;
      return { n: args.n ?? -1 };
    });
    const all = replies(c, 202);
    c.write('{"execute":"qmp_capabilities","id":0}\n{"execute":"block","id":1}\n');
    for (let n = 2; n <= 201; n++) c.write(`${JSON.stringify({ execute: 'echo', arguments: { n }, id: n })}\n`);
    open();
    const got = await all;
    expect(got.map((m) => m.id)).toEqual(Array.from({ length: 202 }, (_, i) => i));
    expect(got.slice(2).every((m) => (m.return as { n: number }).n === m.id)).toBe(true);
    c.destroy();
  });

  it('drops a client that leaves more than 8 MiB of events unread', { timeout: 20_000 }, async () => {
    const c = await start(async () => ({}));
    const negotiated = replies(c, 1);
    c.write('{"execute":"qmp_capabilities","id":0}\n');
    await negotiated;
    c.pause();
    const pad = 'x'.repeat(1 << 20);
    for (let i = 0; i < 20; i++) server!.broadcast('BIG', { pad });
    let bytes = 0;
    c.on('data', (d: Buffer) => (bytes += d.length));
    c.resume();
    await new Promise((r) => c.once('close', r));
    expect(bytes).toBeLessThan(12 << 20); // not the 20 MiB broadcast
  });
});
