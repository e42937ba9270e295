/** Helpers for driving the simulator model directly, as the shim would. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { SimDaemon } from '../../lib/sim/daemon.js';
import { SimClient } from '../../lib/sim/client.js';
import { SimPlatform, type SimPlatformOptions, type IoctlReply } from '../../lib/sim/platform.js';
import { Cmd, Errno, Ret } from '../../lib/sim/uapi.js';

export { Cmd, Errno, Ret };

const dirs: string[] = [];

export function tmpDir(prefix = 'sevkit-sim-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** A fresh platform on a temp dir (seed 1 unless given: its RSA roots are cached). */
export function freshPlatform(opts: SimPlatformOptions = {}): SimPlatform {
  return SimPlatform.open(tmpDir(), { seed: '1', ...opts });
}

export interface Issue {
  writable?: boolean;
  struct?: Buffer;
  dataNull?: boolean;
  blobs?: (Buffer | null)[];
}

export function issue(p: SimPlatform, cmd: number, o: Issue = {}): IoctlReply {
  return p.ioctl({ cmd, writable: o.writable ?? true, dataNull: o.dataNull ?? false, struct: o.struct ?? Buffer.alloc(0), blobs: o.blobs ?? [] });
}

/** Fake user addresses: only zero/non-zero matters to the model. */
export const ADDR_A = 0x10000n;
export const ADDR_B = 0x20000n;

export function exportStruct(pdhAddr: bigint, pdhLen: number, chainAddr: bigint, chainLen: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(pdhAddr, 0);
  b.writeUInt32LE(pdhLen, 8);
  b.writeBigUInt64LE(chainAddr, 12);
  b.writeUInt32LE(chainLen, 20);
  return b;
}

export function addrLen(addr: bigint, len: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeBigUInt64LE(addr, 0);
  b.writeUInt32LE(len, 8);
  return b;
}

export function status(p: SimPlatform): { major: number; minor: number; state: number; flags: number; build: number; guests: number } {
  const r = issue(p, Cmd.PLATFORM_STATUS, { writable: false });
  if (r.errno !== 0) throw new Error(`PLATFORM_STATUS failed: errno ${r.errno}`);
  const s = r.struct;
  return { major: s[0]!, minor: s[1]!, state: s[2]!, flags: s.readUInt32LE(3), build: s[7]!, guests: s.readUInt32LE(8) };
}

/** Export through the model with the kernel's two-step protocol. */
export function exportCerts(p: SimPlatform, writable = true): { pdh: Buffer; chain: Buffer } {
  const q = issue(p, Cmd.PDH_CERT_EXPORT, { writable, struct: exportStruct(0n, 0, 0n, 0) });
  if (!(q.errno === Errno.EIO && q.fwError === Ret.INVALID_LEN)) throw new Error(`probe: errno ${q.errno} fw ${q.fwError}`);
  const r = issue(p, Cmd.PDH_CERT_EXPORT, { writable, struct: exportStruct(ADDR_A, q.struct.readUInt32LE(8), ADDR_B, q.struct.readUInt32LE(20)) });
  if (r.errno !== 0) throw new Error(`export: errno ${r.errno} fw ${r.fwError}`);
  return { pdh: r.outs[0]!.data, chain: r.outs[1]!.data };
}

/**
 * A private simulator daemon on a fresh platform for one test file, and SimClients
 * on it; registers the hooks that start it and close everything after the file.
 */
export function privateDaemon(): { daemon(): SimDaemon; client(): Promise<SimClient> } {
  let daemon: SimDaemon | undefined;
  const clients: SimClient[] = [];
  beforeAll(async () => {
    daemon = await SimDaemon.start('', { platform: freshPlatform() });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await daemon?.close();
    cleanupDirs();
  });
  return {
    daemon: () => {
      if (!daemon) throw new Error('daemon not started yet (use it inside a test)');
      return daemon;
    },
    client: async () => {
      const c = await SimClient.connect(daemon!.socketPath);
      clients.push(c);
      return c;
    },
  };
}
