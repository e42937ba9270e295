/**
 * Wire format of the SNP guest device between the shim and the daemon (layout
 * documented at the top of native/sim/sev_preload.c): an OPEN whose accmode
 * byte has bit 7 set, then GUEST IOCTL frames.
 */
import { SimProtocolError } from '../protocol.js';

/** Message type of a guest-device ioctl. */
export const MSG_GUEST_IOCTL = 4;
/** Bit of the OPEN accmode byte that names the SNP guest device. */
export const OPEN_GUEST_FLAG = 0x80;

/** One guest-device ioctl as the shim read it from the caller. */
export interface GuestIoctlRequest {
  /** snp_guest_request_ioctl.msg_version */
  msgVersion: number;
  /** the ioctl request number (SNP_GET_REPORT 0xC0205300, ...) */
  request: number;
  /** the request struct, null when req_data was NULL, 'fault' when unreadable */
  req: Buffer | null | 'fault';
  /** resp_data was NULL */
  respNull: boolean;
  /** the opener's $SEVKIT_SIM_TAG / pid (aims faults; scopes the VMPCK) */
  tag?: string;
  pid?: number;
  /** the SNP guest the opener named (its launch is the report's), if any */
  guest?: string;
}

/** The daemon's answer; the shim writes it back as the guest driver would. */
export interface GuestIoctlReply {
  errno: number;
  /** exitinfo2 bits 31:0 and 63:32; copied back only when either is non-zero */
  fwError: number;
  vmmError: number;
  /** the response struct (at most 4000 bytes; 64 for a derived key) */
  resp: Buffer;
  /** non-zero: rewrite the ext request's certs_len (the size the host needs) */
  certsLenOut: number;
  /** certificate bytes for the caller's certs buffer (at most its certs_len) */
  certs: Buffer;
}

/** Whether an OPEN frame names the guest device. */
export function isGuestOpen(body: Buffer): boolean {
  return body.length > 1 && (body[1]! & OPEN_GUEST_FLAG) !== 0;
}

/** Decode a GUEST IOCTL frame; every length is checked. Throws SimProtocolError. */
export function decodeGuestIoctl(body: Buffer): GuestIoctlRequest {
  if (body.length < 12 || body[0] !== MSG_GUEST_IOCTL) throw new SimProtocolError('malformed GUEST IOCTL request');
  const reqLen = body.readUInt32LE(8);
  if (reqLen > 128 || body.length !== 12 + reqLen) throw new SimProtocolError('GUEST IOCTL length mismatch');
  const state = body[2];
  const req = state === 1 ? Buffer.from(body.subarray(12)) : state === 2 ? 'fault' : null;
  if (state === 1 && reqLen === 0) throw new SimProtocolError('GUEST IOCTL request struct missing');
  return { msgVersion: body[1]!, request: body.readUInt32LE(4), req, respNull: body[3] === 1 };
}

/** Encode a reply frame body. */
export function encodeGuestReply(r: GuestIoctlReply): Buffer {
  const head = Buffer.alloc(16);
  head.writeInt32LE(r.errno, 0);
  head.writeUInt32LE(r.fwError >>> 0, 4);
  head.writeUInt32LE(r.vmmError >>> 0, 8);
  head.writeUInt32LE(r.resp.length, 12);
  const mid = Buffer.alloc(8);
  mid.writeUInt32LE(r.certsLenOut >>> 0, 0);
  mid.writeUInt32LE(r.certs.length, 4);
  return Buffer.concat([head, r.resp, mid, r.certs]);
}
