/**
 * The Linux sev-guest driver as the simulator plays it (spec §4.1,
 * drivers/virt/coco/sev-guest): argument checks, the extended report's
 * certificate-buffer protocol (EIO + VMM INVALID_LEN + the size needed), the
 * message status inside a successful response, and the VMPCK wipe after a
 * firmware error (every later request ENOTTY). A named guest (SEVKIT_SIM_GUEST)
 * is that VM; otherwise each SEVKIT_SIM_TAG (else each process) stands for one
 * guest, so a wipe in one test leaves the others alone. A named guest is served
 * from its own launch only: once that launch is gone (the VM stopped), its
 * requests fail ENODEV, as on a device that went away.
 */
import { Errno } from '../uapi.js';
import type { Requester } from '../faults.js';
import type { SimSnpGuest } from './guest.js';
import type { GuestIoctlReply, GuestIoctlRequest } from './protocol.js';
import { SimGuestUnknownError } from './launch-link.js';

/** ioctl numbers (_IOWR('S', n, struct snp_guest_request_ioctl)). */
export const GuestIoctl = { SNP_GET_REPORT: 0xc0205300, SNP_GET_DERIVED_KEY: 0xc0205301, SNP_GET_EXT_REPORT: 0xc0205302 } as const;

const REQ_SIZE: Record<number, number> = { [GuestIoctl.SNP_GET_REPORT]: 96, [GuestIoctl.SNP_GET_DERIVED_KEY]: 32, [GuestIoctl.SNP_GET_EXT_REPORT]: 112 };
const NAMES: Record<number, string> = {
  [GuestIoctl.SNP_GET_REPORT]: 'SNP_GET_REPORT',
  [GuestIoctl.SNP_GET_DERIVED_KEY]: 'SNP_GET_DERIVED_KEY',
  [GuestIoctl.SNP_GET_EXT_REPORT]: 'SNP_GET_EXT_REPORT',
};
const RESP_SIZE = 4000;
const REPORT_SIZE = 1184;
const PAGE = 4096;
const CERTS_MAX = 0x4000;
/** exitinfo2 the driver presets (no firmware call) and copies back with its error. */
const NO_FW_CALL = 0xff;
const VMM_INVALID_LEN = 1;
const STATUS_INVALID_PARAM = 0x16;

function reply(errno: number, extra: Partial<GuestIoctlReply> = {}): GuestIoctlReply {
  return { errno, fwError: 0, vmmError: 0, resp: Buffer.alloc(0), certsLenOut: 0, certs: Buffer.alloc(0), ...extra };
}

export class SimSnpGuestDriver {
  /** guests (tag or pid) whose VMPCK the driver wiped */
  private readonly wiped = new Set<string>();

  constructor(readonly guest: SimSnpGuest) {}

  private guestKey(who: Requester, vm: string | undefined): string {
    if (vm !== undefined) return `guest:${vm}`;
    return who.tag !== undefined ? `tag:${who.tag}` : `pid:${who.pid ?? 0}`;
  }

  /** Serve one ioctl; never throws for caller input (a bad config is EIO without a status, as a model bug would be). */
  ioctl(q: GuestIoctlRequest): GuestIoctlReply {
    const size = REQ_SIZE[q.request];
    if (size === undefined) return reply(Errno.ENOTTY);
    if (q.msgVersion === 0) return reply(Errno.EINVAL);
    const who: Requester = { tag: q.tag, pid: q.pid };
    const noCall = { fwError: NO_FW_CALL };
    if (this.wiped.has(this.guestKey(who, q.guest))) return reply(Errno.ENOTTY, noCall);
    if (q.req === null || q.respNull) return reply(Errno.EINVAL, noCall);
    if (q.req === 'fault' || q.req.length !== size) return reply(Errno.EFAULT, noCall);
    const req = q.req;
    const name = NAMES[q.request]!;
    const vm = q.guest;
    let floor: number;
    try {
      floor = this.guest.config(vm).vmplFloor;
    } catch (e) {
      if (e instanceof SimGuestUnknownError) return reply(Errno.ENODEV, noCall);
      throw e;
    }

    let certs: Buffer | undefined;
    if (q.request === GuestIoctl.SNP_GET_EXT_REPORT) {
      const addr = req.readBigUInt64LE(96);
      const len = req.readUInt32LE(104);
      if (addr !== 0n && len !== 0) {
        if (len > CERTS_MAX || len % PAGE !== 0) return reply(Errno.EINVAL, noCall);
        const table = this.guest.certTable();
        const need = Math.ceil(table.length / PAGE) * PAGE;
        // The host says how many pages it needs; the driver passes that on and
        // re-sends as a plain request, so this is no firmware error (no wipe).
        if (need > len) return reply(Errno.EIO, { vmmError: VMM_INVALID_LEN, certsLenOut: need });
        certs = table;
      }
    }

    const errFault = this.guest.platform.faults.take('ioctl', name, 'errno', who);
    if (errFault?.errno !== undefined) return reply(errFault.errno, noCall);
    const fwFault = this.guest.platform.faults.take('ioctl', name, 'fw', who);
    if (fwFault?.fwStatus !== undefined) {
      // "Disabling VMPCK to prevent IV reuse": the guest's channel is gone until reboot.
      this.wiped.add(this.guestKey(who, q.guest));
      return reply(Errno.EIO, { fwError: fwFault.fwStatus });
    }

    if (q.request === GuestIoctl.SNP_GET_DERIVED_KEY) {
      const { status, key } = this.guest.derivedKey(req, vm);
      const resp = Buffer.alloc(64);
      resp.writeUInt32LE(status, 0);
      if (key) {
        key.copy(resp, 32);
        key.fill(0);
      }
      return reply(0, { resp });
    }

    const reportData = req.subarray(0, 64);
    const vmpl = req.readUInt32LE(64);
    const resp = Buffer.alloc(RESP_SIZE);
    if (vmpl > 3 || vmpl < floor || req.subarray(68, 96).some((b) => b !== 0)) {
      resp.writeUInt32LE(STATUS_INVALID_PARAM, 0);
      return reply(0, { resp });
    }
    const report = this.guest.report(Buffer.from(reportData), vmpl, vm);
    resp.writeUInt32LE(0, 0);
    resp.writeUInt32LE(REPORT_SIZE, 4);
    report.copy(resp, 32);
    return reply(0, { resp, ...(certs ? { certs } : {}) });
  }
}
