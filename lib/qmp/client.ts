/**
 * QMP client over a UNIX socket.
 *
 * QEMU sends a greeting, refuses everything before `qmp_capabilities`, echoes
 * the `id` of each request, and interleaves asynchronous events with replies
 * (an event may come before the reply of the command that caused it). So every
 * request carries an id of ours, replies are matched by id, and anything that
 * is not a reply to one of our ids, an event or the greeting ends the
 * conversation as a protocol error: a confused peer is not trusted further.
 */
import net from 'node:net';
import { LineBuffer, LineTooLongError } from './lines.js';
import { QmpCommandError, QmpConnectError, QmpDisconnectedError, QmpError, QmpProtocolError, QmpTimeoutError } from './errors.js';
import type {
  QmpEvent,
  QmpGreeting,
  SevAttestationReport,
  SevCapability,
  QmpSevInfo,
  SevInjectLaunchSecretArgs,
  SevLaunchMeasureInfo,
  StatusInfo,
} from './types.js';

/**
 * Deadlines (ms) and size bounds of a QmpClient: connect and per-command timeouts, longest accepted line, events
 * kept per slow subscriber.
 */
export interface QmpClientOptions {
  /** Deadline for connect + greeting + qmp_capabilities (ms). Default 10 s. */
  connectTimeoutMs?: number;
  /** Default per-command deadline (ms). Default 30 s (aleph's Rust client uses the same). */
  commandTimeoutMs?: number;
  /** Longest line accepted from the peer. Default 8 MiB. */
  maxLineBytes?: number;
  /** Events kept per unread subscriber before the oldest are dropped. Default 4096. */
  maxQueuedEvents?: number;
  /** Size (characters of their JSON lines) of the events kept per unread subscriber before the oldest are dropped. Default 16 Mi. */
  maxQueuedEventBytes?: number;
}

/** Per-command options: a deadline in ms overriding the client's default. */
export interface ExecuteOptions {
  timeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

interface Subscriber {
  queue: Array<{ e: QmpEvent; size: number }>;
  /** Sum of `size` over `queue`: a count bound alone would let 4096 events of maxLineBytes each pile up. */
  bytes: number;
  wake: (() => void) | undefined;
}

/** Timed-out ids remembered for their late reply; beyond this the oldest are forgotten. */
const MAX_ABANDONED = 1024;

const DEFAULTS = { connectTimeoutMs: 10_000, commandTimeoutMs: 30_000, maxLineBytes: 8 << 20, maxQueuedEvents: 4096, maxQueuedEventBytes: 16 << 20 };

/**
 * A QMP client over a UNIX socket: commands with deadlines, typed SEV queries and events; every failure is a
 * QmpError subclass, and close() fails pending commands with QmpDisconnectedError.
 */
export class QmpClient {
  readonly socketPath: string;
  /** The greeting QEMU sent on connect. */
  greeting!: QmpGreeting;

  private readonly sock: net.Socket;
  private readonly opts: Required<QmpClientOptions>;
  private readonly lines: LineBuffer;
  private readonly pending = new Map<number, Pending>();
  /** Ids whose command timed out: QEMU may still answer them, once, and that is not a confused peer. */
  private readonly abandoned = new Set<number>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly eventListeners = new Set<(e: QmpEvent) => void>();
  private nextId = 1;
  private closedWith: QmpError | undefined;
  private greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void } | undefined;
  private readonly closeWaiters: Array<() => void> = [];

  private constructor(socketPath: string, sock: net.Socket, opts: Required<QmpClientOptions>) {
    this.socketPath = socketPath;
    this.sock = sock;
    this.opts = opts;
    this.lines = new LineBuffer(opts.maxLineBytes);
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (err) => this.fail(new QmpDisconnectedError(`QMP ${socketPath}: ${err.message}`, { cause: err })));
    sock.on('close', () => this.fail(new QmpDisconnectedError(`QMP ${socketPath}: connection closed by QEMU`)));
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(socketPath: string, options: QmpClientOptions = {}): Promise<QmpClient> {
    const opts = { ...DEFAULTS, ...options };
    const sock = await openSocket(socketPath, opts.connectTimeoutMs);
    const client = new QmpClient(socketPath, sock, opts);
    try {
      await client.handshake(opts.connectTimeoutMs);
    } catch (e) {
      client.destroy();
      throw e;
    }
    return client;
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  private async handshake(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      if (this.closedWith) return reject(this.closedWith);
      const timer = setTimeout(() => {
        reject(
          new QmpTimeoutError(`QMP ${this.socketPath}: no greeting within ${timeoutMs} ms (QEMU serves one QMP client at a time: is another one connected?)`),
        );
      }, timeoutMs);
      this.greetingWaiter = {
        resolve: (g) => {
          clearTimeout(timer);
          resolve(g);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
    this.greeting = greeting;
    await this.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
  }

  /**
   * Sends one command; resolves with its `return` value. Many may be in flight.
   * Rejects with QmpCommandError (QEMU said no), QmpTimeoutError, QmpDisconnectedError or QmpProtocolError.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: ExecuteOptions = {}): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined && Object.keys(args).length > 0) msg.arguments = args;
    const timeoutMs = options.timeoutMs ?? this.opts.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { command, resolve: resolve as (v: unknown) => void, reject, timer: undefined };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          this.abandoned.add(id);
          if (this.abandoned.size > MAX_ABANDONED) this.abandoned.delete(this.abandoned.values().next().value!);
          reject(new QmpTimeoutError(`QMP ${command}: no answer within ${timeoutMs} ms on ${this.socketPath}`));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      this.sock.write(`${JSON.stringify(msg)}\n`);
    });
  }

  // ---- typed wrappers -------------------------------------------------------------------------

  queryStatus(o?: ExecuteOptions): Promise<StatusInfo> {
    return this.execute<StatusInfo>('query-status', undefined, o);
  }
  async cont(o?: ExecuteOptions): Promise<void> {
    await this.execute('cont', undefined, o);
  }
  async stop(o?: ExecuteOptions): Promise<void> {
    await this.execute('stop', undefined, o);
  }
  async systemPowerdown(o?: ExecuteOptions): Promise<void> {
    await this.execute('system_powerdown', undefined, o);
  }
  /** Asks QEMU to exit. QEMU may close the socket right after replying; both count as success. */
  async quit(o?: ExecuteOptions): Promise<void> {
    try {
      await this.execute('quit', undefined, o);
    } catch (e) {
      if (!(e instanceof QmpDisconnectedError)) throw e;
    }
  }
  async querySev(o?: ExecuteOptions): Promise<QmpSevInfo> {
    const info = await this.execute<QmpSevInfo>('query-sev', undefined, o);
    if (!info || typeof info !== 'object' || typeof info.enabled !== 'boolean') {
      throw new QmpProtocolError(`QMP query-sev: reply is not a SevInfo object`);
    }
    // QEMU ≥ 9.1 tags the union; older versions are plain SEV.
    return { ...info, 'sev-type': info['sev-type'] ?? 'sev' };
  }
  async querySevLaunchMeasure(o?: ExecuteOptions): Promise<SevLaunchMeasureInfo> {
    const r = await this.execute<SevLaunchMeasureInfo>('query-sev-launch-measure', undefined, o);
    if (!r || typeof r.data !== 'string') throw new QmpProtocolError('QMP query-sev-launch-measure: reply has no string "data"');
    return r;
  }
  querySevCapabilities(o?: ExecuteOptions): Promise<SevCapability> {
    return this.execute<SevCapability>('query-sev-capabilities', undefined, o);
  }
  async sevInjectLaunchSecret(args: SevInjectLaunchSecretArgs, o?: ExecuteOptions): Promise<void> {
    const a: Record<string, unknown> = { 'packet-header': args['packet-header'], secret: args.secret };
    if (args.gpa !== undefined) a.gpa = args.gpa;
    await this.execute('sev-inject-launch-secret', a, o);
  }
  /** `mnonce`: base64 of exactly 16 bytes. */
  querySevAttestationReport(mnonce: string, o?: ExecuteOptions): Promise<SevAttestationReport> {
    return this.execute<SevAttestationReport>('query-sev-attestation-report', { mnonce }, o);
  }

  // ---- events ----------------------------------------------------------------------------------

  /** Calls `fn` for every event until the returned function is called. */
  onEvent(fn: (e: QmpEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  /**
   * Events from now on as an async iterable; it ends when the connection closes.
   * A slow reader loses the oldest events beyond `maxQueuedEvents` rather than growing memory.
   */
  events(): AsyncIterableIterator<QmpEvent> {
    const sub: Subscriber = { queue: [], bytes: 0, wake: undefined };
    this.subscribers.add(sub);
    const done = (): IteratorResult<QmpEvent> => {
      this.subscribers.delete(sub);
      return { value: undefined, done: true };
    };
    const it: AsyncIterableIterator<QmpEvent> = {
      next: async () => {
        for (;;) {
          const head = sub.queue.shift();
          if (head) {
            sub.bytes -= head.size;
            return { value: head.e, done: false };
          }
          if (this.closedWith || !this.subscribers.has(sub)) return done();
          await new Promise<void>((r) => (sub.wake = r));
          sub.wake = undefined;
        }
      },
      return: async () => {
        this.subscribers.delete(sub);
        sub.wake?.();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  /** Resolves with the first event named `name` (and matching `filter`) within the deadline. */
  waitForEvent(name: string, options: { timeoutMs?: number; filter?: (e: QmpEvent) => boolean } = {}): Promise<QmpEvent> {
    const timeoutMs = options.timeoutMs ?? this.opts.commandTimeoutMs;
    return new Promise((resolve, reject) => {
      if (this.closedWith) return reject(this.closedWith);
      const cleanup = () => {
        clearTimeout(timer);
        off();
        this.closeWaiters.splice(this.closeWaiters.indexOf(onClose) >>> 0, 1);
      };
      const off = this.onEvent((e) => {
        if (e.event !== name) return;
        let match: boolean;
        try {
          match = !options.filter || options.filter(e);
        } catch (err) {
          // Thrown from the socket's data handler it would be an uncaught exception: the waiter gets it instead.
          cleanup();
          reject(err);
          return;
        }
        if (match) {
          cleanup();
          resolve(e);
        }
      });
      const onClose = () => {
        cleanup();
        reject(this.closedWith!);
      };
      this.closeWaiters.push(onClose);
      const timer = setTimeout(() => {
        cleanup();
        reject(new QmpTimeoutError(`QMP ${this.socketPath}: no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
    });
  }

  /** Resolves once the connection is closed (by either side). */
  waitClosed(): Promise<void> {
    if (this.closedWith) return Promise.resolve();
    return new Promise((r) => this.closeWaiters.push(r));
  }

  /** Closes the connection; pending commands fail with QmpDisconnectedError. */
  close(): void {
    this.fail(new QmpDisconnectedError(`QMP ${this.socketPath}: connection closed locally`));
  }

  private destroy(): void {
    this.close();
  }

  // ---- input -----------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.closedWith) return;
    let lines: string[];
    try {
      lines = this.lines.push(chunk);
    } catch (e) {
      if (e instanceof LineTooLongError) {
        this.fail(new QmpProtocolError(`QMP ${this.socketPath}: peer sent a line longer than ${e.limit} bytes`));
        return;
      }
      throw e;
    }
    for (const line of lines) {
      if (this.closedWith) return;
      if (line.trim() === '') continue;
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.fail(new QmpProtocolError(`QMP ${this.socketPath}: peer sent a line that is not JSON: ${preview(line)}`));
      return;
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      this.fail(new QmpProtocolError(`QMP ${this.socketPath}: peer sent JSON that is not an object: ${preview(line)}`));
      return;
    }
    const m = msg as Record<string, unknown>;
    if ('QMP' in m) {
      const w = this.greetingWaiter;
      if (!w) this.fail(new QmpProtocolError(`QMP ${this.socketPath}: unexpected second greeting`));
      else if (!isGreeting(m)) this.fail(new QmpProtocolError(`QMP ${this.socketPath}: greeting lacks QMP.version or QMP.capabilities: ${preview(line)}`));
      else {
        this.greetingWaiter = undefined;
        w.resolve(m);
      }
      return;
    }
    if (this.greetingWaiter) {
      this.fail(new QmpProtocolError(`QMP ${this.socketPath}: expected the QMP greeting, got ${preview(line)}`));
      return;
    }
    if (typeof m.event === 'string') {
      this.dispatchEvent(m as unknown as QmpEvent, line.length);
      return;
    }
    if ('return' in m || 'error' in m) {
      const id = m.id;
      const p = typeof id === 'number' ? this.pending.get(id) : undefined;
      if (!p) {
        if (typeof id === 'number' && this.abandoned.delete(id)) return; // late answer to a command that timed out
        this.fail(new QmpProtocolError(`QMP ${this.socketPath}: reply with unknown id ${JSON.stringify(id ?? null)}`));
        return;
      }
      this.pending.delete(id as number);
      if (p.timer) clearTimeout(p.timer);
      if ('error' in m) {
        const err = m.error as { class?: unknown; desc?: unknown } | null;
        if (!err || typeof err !== 'object' || typeof err.class !== 'string' || typeof err.desc !== 'string') {
          this.fail(new QmpProtocolError(`QMP ${p.command}: malformed error reply ${preview(line)}`));
          p.reject(this.closedWith!);
          return;
        }
        p.reject(new QmpCommandError(p.command, err.class, err.desc));
      } else {
        p.resolve(m.return);
      }
      return;
    }
    this.fail(new QmpProtocolError(`QMP ${this.socketPath}: message is neither reply nor event: ${preview(line)}`));
  }

  private dispatchEvent(e: QmpEvent, size: number): void {
    for (const fn of [...this.eventListeners]) fn(e);
    for (const sub of this.subscribers) {
      sub.queue.push({ e, size });
      sub.bytes += size;
      // The newest event always stays (it is within maxLineBytes); older ones go first.
      while (sub.queue.length > 1 && (sub.queue.length > this.opts.maxQueuedEvents || sub.bytes > this.opts.maxQueuedEventBytes)) {
        sub.bytes -= sub.queue.shift()!.size;
      }
      sub.wake?.();
    }
  }

  /** Ends the conversation once; everything waiting learns why. */
  private fail(err: QmpError): void {
    if (this.closedWith) return;
    this.closedWith = err;
    this.sock.destroy();
    this.greetingWaiter?.reject(err);
    for (const [, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(err instanceof QmpProtocolError ? err : new QmpDisconnectedError(`QMP ${p.command}: ${err.message}`));
    }
    this.pending.clear();
    for (const sub of this.subscribers) sub.wake?.();
    for (const w of this.closeWaiters.splice(0)) w();
  }

  /** Why the connection ended, if it did. */
  get closeReason(): QmpError | undefined {
    return this.closedWith;
  }
}

/** The shape callers read from the greeting (QEMU has always sent both members). */
function isGreeting(m: Record<string, unknown>): m is Record<string, unknown> & QmpGreeting {
  const q = m.QMP as { version?: unknown; capabilities?: unknown } | null;
  return !!q && typeof q === 'object' && !!q.version && typeof q.version === 'object' && Array.isArray(q.capabilities);
}

function preview(s: string): string {
  const t = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return JSON.stringify(t);
}

function openSocket(socketPath: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path: socketPath });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new QmpTimeoutError(`QMP ${socketPath}: connect timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolve(sock);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === 'ENOENT' ? 'no such socket' : err.code === 'ECONNREFUSED' ? 'connection refused (is QEMU running?)' : err.message;
      reject(new QmpConnectError(socketPath, `QMP ${socketPath}: ${why}`, { cause: err }));
    });
  });
}
