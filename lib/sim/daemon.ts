/**
 * The simulator daemon: a UNIX-socket server in front of one SimPlatform.
 * Device connections (from the LD_PRELOAD shim) start with an OPEN frame and
 * then carry IOCTL frames; SimClient connections carry JSON frames.
 * Requests are handled one at a time on the event loop, which serializes them
 * the way the kernel's sev_cmd_mutex does.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SevkitError } from '../errors.js';
import { SimPlatform, type SimPlatformOptions } from './platform.js';
import {
  FrameReader,
  MAX_FRAME,
  MSG_IOCTL,
  MSG_JSON,
  MSG_OPEN,
  SimProtocolError,
  decodeIoctl,
  decodeJson,
  decodeOpen,
  encodeIoctlReply,
  encodeJson,
  encodeOpenReply,
  frame,
} from './protocol.js';
import { Errno } from './uapi.js';
import { handleJson } from './json-api.js';
import { decommission, type GuestContext } from './guests.js';
import { SimSnpGuest } from './snp/guest.js';
import { SimSnpGuestDriver } from './snp/driver.js';
import { MSG_GUEST_IOCTL, decodeGuestIoctl, encodeGuestReply, isGuestOpen } from './snp/protocol.js';
import { readSnpLaunchRecord, SimGuestUnknownError } from './snp/launch-link.js';

/** SimPlatformOptions plus the daemon's UNIX socket path and an existing platform to serve. */
export interface SimDaemonOptions extends SimPlatformOptions {
  /** Socket path; default `<state>/sev.sock`, or a temp path when that is too long for AF_UNIX. */
  socketPath?: string;
  /** An existing platform to serve (in-process tests); otherwise opened from stateDir. */
  platform?: SimPlatform;
}

const SUN_PATH_MAX = 107;

function chooseSocketPath(stateDir: string): string {
  const inState = path.join(stateDir, 'sev.sock');
  if (Buffer.byteLength(inState) <= SUN_PATH_MAX) return inState;
  return path.join(os.tmpdir(), `sevkit-sim-${process.pid}-${crypto.randomBytes(4).toString('hex')}.sock`);
}

/** True when something accepts connections on the UNIX socket. */
export function socketIsLive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.createConnection(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/**
 * Serves one SimPlatform on a UNIX socket to the LD_PRELOAD shim and the simulator's QEMU wrapper; start()
 * refuses a state dir another live daemon serves.
 */
export class SimDaemon {
  readonly platform: SimPlatform;
  readonly socketPath: string;
  private server: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  /** Requests served, by kind (for tests and benchmarks). */
  readonly counters = { opens: 0, ioctls: 0, json: 0 };
  private snpDriver: SimSnpGuestDriver | undefined;

  /** The simulated SNP guest device (/dev/sev-guest) this daemon answers; made on first use. */
  get snpGuest(): SimSnpGuestDriver {
    this.snpDriver ??= new SimSnpGuestDriver(new SimSnpGuest(this.platform));
    return this.snpDriver;
  }

  private constructor(platform: SimPlatform, socketPath: string) {
    this.platform = platform;
    this.socketPath = socketPath;
  }

  static async start(stateDir: string, opts: SimDaemonOptions = {}): Promise<SimDaemon> {
    const platform = opts.platform ?? SimPlatform.open(stateDir, opts);
    const socketPath = opts.socketPath ?? chooseSocketPath(platform.stateDir);
    if (Buffer.byteLength(socketPath) > SUN_PATH_MAX) throw new SevkitError('ERR_SIM_SOCKET', `socket path ${socketPath} is longer than ${SUN_PATH_MAX} bytes`);
    // A live socket means another simulator serves this state dir: two models
    // writing one state would diverge, so refuse. A stale one (crashed daemon)
    // would make listen() fail with EADDRINUSE: remove it.
    const st = fs.lstatSync(socketPath, { throwIfNoEntry: false });
    if (st?.isSocket()) {
      if (await socketIsLive(socketPath)) {
        throw new SevkitError('ERR_SIM_BUSY', `state dir ${platform.stateDir} is in use by a running simulator (${socketPath}); use another --state`);
      }
      fs.rmSync(socketPath, { force: true });
    }
    const d = new SimDaemon(platform, socketPath);
    await d.listen();
    return d;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((sock) => this.onConnection(sock));
      server.once('error', reject);
      server.listen(this.socketPath, () => {
        server.off('error', reject);
        try {
          fs.chmodSync(this.socketPath, 0o600);
        } catch {
          // best effort: the state dir is 0700 anyway
        }
        this.server = server;
        resolve();
      });
    });
  }

  private onConnection(sock: net.Socket): void {
    this.conns.add(sock);
    sock.on('close', () => this.conns.delete(sock));
    sock.on('error', () => sock.destroy());
    const reader = new FrameReader();
    let mode: 'new' | 'device' | 'guest' | 'json' = 'new';
    let who: { tag?: string; pid?: number } = {};
    // The SNP guest this guest-device connection belongs to (the opener's SEVKIT_SIM_GUEST or /dev/sev-guest/<vm>).
    let guestName: string | undefined;
    // Guests launched over this connection die with it, as KVM decommissions a closed VM's guest.
    const guestCtx: GuestContext = { handles: new Set() };
    sock.on('close', () => {
      for (const h of guestCtx.handles) decommission(this.platform, h);
      guestCtx.handles.clear();
    });
    sock.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      for (const body of frames) {
        try {
          if (body.length === 0) throw new SimProtocolError('empty frame');
          const type = body[0];
          if (mode === 'new' && type === MSG_OPEN) {
            const req = decodeOpen(body);
            this.counters.opens++;
            who = { pid: req.pid, ...(req.tag !== undefined ? { tag: req.tag } : {}) };
            const guest = isGuestOpen(body);
            // The guest driver has no open-time checks; an open fault still applies.
            let errno = guest ? (this.platform.faults.take('open', 'SEV_GUEST', 'errno', who)?.errno ?? 0) : this.platform.openDevice(req.accmode, who);
            if (guest && errno === 0 && req.guest !== undefined) {
              guestName = req.guest;
              errno = this.guestOpenErrno(req.guest);
            }
            sock.write(frame(encodeOpenReply(errno)));
            if (errno !== 0) {
              sock.end();
              return;
            }
            mode = guest ? 'guest' : 'device';
            // Device requests are small: refuse an oversized one at its header instead of buffering it.
            reader.setMaxFrame(MAX_FRAME);
          } else if (mode === 'device' && type === MSG_IOCTL) {
            if (body.length > MAX_FRAME) throw new SimProtocolError('oversized IOCTL frame');
            const req = decodeIoctl(body);
            if (who.tag !== undefined) req.tag = who.tag;
            if (who.pid !== undefined) req.pid = who.pid;
            this.counters.ioctls++;
            let reply;
            try {
              reply = this.platform.ioctl(req);
            } catch (e) {
              // A model bug must not look like a firmware answer: report EIO without a status.
              process.stderr.write(`sevkit sim: internal error in ${req.cmd}: ${(e as Error).message}\n`);
              reply = { errno: Errno.EIO, errorSet: false, fwError: 0, struct: Buffer.alloc(0), outs: [] };
            }
            sock.write(frame(encodeIoctlReply(reply)));
          } else if (mode === 'guest' && type === MSG_GUEST_IOCTL) {
            const req = decodeGuestIoctl(body);
            if (who.tag !== undefined) req.tag = who.tag;
            if (who.pid !== undefined) req.pid = who.pid;
            if (guestName !== undefined) req.guest = guestName;
            this.counters.ioctls++;
            let reply;
            try {
              reply = this.snpGuest.ioctl(req);
            } catch (e) {
              process.stderr.write(`sevkit sim: internal error in the SNP guest device: ${(e as Error).message}\n`);
              reply = { errno: Errno.EIO, fwError: 0, vmmError: 0, resp: Buffer.alloc(0), certsLenOut: 0, certs: Buffer.alloc(0) };
            }
            sock.write(frame(encodeGuestReply(reply)));
          } else if ((mode === 'new' || mode === 'json') && type === MSG_JSON) {
            mode = 'json';
            this.counters.json++;
            const msg = decodeJson(body);
            const reply = handleJson(this.platform, msg, guestCtx);
            sock.write(frame(encodeJson(reply)));
          } else {
            throw new SimProtocolError(`unexpected message type ${type}`);
          }
        } catch {
          sock.destroy();
          return;
        }
      }
    });
  }

  /**
   * Opening the guest device for a named guest: ENOENT unless the name is a guest name with an SNP
   * launch the wrapper recorded, as if this process's VM had no /dev/sev-guest at all; never a
   * fallback to another launch.
   */
  private guestOpenErrno(vm: string): number {
    try {
      readSnpLaunchRecord(this.platform.stateDir, vm);
      return 0;
    } catch (e) {
      if (!(e instanceof SimGuestUnknownError)) process.stderr.write(`sevkit sim: SNP guest ${JSON.stringify(vm.slice(0, 80))}: ${(e as Error).message}\n`);
      return Errno.ENOENT;
    }
  }

  /** Stops serving: drops every connection and removes the socket. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const c of this.conns) c.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }
}
