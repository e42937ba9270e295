/**
 * Wire protocol between the LD_PRELOAD shim (native/sim/sev_preload.c) / SimClient
 * and the simulator daemon: length-prefixed frames (u32 LE length + body).
 * Body layouts are documented at the top of sev_preload.c; the first byte is
 * the message type.
 */
import { SevkitError } from '../errors.js';
import type { IoctlReply, IoctlRequest } from './platform.js';

export const MSG_OPEN = 1;
export const MSG_IOCTL = 2;
/** JSON request from SimClient (guest launch commands, control). */
export const MSG_JSON = 3;

export const MAX_FRAME = 1 << 20;
/** JSON messages carry guest memory images (OVMF); allow more. */
export const MAX_JSON_FRAME = 256 << 20;

export class SimProtocolError extends SevkitError {
  constructor(message: string) {
    super('ERR_SIM_PROTOCOL', message);
  }
}

/**
 * Splits a byte stream into frames; throws on an oversized frame. Chunks are
 * kept as they arrive and joined once per complete frame: joining on every
 * chunk would copy a multi-MiB guest image over and over (quadratic).
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private maxFrame = MAX_JSON_FRAME) {}

  /** Lower the limit once a connection turns out to carry only small frames (a device fd). */
  setMaxFrame(n: number): void {
    this.maxFrame = n;
  }

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.size += chunk.length;
    const frames: Buffer[] = [];
    while (this.size >= 4) {
      const head = this.chunks[0]!.length >= 4 ? this.chunks[0]! : this.joined();
      const len = head.readUInt32LE(0);
      if (len > this.maxFrame) throw new SimProtocolError(`frame of ${len} bytes exceeds the ${this.maxFrame}-byte limit`);
      if (this.size < 4 + len) break;
      const buf = this.joined();
      frames.push(buf.subarray(4, 4 + len));
      const rest = buf.subarray(4 + len);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.size = rest.length;
    }
    return frames;
  }

  /** The buffered bytes as one Buffer (copied only when more than one chunk is held). */
  private joined(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0]!;
  }
}

export function frame(body: Buffer): Buffer {
  const hdr = Buffer.alloc(4);
  hdr.writeUInt32LE(body.length);
  return Buffer.concat([hdr, body]);
}

export interface OpenRequest {
  accmode: number;
  path: string;
  /** pid of the opening process (aims injected faults) */
  pid: number;
  /** $SEVKIT_SIM_TAG of the opening process (aims injected faults), if set */
  tag?: string;
  /** The SNP guest the opener belongs to ($SEVKIT_SIM_GUEST, or the `<vm>` of `/dev/sev-guest/<vm>`), if any */
  guest?: string;
}

/** Longest guest name an OPEN frame may carry (the simulator's VM-name limit). */
export const OPEN_GUEST_MAX = 128;

/**
 * Decodes an OPEN request. The guest name is an optional trailer (`u16 guest_len, guest`, 1..128
 * bytes) after the tag, so a shim built before it still opens. Throws SimProtocolError.
 */
export function decodeOpen(body: Buffer): OpenRequest {
  if (body.length < 4 || body[0] !== MSG_OPEN) throw new SimProtocolError('malformed OPEN request');
  const len = body.readUInt16LE(2);
  if (body.length < 4 + len + 6) throw new SimProtocolError('OPEN request too short');
  const pid = body.readUInt32LE(4 + len);
  const tagLen = body.readUInt16LE(8 + len);
  const tagEnd = 10 + len + tagLen;
  if (body.length < tagEnd) throw new SimProtocolError('OPEN request length mismatch');
  const req: OpenRequest = { accmode: body[1]! & 3, path: body.subarray(4, 4 + len).toString('utf8'), pid };
  if (tagLen > 0) req.tag = body.subarray(10 + len, tagEnd).toString('utf8');
  if (body.length === tagEnd) return req;
  if (body.length < tagEnd + 2) throw new SimProtocolError('OPEN request length mismatch');
  const guestLen = body.readUInt16LE(tagEnd);
  if (guestLen === 0 || guestLen > OPEN_GUEST_MAX) throw new SimProtocolError(`OPEN guest name must be 1..${OPEN_GUEST_MAX} bytes`);
  if (body.length !== tagEnd + 2 + guestLen) throw new SimProtocolError('OPEN request length mismatch');
  req.guest = body.subarray(tagEnd + 2).toString('utf8');
  return req;
}

export function encodeOpenReply(errno: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(errno);
  return b;
}

/** Decodes an IOCTL request; every length is checked against the body. */
export function decodeIoctl(body: Buffer): IoctlRequest {
  let off = 0;
  const need = (n: number) => {
    if (body.length - off < n) throw new SimProtocolError('truncated IOCTL request');
  };
  need(12);
  if (body[0] !== MSG_IOCTL) throw new SimProtocolError('not an IOCTL request');
  const writable = body[1] === 1;
  const dataNull = body[2] === 1;
  const cmd = body.readUInt32LE(4);
  const structLen = body.readUInt32LE(8);
  off = 12;
  if (structLen > 128) throw new SimProtocolError('IOCTL struct too large');
  need(structLen);
  const struct = Buffer.from(body.subarray(off, off + structLen));
  off += structLen;
  need(4);
  const nblobs = body.readUInt32LE(off);
  off += 4;
  if (nblobs > 2) throw new SimProtocolError('too many IOCTL blobs');
  const blobs: (Buffer | null | 'fault')[] = [];
  for (let i = 0; i < nblobs; i++) {
    need(5);
    const present = body[off]!;
    const len = body.readUInt32LE(off + 1);
    off += 5;
    need(len);
    // 1: copied; 2: the caller's memory was unreadable (EFAULT); else absent (EINVAL).
    blobs.push(present === 1 ? Buffer.from(body.subarray(off, off + len)) : present === 2 ? 'fault' : null);
    off += len;
  }
  if (off !== body.length) throw new SimProtocolError('trailing bytes in IOCTL request');
  return { cmd, writable, dataNull, struct, blobs };
}

export function encodeIoctlReply(r: IoctlReply): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(16);
  head.writeInt32LE(r.errno, 0);
  head[4] = r.errorSet ? 1 : 0;
  head.writeUInt32LE(r.fwError >>> 0, 8);
  head.writeUInt32LE(r.struct.length, 12);
  parts.push(head, r.struct);
  const n = Buffer.alloc(4);
  n.writeUInt32LE(r.outs.length);
  parts.push(n);
  for (const o of r.outs) {
    const h = Buffer.alloc(12);
    h.writeUInt32LE(o.addrOff, 0);
    h.writeUInt32LE(o.lenOff, 4);
    h.writeUInt32LE(o.data.length, 8);
    parts.push(h, o.data);
  }
  return Buffer.concat(parts);
}

/** JSON messages: type byte 3, then UTF-8 JSON. Binary fields travel as base64 strings. */
export function encodeJson(value: unknown): Buffer {
  return Buffer.concat([Buffer.from([MSG_JSON]), Buffer.from(JSON.stringify(value), 'utf8')]);
}

export function decodeJson(body: Buffer): unknown {
  if (body[0] !== MSG_JSON) throw new SimProtocolError('not a JSON message');
  try {
    return JSON.parse(body.subarray(1).toString('utf8'));
  } catch {
    throw new SimProtocolError('malformed JSON message');
  }
}
