/**
 * The QMP server side, as QEMU speaks it: greeting on connect, nothing but
 * `qmp_capabilities` before negotiation, ids echoed, errors as
 * {"error":{"class","desc"}}, events broadcast to negotiated clients.
 */
import fs from 'node:fs';
import net from 'node:net';
import { LineBuffer, LineTooLongError } from '../../qmp/lines.js';
import type { QmpGreeting } from '../../qmp/types.js';

/** A QMP error reply to send back. */
export class QmpReply extends Error {
  constructor(
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(desc);
  }
}

/** Requests read but not yet answered before reading stops, as QEMU suspends its monitor (QMP_REQ_QUEUE_LEN_MAX). */
const MAX_QUEUED_REQUESTS = 8;
/** Replies and events a client leaves unread before it is dropped rather than buffered for without end. */
const MAX_UNREAD_BYTES = 8 << 20;

/** qmp_capabilities' one optional member, `enable: [QMPCapability]` (7.2 knows only "oob"), as the QAPI visitor checks it. */
function capabilitiesArgsError(args: Record<string, unknown>): string | undefined {
  if ('enable' in args) {
    const en = args.enable;
    if (!Array.isArray(en)) return "Invalid parameter type for 'enable', expected: array";
    for (let i = 0; i < en.length; i++) {
      if (typeof en[i] !== 'string') return `Invalid parameter type for 'enable[${i}]', expected: string`;
      if (en[i] !== 'oob') return `Parameter 'enable[${i}]' does not accept value '${String(en[i])}'`;
    }
  }
  for (const k of Object.keys(args)) if (k !== 'enable') return `Parameter '${k}' is unexpected`;
  return undefined;
}

export type QmpHandler = (command: string, args: Record<string, unknown>) => Promise<unknown>;

interface Client {
  sock: net.Socket;
  negotiated: boolean;
  /** Commands run one after another, as QEMU's monitor does (no OOB). */
  queue: Promise<void>;
  /** Requests in `queue` not yet answered. */
  queued: number;
}

export class QmpServer {
  private readonly servers: net.Server[] = [];
  private readonly clients = new Set<Client>();

  constructor(
    private readonly greeting: QmpGreeting,
    private readonly handler: QmpHandler,
  ) {}

  async listen(socketPath: string): Promise<void> {
    // QEMU replaces a stale socket file at the same path.
    try {
      if (fs.lstatSync(socketPath).isSocket()) fs.unlinkSync(socketPath);
    } catch {
      /* absent */
    }
    const server = net.createServer((sock) => this.accept(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.servers.push(server);
  }

  private accept(sock: net.Socket): void {
    const c: Client = { sock, negotiated: false, queue: Promise.resolve(), queued: 0 };
    this.clients.add(c);
    sock.on('close', () => this.clients.delete(c));
    sock.on('error', () => undefined);
    const lines = new LineBuffer(1 << 20);
    this.write(c, this.greeting);
    sock.on('data', (d: Buffer) => {
      let got: string[];
      try {
        got = lines.push(d);
      } catch (e) {
        if (e instanceof LineTooLongError) {
          this.write(c, { error: { class: 'GenericError', desc: 'JSON parse error, input too big' } });
          sock.destroy();
          return;
        }
        throw e;
      }
      for (const line of got) {
        if (!line.trim()) continue;
        c.queued++;
        c.queue = c.queue
          .then(() => this.onLine(c, line))
          .catch(() => undefined)
          .then(() => {
            if (--c.queued < MAX_QUEUED_REQUESTS && sock.isPaused()) sock.resume();
          });
      }
      if (c.queued >= MAX_QUEUED_REQUESTS) sock.pause();
    });
  }

  private write(c: Client, obj: unknown): void {
    if (c.sock.destroyed || !c.sock.writable) return;
    c.sock.write(`${JSON.stringify(obj)}\r\n`);
    if (c.sock.writableLength > MAX_UNREAD_BYTES) c.sock.destroy();
  }

  private async onLine(c: Client, line: string): Promise<void> {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.write(c, { error: { class: 'GenericError', desc: 'JSON parse error, invalid literal' } });
      return;
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      this.write(c, { error: { class: 'GenericError', desc: 'QMP input must be a JSON object' } });
      return;
    }
    const m = msg as { execute?: unknown; arguments?: unknown; id?: unknown };
    const withId = (o: Record<string, unknown>) => ('id' in m ? { ...o, id: m.id } : o);
    if (typeof m.execute !== 'string') {
      this.write(c, withId({ error: { class: 'GenericError', desc: "QMP input lacks member 'execute'" } }));
      return;
    }
    if (m.arguments !== undefined && (typeof m.arguments !== 'object' || m.arguments === null || Array.isArray(m.arguments))) {
      this.write(c, withId({ error: { class: 'GenericError', desc: "QMP input member 'arguments' must be an object" } }));
      return;
    }
    if (m.execute === 'qmp_capabilities') {
      const bad = c.negotiated ? undefined : capabilitiesArgsError((m.arguments as Record<string, unknown>) ?? {});
      if (bad) {
        this.write(c, withId({ error: { class: 'GenericError', desc: bad } }));
        return;
      }
      if (c.negotiated) {
        this.write(c, withId({ error: { class: 'CommandNotFound', desc: 'Capabilities negotiation is already complete, command ignored' } }));
      } else {
        c.negotiated = true;
        this.write(c, withId({ return: {} }));
      }
      return;
    }
    if (!c.negotiated) {
      this.write(c, withId({ error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" } }));
      return;
    }
    try {
      const ret = await this.handler(m.execute, (m.arguments as Record<string, unknown>) ?? {});
      this.write(c, withId({ return: ret ?? {} }));
    } catch (e) {
      if (e instanceof QmpReply) this.write(c, withId({ error: { class: e.errorClass, desc: e.desc } }));
      else this.write(c, withId({ error: { class: 'GenericError', desc: (e as Error).message } }));
    }
  }

  /** Sends an event to every negotiated client. */
  broadcast(event: string, data?: Record<string, unknown>): void {
    const now = Date.now();
    const ev: Record<string, unknown> = { timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 }, event };
    if (data !== undefined) ev.data = data;
    for (const c of this.clients) if (c.negotiated) this.write(c, ev);
  }

  /** Forwards an event object as received from the real QEMU. */
  forward(ev: unknown): void {
    for (const c of this.clients) if (c.negotiated) this.write(c, ev);
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.sock.end();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const c of this.clients) c.sock.destroy();
  }
}
