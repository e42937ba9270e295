import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import net from 'node:net';
import { QmpClient, QmpCommandError, QmpConnectError, QmpDisconnectedError, QmpProtocolError, QmpTimeoutError, waitForQmp } from '../../lib/qmp/index.js';
import { startFakeQmp, type FakeServer } from './fake-server.js';

let server: FakeServer | undefined;
let client: QmpClient | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await server?.close();
  server = undefined;
});

describe('QmpClient against a well-behaved peer', () => {
  it('negotiates capabilities before anything else and exposes the greeting', async () => {
    server = await startFakeQmp();
    client = await QmpClient.connect(server.socketPath);
    expect(client.greeting.QMP.version.qemu).toEqual({ micro: 22, minor: 2, major: 7 });
    expect(server.received[0].execute).toBe('qmp_capabilities');
  });

  it('matches replies to requests by id when many are in flight and answered out of order', async () => {
    const held: Array<{ id: unknown; n: number }> = [];
    server = await startFakeQmp({
      onCommand: (conn, msg) => {
        held.push({ id: msg.id, n: (msg.arguments?.n as number) ?? -1 });
        if (held.length === 20) {
          // Answer in reverse order, with an event in between.
          conn.send({ event: 'RESUME', timestamp: { seconds: 1, microseconds: 2 } });
          for (const h of held.reverse()) conn.send({ return: { echo: h.n }, id: h.id });
        }
      },
    });
    client = await QmpClient.connect(server.socketPath);
    const results = await Promise.all(Array.from({ length: 20 }, (_, n) => client!.execute<{ echo: number }>('echo', { n })));
    expect(results.map((r) => r.echo)).toEqual(Array.from({ length: 20 }, (_, n) => n));
    const ids = server.received.slice(1).map((m) => m.id);
    expect(new Set(ids).size).toBe(20);
  });

  it('omits "arguments" when there are none and sends sev-inject-launch-secret arguments as aleph does', async () => {
    server = await startFakeQmp();
    client = await QmpClient.connect(server.socketPath);
    await client.cont();
    await client.sevInjectLaunchSecret({ 'packet-header': 'aGVhZGVy', secret: 'c2VjcmV0' });
    await client.sevInjectLaunchSecret({ 'packet-header': 'aGVhZGVy', secret: 'c2VjcmV0', gpa: 0x810000 });
    expect(server.received[1]).toEqual({ execute: 'cont', id: server.received[1].id });
    expect(server.received[2].arguments).toEqual({ 'packet-header': 'aGVhZGVy', secret: 'c2VjcmV0' });
    expect(server.received[3].arguments).toEqual({ 'packet-header': 'aGVhZGVy', secret: 'c2VjcmV0', gpa: 0x810000 });
  });

  it('parses query-sev in both the 7.2 flat shape and the 9.1 union shape', async () => {
    let n = 0;
    server = await startFakeQmp({
      onCommand: (conn, msg) => {
        const base = { enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 42, policy: 5, state: 'launch-secret', handle: 7 };
        conn.send({ return: n++ === 0 ? base : { ...base, 'sev-type': 'sev-snp' }, id: msg.id });
      },
    });
    client = await QmpClient.connect(server.socketPath);
    const a = await client.querySev();
    expect(a['sev-type']).toBe('sev');
    expect(a.policy).toBe(5);
    expect(a.handle).toBe(7);
    const b = await client.querySev();
    expect(b['sev-type']).toBe('sev-snp');
  });

  it('turns a QMP error reply into QmpCommandError with class and desc', async () => {
    server = await startFakeQmp({
      onCommand: (conn, msg) => conn.send({ id: msg.id, error: { class: 'GenericError', desc: 'sev not enabled' } }),
    });
    client = await QmpClient.connect(server.socketPath);
    const err = await client.querySevLaunchMeasure().catch((e) => e);
    expect(err).toBeInstanceOf(QmpCommandError);
    expect(err.errorClass).toBe('GenericError');
    expect(err.desc).toBe('sev not enabled');
    expect(err.message).toBe('QMP query-sev-launch-measure failed: GenericError: sev not enabled');
    // The connection survives a command error.
    expect(client.closed).toBe(false);
  });

  it('streams events as an async iterable that ends when the peer closes', async () => {
    server = await startFakeQmp({
      onCommand: (conn, msg) => {
        conn.send({ event: 'STOP', timestamp: { seconds: 1, microseconds: 0 } });
        conn.send({ return: {}, id: msg.id });
        conn.send({ event: 'NIC_RX_FILTER_CHANGED', data: { name: 'net0' }, timestamp: { seconds: 1, microseconds: 1 } });
        conn.send({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' }, timestamp: { seconds: 1, microseconds: 2 } });
        setTimeout(() => conn.sock.end(), 20);
      },
    });
    client = await QmpClient.connect(server.socketPath);
    const iter = client.events();
    await client.execute('quit');
    const seen: string[] = [];
    for await (const e of iter) seen.push(e.event);
    expect(seen).toEqual(['STOP', 'NIC_RX_FILTER_CHANGED', 'SHUTDOWN']);
    expect(client.closed).toBe(true);
  });

  it('a subscriber that does not read keeps only the newest events, bounded by count and by bytes', async () => {
    const pad = 'p'.repeat(1 << 20);
    server = await startFakeQmp({
      onCommand: (conn, msg) => {
        const big = msg.execute === 'big';
        for (let n = 0; n < 10; n++) conn.send({ event: 'E', data: big ? { n, pad } : { n } });
        conn.send({ return: {}, id: msg.id });
        conn.sock.end();
      },
    });
    const collect = async (it: AsyncIterableIterator<{ data?: Record<string, unknown> }>) => {
      const ns: unknown[] = [];
      for await (const e of it) ns.push(e.data?.n);
      return ns;
    };
    client = await QmpClient.connect(server.socketPath, { maxQueuedEvents: 3 });
    let it = client.events();
    await client.execute('small');
    expect(await collect(it)).toEqual([7, 8, 9]);
    client.close();

    client = await QmpClient.connect(server.socketPath, { maxQueuedEventBytes: 2.5 * (1 << 20) });
    it = client.events();
    await client.execute('big');
    expect(await collect(it)).toEqual([8, 9]);
  });

  it('waitForEvent resolves on the matching event', async () => {
    server = await startFakeQmp({
      onCommand: (conn, msg) => {
        conn.send({ return: {}, id: msg.id });
        setTimeout(() => conn.send({ event: 'POWERDOWN', timestamp: { seconds: 3, microseconds: 0 } }), 10);
      },
    });
    client = await QmpClient.connect(server.socketPath);
    const ev = client.waitForEvent('POWERDOWN', { timeoutMs: 2000 });
    await client.systemPowerdown();
    expect((await ev).timestamp?.seconds).toBe(3);
  });

  it('waitForEvent rejects with what its filter throws, and the connection stays up', async () => {
    server = await startFakeQmp({
      onCommand: (conn, msg) => {
        conn.send({ event: 'POWERDOWN', timestamp: { seconds: 3, microseconds: 0 } });
        conn.send({ return: {}, id: msg.id });
      },
    });
    client = await QmpClient.connect(server.socketPath);
    const boom = new Error('filter bug');
    const ev = client.waitForEvent('POWERDOWN', {
      filter: () => {
        throw boom;
      },
    });
    await client.systemPowerdown();
    expect(await ev.catch((e) => e)).toBe(boom);
    expect(client.closed).toBe(false);
    expect(await client.execute('query-status')).toEqual({});
  });
});

describe('QmpClient against hostile peers', () => {
  it('fails a command with QmpTimeoutError when the peer is slow, and keeps the connection', async () => {
    server = await startFakeQmp({
      onCommand: (conn, msg) => {
        if (msg.execute === 'slow') return; // never answers
        conn.send({ return: { ok: 1 }, id: msg.id });
      },
    });
    client = await QmpClient.connect(server.socketPath);
    const err: any = await client.execute('slow', undefined, { timeoutMs: 50 }).catch((e) => e);
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect(err.message).toContain('slow');
    expect(await client.execute('fast')).toEqual({ ok: 1 });
  });

  it('drops the late reply of a timed-out command once, and still refuses a second reply with that id', async () => {
    let slowId: unknown;
    server = await startFakeQmp({
      onCommand: (conn, msg) => {
        if (msg.execute === 'slow')
          slowId = msg.id; // answered only when 'fast' comes, after the deadline
        else if (msg.execute === 'fast') {
          conn.send({ return: { late: 1 }, id: slowId });
          conn.send({ return: { ok: 1 }, id: msg.id });
        } else conn.send({ return: { late: 2 }, id: slowId });
      },
    });
    client = await QmpClient.connect(server.socketPath);
    expect(await client.execute('slow', undefined, { timeoutMs: 20 }).catch((e) => e)).toBeInstanceOf(QmpTimeoutError);
    expect(await client.execute('fast')).toEqual({ ok: 1 });
    expect(client.closed).toBe(false);
    const err: any = await client.execute('again').catch((e) => e);
    expect(err).toBeInstanceOf(QmpProtocolError);
    expect(err.message).toContain(`unknown id ${String(slowId)}`);
  });

  it('fails every in-flight command with QmpDisconnectedError when the peer closes mid-command', async () => {
    server = await startFakeQmp({
      onCommand: (conn, msg) => {
        if (msg.execute === 'query-sev-launch-measure') conn.sock.destroy();
      },
    });
    client = await QmpClient.connect(server.socketPath);
    const a = client.execute('query-status').catch((e) => e);
    const b = client.querySevLaunchMeasure().catch((e) => e);
    expect(await a).toBeInstanceOf(QmpDisconnectedError);
    expect(await b).toBeInstanceOf(QmpDisconnectedError);
    // Later commands fail at once, with the same class.
    expect(await client.cont().catch((e) => e)).toBeInstanceOf(QmpDisconnectedError);
  });

  it('rejects garbage (not JSON) with QmpProtocolError and closes', async () => {
    server = await startFakeQmp({ onCommand: (conn) => conn.raw('this is not json\r\n') });
    client = await QmpClient.connect(server.socketPath);
    const err: any = await client.queryStatus().catch((e) => e);
    expect(err).toBeInstanceOf(QmpProtocolError);
    expect(err.message).toContain('not JSON');
    expect(client.closed).toBe(true);
  });

  it('rejects JSON that is neither reply nor event, and replies with ids never sent', async () => {
    server = await startFakeQmp({ onCommand: (conn) => conn.send([1, 2, 3]) });
    client = await QmpClient.connect(server.socketPath);
    expect(await client.queryStatus().catch((e) => e)).toBeInstanceOf(QmpProtocolError);
    await server.close();

    server = await startFakeQmp({ onCommand: (conn) => conn.send({ return: {}, id: 'not-ours' }) });
    client = await QmpClient.connect(server.socketPath);
    const err: any = await client.queryStatus().catch((e) => e);
    expect(err).toBeInstanceOf(QmpProtocolError);
    expect(err.message).toContain('unknown id');
    await server.close();

    server = await startFakeQmp({ onCommand: (conn, m) => conn.send({ error: { nope: 1 }, id: m.id }) });
    client = await QmpClient.connect(server.socketPath);
    expect(await client.queryStatus().catch((e) => e)).toBeInstanceOf(QmpProtocolError);
  });

  it('stops reading a line longer than the bound, even when it never ends', async () => {
    server = await startFakeQmp({
      onCommand: (conn) => {
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        for (let i = 0; i < 8; i++) conn.raw(chunk); // 512 KiB, no newline
      },
    });
    client = await QmpClient.connect(server.socketPath, { maxLineBytes: 100 * 1024 });
    const err: any = await client.queryStatus().catch((e) => e);
    expect(err).toBeInstanceOf(QmpProtocolError);
    expect(err.message).toContain('longer than 102400 bytes');
  });

  it('accepts a line just under the bound', async () => {
    const big = 'x'.repeat(90 * 1024);
    server = await startFakeQmp({ onCommand: (conn, m) => conn.send({ return: { big }, id: m.id }) });
    client = await QmpClient.connect(server.socketPath, { maxLineBytes: 100 * 1024 });
    expect(((await client.execute('big')) as { big: string }).big.length).toBe(big.length);
  });

  it('times out a peer that never greets, and rejects a peer that talks before greeting', async () => {
    server = await startFakeQmp({ greeting: false });
    expect(await QmpClient.connect(server.socketPath, { connectTimeoutMs: 100 }).catch((e) => e)).toBeInstanceOf(QmpTimeoutError);
    await server.close();
    server = await startFakeQmp({ greeting: false, onConnect: (c) => c.send({ return: {} }) });
    expect(await QmpClient.connect(server.socketPath).catch((e) => e)).toBeInstanceOf(QmpProtocolError);
    await server.close();
    server = await startFakeQmp({ greeting: false, onConnect: (c) => c.send({ QMP: { capabilities: [] } }) });
    const err: any = await QmpClient.connect(server.socketPath).catch((e) => e);
    expect(err).toBeInstanceOf(QmpProtocolError);
    expect(err.message).toContain('greeting lacks QMP.version or QMP.capabilities');
  });

  it('reports a missing socket as QmpConnectError naming the path', async () => {
    const p = path.join(os.tmpdir(), `sevkit-nonexistent-${process.pid}.sock`);
    const err = await QmpClient.connect(p).catch((e) => e);
    expect(err).toBeInstanceOf(QmpConnectError);
    expect(err.message).toContain(p);
    expect(err.message).toContain('no such socket');
  });
});

describe('waitForQmp', () => {
  it('connects as soon as the socket appears, without a fixed sleep', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-wait-'));
    const p = path.join(dir, 'late.sock');
    const pending = waitForQmp(p, { timeoutMs: 5000 });
    let srv: net.Server | undefined;
    setTimeout(() => {
      srv = net
        .createServer((s) => {
          s.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities: [] } })}\n`);
          s.on('data', (d) => {
            const m = JSON.parse(d.toString());
            s.write(`${JSON.stringify({ return: {}, id: m.id })}\n`);
          });
        })
        .listen(p);
    }, 150);
    client = await pending;
    expect(client.closed).toBe(false);
    client.close();
    await new Promise((r) => srv!.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A socket file nobody listens on (ECONNREFUSED), as between QEMU's bind() and listen(). */
  async function refusingSocket(p: string): Promise<void> {
    const tmp = `${p}.live`;
    const srv = net.createServer().listen(tmp);
    await new Promise((r) => srv.once('listening', r));
    fs.linkSync(tmp, p); // a second name for the socket inode outlives the server
    await new Promise((r) => srv.close(r));
  }
  const greeter = () =>
    net.createServer((s) => {
      s.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities: [] } })}\n`);
      s.on('data', (d) => s.write(`${JSON.stringify({ return: {}, id: JSON.parse(d.toString()).id })}\n`));
    });

  it('keeps retrying a socket file that exists but refuses, and connects once QEMU listens on it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-wait-'));
    const p = path.join(dir, 'qmp.sock');
    await refusingSocket(p);
    expect(await QmpClient.connect(p).catch((e) => e)).toBeInstanceOf(QmpConnectError);
    const pending = waitForQmp(p, { timeoutMs: 10_000 });
    const srv = greeter();
    setTimeout(() => {
      fs.rmSync(p);
      srv.listen(p);
    }, 50);
    client = await pending;
    expect(client.closed).toBe(false);
    client.close();
    await new Promise((r) => srv.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a socket that keeps refusing times out at the deadline, naming the refusal', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-wait-'));
    const p = path.join(dir, 'stale.sock');
    await refusingSocket(p);
    const err = await waitForQmp(p, { timeoutMs: 100 }).catch((e) => e);
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect(err.message).toMatch(/connection refused/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gives up at the deadline and when aborted', async () => {
    const p = path.join(os.tmpdir(), `sevkit-never-${process.pid}.sock`);
    expect(await waitForQmp(p, { timeoutMs: 80 }).catch((e) => e)).toBeInstanceOf(QmpTimeoutError);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('qemu exited')), 30);
    const err = await waitForQmp(p, { timeoutMs: 5000, signal: ac.signal }).catch((e) => e);
    expect(err.message).toBe('qemu exited');
  });
});
