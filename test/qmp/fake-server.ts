/** A scriptable QMP peer for tests: well-behaved by default, hostile on request. */
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const GREETING = { QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: 'fake' }, capabilities: ['oob'] } };

export interface FakeConn {
  sock: net.Socket;
  send(obj: unknown): void;
  raw(s: string | Buffer): void;
}

export type Handler = (conn: FakeConn, msg: { execute: string; arguments?: Record<string, unknown>; id?: unknown }) => void;

export interface FakeServer {
  socketPath: string;
  dir: string;
  received: Array<{ execute: string; arguments?: Record<string, unknown>; id?: unknown }>;
  connections: number;
  close(): Promise<void>;
}

/** `onCommand` answers everything after qmp_capabilities; default answers `{}`. */
export async function startFakeQmp(opts: { onCommand?: Handler; greeting?: boolean; onConnect?: (c: FakeConn) => void } = {}): Promise<FakeServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-fakeqmp-'));
  const socketPath = path.join(dir, 'qmp.sock');
  const sockets = new Set<net.Socket>();
  const state: FakeServer = {
    socketPath,
    dir,
    received: [],
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          fs.rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    state.connections++;
    const conn: FakeConn = {
      sock,
      send: (o) => {
        if (!sock.destroyed) sock.write(`${JSON.stringify(o)}\r\n`);
      },
      raw: (s) => {
        if (!sock.destroyed) sock.write(s);
      },
    };
    if (opts.onConnect) opts.onConnect(conn);
    if (opts.greeting !== false) conn.send(GREETING);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const msg = JSON.parse(line);
        state.received.push(msg);
        if (msg.execute === 'qmp_capabilities') conn.send({ return: {}, id: msg.id });
        else if (opts.onCommand) opts.onCommand(conn, msg);
        else conn.send({ return: {}, id: msg.id });
      }
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  return state;
}
