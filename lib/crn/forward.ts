/**
 * A TCP forwarder from a host port to an SEV-SNP guest's attestation agent (aleph-vm
 * DNATs a host port to guest 8443 and publishes it as `mapped_ports`; here it is a
 * userspace relay, so it also works for the simulator's VM-less guests and needs no
 * iptables). The relay only moves bytes: TLS runs end to end between the owner and the
 * agent, and the host (this process included) sees ciphertext.
 *
 * Every connection has a connect deadline to the agent and an idle deadline both ways;
 * connections are bounded (a client that opens many, or stalls, hurts only itself and
 * never another VM's forwarder: each VM has its own listener and limits); close() ends
 * every relayed connection and the listener.
 */
import net from 'node:net';
import { SevkitError } from '../errors.js';

/** Where a guest's attestation agent listens (an address this host can connect to). */
export interface AgentAddress {
  host: string;
  port: number;
}

/** Options of a PortForwarder: listen address, limits (ms, count). */
export interface PortForwarderOptions {
  /** Address the host port is bound on (default 127.0.0.1). */
  listenHost?: string;
  /** Host port; 0 (default) takes a free one. */
  listenPort?: number;
  /** The agent's address. */
  target: AgentAddress;
  /** Relayed connections open at once; more are closed at accept (default 32). */
  maxConnections?: number;
  /** Deadline to reach the agent (default 10 s). */
  connectTimeoutMs?: number;
  /** A connection with no byte either way for this long is closed (default 120 s). */
  idleTimeoutMs?: number;
  /** One line per refused or failed connection (never payload). */
  log?: (line: string) => void;
}

/** The forwarder could not listen on its host port. */
export class ForwardListenError extends SevkitError {
  constructor(message: string) {
    super('ERR_CRN_FORWARD_LISTEN', message);
  }
}

/** One VM's host port → agent relay. */
export class PortForwarder {
  readonly #server: net.Server;
  readonly #o: Required<Omit<PortForwarderOptions, 'log'>> & Pick<PortForwarderOptions, 'log'>;
  /** Every socket of a relay (client and agent side), to destroy on close. */
  readonly #conns = new Set<net.Socket>();
  /** Relays in progress (one per accepted client): what the bound counts. */
  #relays = 0;
  #closed: Promise<void> | undefined;
  /** Connections refused at accept because the bound was reached (for tests and logs). */
  refused = 0;

  private constructor(o: PortForwarderOptions) {
    this.#o = { listenHost: '127.0.0.1', listenPort: 0, maxConnections: 32, connectTimeoutMs: 10_000, idleTimeoutMs: 120_000, ...o };
    this.#server = net.createServer({ pauseOnConnect: true }, (c) => this.#accept(c));
    // Errors after listen (EMFILE at accept) must not take the CRN down.
    this.#server.on('error', (e) => this.#o.log?.(`forwarder :${this.port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
  }

  /** Listens on the host port and relays each connection to `target`. Throws ForwardListenError. */
  static async listen(o: PortForwarderOptions): Promise<PortForwarder> {
    if (!Number.isInteger(o.target.port) || o.target.port < 1 || o.target.port > 65535)
      throw new ForwardListenError(`agent port ${o.target.port} is not a TCP port`);
    const f = new PortForwarder(o);
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: NodeJS.ErrnoException): void =>
        reject(new ForwardListenError(`cannot forward ${f.#o.listenHost}:${f.#o.listenPort}: ${e.code ?? e.message}`));
      f.#server.once('error', onErr);
      f.#server.listen({ host: f.#o.listenHost, port: f.#o.listenPort, exclusive: true }, () => {
        f.#server.off('error', onErr);
        resolve();
      });
    });
    return f;
  }

  /** The bound host port. */
  get port(): number {
    const a = this.#server.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /** The host address clients connect to. */
  get host(): string {
    return this.#o.listenHost;
  }

  /** Relayed connections open now. */
  get connections(): number {
    return this.#relays;
  }

  #accept(client: net.Socket): void {
    client.on('error', () => undefined);
    if (this.#closed || this.#relays >= this.#o.maxConnections) {
      this.refused++;
      client.destroy();
      return;
    }
    this.#conns.add(client);
    this.#relays++;
    const upstream = net.connect({ host: this.#o.target.host, port: this.#o.target.port });
    this.#conns.add(upstream);
    let done = false;
    const end = (why?: string): void => {
      if (done) return;
      done = true;
      this.#relays--;
      clearTimeout(connectTimer);
      if (why) this.#o.log?.(`forwarder :${this.port} → ${this.#o.target.host}:${this.#o.target.port}: ${why}`);
      client.destroy();
      upstream.destroy();
      this.#conns.delete(client);
      this.#conns.delete(upstream);
    };
    const connectTimer = setTimeout(() => end(`agent did not accept within ${this.#o.connectTimeoutMs} ms`), this.#o.connectTimeoutMs);
    upstream.on('error', (e: NodeJS.ErrnoException) => end(`agent: ${e.code ?? e.message}`));
    client.on('error', () => end());
    client.on('close', () => end());
    upstream.on('close', () => end());
    for (const s of [client, upstream]) {
      s.setTimeout(this.#o.idleTimeoutMs, () => end(`idle for ${this.#o.idleTimeoutMs} ms`));
    }
    upstream.once('connect', () => {
      clearTimeout(connectTimer);
      // pipe() gives backpressure both ways: a client that stops reading stalls only its own agent connection.
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  }

  /** Stops listening and ends every relayed connection. Safe to call twice. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      for (const s of this.#conns) s.destroy();
      this.#conns.clear();
    });
    return this.#closed;
  }
}
