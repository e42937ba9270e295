/**
 * SimClient: talks JSON to the simulator daemon over its UNIX socket (the one
 * in SEVKIT_SIM_SOCKET). The simulator's QEMU wrapper uses it to issue the
 * guest-launch firmware commands as KVM would; tests use it for control
 * (fault injection, status).
 *
 * Guests launched over a client die (DECOMMISSION) when the client closes,
 * like KVM tearing down a VM whose fd is closed.
 */
import net from 'node:net';
import { SevkitError } from '../errors.js';
import { FrameReader, decodeJson, encodeJson, frame } from './protocol.js';
import type { FaultSpec } from './faults.js';
import type { JsonReply } from './json-api.js';

/** The daemon refused a request; firmware refusals carry the SEV_RET_* status. */
export class SimClientError extends SevkitError {
  readonly fwStatus: number | undefined;
  readonly fwStatusName: string | undefined;
  constructor(code: string, message: string, fwStatus?: number, fwStatusName?: string) {
    super(code, message);
    this.fwStatus = fwStatus;
    this.fwStatusName = fwStatusName;
  }
}

/** A firmware API version: major, minor and build. */
export interface SimApi {
  major: number;
  minor: number;
  build: number;
}

/**
 * The guest-launch firmware commands as typed calls over `request(op, args)`
 * (wire form: binary as base64). SimClient carries them to the daemon; the
 * QEMU wrapper's in-process firmware hands them straight to the same model
 * (lib/sim/guests.ts guestOp).
 */
export abstract class SimCalls {
  abstract request<T = unknown>(op: string, args?: Record<string, unknown>): Promise<T>;
  abstract close(): void;

  // ---- guest launch (as KVM issues them) ----------------------------------

  async api(): Promise<SimApi> {
    return this.request<SimApi>('api');
  }

  /** LAUNCH_START (+ ACTIVATE): returns the guest handle. Without godh/session the firmware picks the keys. */
  async launchStart(a: { policy: number; godh?: Buffer; session?: Buffer; name?: string }): Promise<number> {
    const args: Record<string, unknown> = { policy: a.policy };
    if (a.name !== undefined) args.name = a.name;
    if (a.godh) args.godh = a.godh.toString('base64');
    if (a.session) args.session = a.session.toString('base64');
    const r = await this.request<{ handle: number }>('launchStart', args);
    return r.handle;
  }

  async launchUpdateData(handle: number, data: Buffer): Promise<void> {
    await this.request('launchUpdateData', { handle, data: data.toString('base64') });
  }

  /**
   * LAUNCH_UPDATE_DATA of a whole file the daemon reads itself (absolute path): nothing
   * crosses the socket but the path, and the daemon hashes each file version once.
   */
  async launchUpdateFile(handle: number, file: string): Promise<{ length: number }> {
    return (await this.request('launchUpdateFile', { handle, path: file })) as { length: number };
  }

  async launchUpdateVmsa(handle: number, page: Buffer): Promise<void> {
    await this.request('launchUpdateVmsa', { handle, page: page.toString('base64') });
  }

  /** 48 bytes: MEASURE ‖ MNONCE. */
  async launchMeasure(handle: number): Promise<Buffer> {
    const r = await this.request<{ measurement: string }>('launchMeasure', { handle });
    return Buffer.from(r.measurement, 'base64');
  }

  /** Checks the packet MAC; returns the plaintext the guest would find at `gpa`. */
  async launchSecret(handle: number, header: Buffer, payload: Buffer, gpa: number): Promise<Buffer> {
    const r = await this.request<{ plaintext: string }>('launchSecret', {
      handle,
      header: header.toString('base64'),
      payload: payload.toString('base64'),
      gpa,
    });
    return Buffer.from(r.plaintext, 'base64');
  }

  async launchFinish(handle: number): Promise<void> {
    await this.request('launchFinish', { handle });
  }

  /** ATTESTATION: the 208-byte legacy report (mnonce ‖ launch digest ‖ policy, PEK-signed). Needs a 16-byte mnonce. */
  async attestation(handle: number, mnonce: Buffer): Promise<Buffer> {
    const r = await this.request<{ report: string }>('attestation', { handle, mnonce: mnonce.toString('base64') });
    return Buffer.from(r.report, 'base64');
  }

  async decommission(handle: number): Promise<void> {
    await this.request('decommission', { handle });
  }

  async pdhCertExport(): Promise<{ pdh: Buffer; certChain: Buffer }> {
    const r = await this.request<{ pdh: string; certChain: string }>('pdhCertExport');
    return { pdh: Buffer.from(r.pdh, 'base64'), certChain: Buffer.from(r.certChain, 'base64') };
  }

  async getId(): Promise<Buffer> {
    const r = await this.request<{ id: string }>('getId');
    return Buffer.from(r.id, 'base64');
  }
}

/**
 * A connection to a running SimDaemon ($SEVKIT_SIM_SOCKET by default) for the guest-launch firmware commands; a
 * refusal is a SimClientError carrying the SEV_RET_* status.
 */
export class SimClient extends SimCalls {
  private sock: net.Socket | undefined;
  private readonly reader = new FrameReader();
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private closedError: Error | undefined;
  private closing = false;
  private readonly lostHandlers: Array<(e: Error) => void> = [];

  private constructor(
    readonly socketPath: string,
    private readonly tag: string | undefined,
  ) {
    super();
  }

  /**
   * Connects to the daemon at `socketPath` (inside `sevkit sim`, $SEVKIT_SIM_SOCKET). `tag` names this
   * client in every request, so that a fault armed for a tag hits only it ($SEVKIT_SIM_TAG).
   */
  static async connect(socketPath: string | undefined, opts: { tag?: string | undefined } = {}): Promise<SimClient> {
    if (!socketPath) throw new SimClientError('ERR_SIM_CLIENT', 'no simulator socket: SEVKIT_SIM_SOCKET is not set (run under `sevkit sim --`)');
    const c = new SimClient(socketPath, opts.tag || undefined);
    await c.open();
    return c;
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(this.socketPath);
      const onError = (e: NodeJS.ErrnoException) => {
        reject(new SimClientError('ERR_SIM_CLIENT', `${this.socketPath}: cannot reach the simulator daemon: ${e.code ?? e.message}`));
      };
      sock.once('error', onError);
      sock.once('connect', () => {
        sock.off('error', onError);
        this.sock = sock;
        sock.on('data', (chunk: Buffer) => this.onData(chunk));
        sock.on('error', (e: NodeJS.ErrnoException) => this.fail(new SimClientError('ERR_SIM_CLIENT', `${this.socketPath}: ${e.code ?? e.message}`)));
        sock.on('close', () => {
          const e = new SimClientError('ERR_SIM_CLIENT', `${this.socketPath}: the simulator daemon closed the connection`);
          this.fail(e);
          if (!this.closing) for (const h of this.lostHandlers.splice(0)) h(e);
        });
        resolve();
      });
    });
  }

  private onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.reader.push(chunk);
    } catch (e) {
      this.fail(e as Error);
      this.sock?.destroy();
      return;
    }
    for (const f of frames) {
      let reply: JsonReply;
      try {
        reply = decodeJson(f) as JsonReply;
      } catch (e) {
        this.fail(e as Error);
        this.sock?.destroy();
        return;
      }
      const p = typeof reply.id === 'number' ? this.pending.get(reply.id) : undefined;
      if (!p) continue;
      this.pending.delete(reply.id as number);
      if (reply.ok) p.resolve(reply.result);
      else {
        const err = reply.error ?? { code: 'ERR_SIM', message: 'unknown simulator error' };
        p.reject(new SimClientError(err.code, err.message, err.fwStatus, err.fwStatusName));
      }
    }
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** One request; resolves with the daemon's result. */
  override request<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (!this.sock || this.closedError) return Promise.reject(this.closedError ?? new SimClientError('ERR_SIM_CLIENT', 'client is closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.sock!.write(frame(encodeJson({ id, op, args, pid: process.pid, ...(this.tag ? { tag: this.tag } : {}) })));
    });
  }

  // ---- control -------------------------------------------------------------

  async status(): Promise<{ simulated: true; state: string; owner: string; api: SimApi; guestCount: number }> {
    return this.request('status');
  }

  async injectFault(spec: FaultSpec): Promise<void> {
    await this.request('injectFault', spec as unknown as Record<string, unknown>);
  }

  async clearFaults(): Promise<void> {
    await this.request('clearFaults');
  }

  /**
   * Calls `fn` once if the daemon goes away (the connection closes without
   * close() from this side): the simulated platform is gone, as if the host
   * rebooted, and what runs on it (the QEMU wrapper) should end too.
   */
  onLost(fn: (e: Error) => void): void {
    this.lostHandlers.push(fn);
  }

  override close(): void {
    this.closing = true;
    this.fail(new SimClientError('ERR_SIM_CLIENT', 'client is closed'));
    this.sock?.end();
    this.sock?.destroy();
    this.sock = undefined;
  }
}
