/**
 * An in-memory NativeBinding for unit tests: it keeps a tiny platform state,
 * rejects with the same error shape as the addon, and records concurrency so
 * the per-device queue can be checked.
 */
import type { NativeBinding } from '../../lib/binding.js';
import { SEV_STRUCTS, encodePlatformStatus } from '../../lib/platform/layout.js';
import { SevCmd, SevRet } from '../../lib/platform/constants.js';

export interface NativeLikeError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path: string;
  command?: string;
  fwStatus?: number;
  fwStatusName?: string;
}

const ERRNO: Record<string, number> = { ENOENT: 2, EIO: 5, EACCES: 13, EBUSY: 16, EINVAL: 22, ENOTTY: 25, EPERM: 1, ENOTSUPP: 524 };

/** Build an error exactly like the addon's rejection. */
export function nativeError(code: string, syscall: 'open' | 'ioctl', path: string, command?: string, fwStatus?: number): NativeLikeError {
  const e = new Error(`${syscall} ${path}: ${code}`) as NativeLikeError;
  e.code = code;
  e.errno = -(ERRNO[code] ?? 1000);
  e.syscall = syscall;
  e.path = path;
  if (command) e.command = command;
  if (fwStatus !== undefined) e.fwStatus = fwStatus;
  return e;
}

export function fakeCert(tag: number): Buffer {
  const b = Buffer.alloc(0x824, tag);
  b.writeUInt32LE(1, 0); // version
  return b;
}

export class FakeBinding implements NativeBinding {
  state: 'UNINIT' | 'INIT' | 'WORKING' = 'INIT';
  owner: 'self' | 'external' = 'self';
  pdhTag = 0x10;
  delayMs = 0;
  inFlight = 0;
  maxInFlight = 0;
  calls: string[] = [];
  /** When set, the next command on any path rejects with it. */
  failNext: NativeLikeError | null = null;
  chainLength = 3 * 0x824;
  id = Buffer.from('00112233445566778899aabbccddeeff'.repeat(4), 'hex');

  readonly layout = SEV_STRUCTS as unknown as NativeBinding['layout'];
  readonly constants = {
    SEV_ISSUE_CMD: 0xc0105300,
    SEV_FW_BLOB_MAX_SIZE: 0x4000,
    SEV_CERT_SIZE: 0x824,
    KVM_GET_API_VERSION: 0xae00,
    commands: Object.fromEntries(Object.entries(SevCmd).map(([k, v]) => [k.replace(/^SEV_(?!MAX)/, ''), v])),
    openMode: {},
    status: Object.fromEntries(Object.entries(SevRet)),
    states: { UNINIT: 0, INIT: 1, WORKING: 2 },
    SEV_STATUS_FLAGS_OWNER: 1,
    SEV_STATUS_FLAGS_CONFIG_ES: 0x100,
  };

  private async op<T>(name: string, path: string, fn: () => T): Promise<T> {
    this.calls.push(`${name}:${path}`);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.failNext) {
        const e = this.failNext;
        this.failNext = null;
        throw e;
      }
      return fn();
    } finally {
      this.inFlight--;
    }
  }

  platformStatus(d: string) {
    return this.op('platformStatus', d, () =>
      encodePlatformStatus({ apiMajor: 1, apiMinor: 55, build: 21, state: this.state, owner: this.owner, esEnabled: true, guestCount: 0 }),
    );
  }
  factoryReset(d: string) {
    return this.op('factoryReset', d, () => {
      if (this.state === 'WORKING') throw nativeError('EBUSY', 'ioctl', d, 'FACTORY_RESET');
      this.owner = 'self';
      this.pdhTag++;
    });
  }
  pekGen(d: string) {
    return this.op('pekGen', d, () => {
      this.owner = 'self';
      this.pdhTag++;
    });
  }
  pekCsr(d: string) {
    return this.op('pekCsr', d, () => fakeCert(0x20));
  }
  pdhGen(d: string) {
    return this.op('pdhGen', d, () => {
      this.pdhTag++;
    });
  }
  pdhCertExport(d: string) {
    return this.op('pdhCertExport', d, () => ({
      pdh: fakeCert(this.pdhTag),
      certChain: Buffer.concat([fakeCert(0x20), fakeCert(0x30), fakeCert(0x40)]).subarray(0, this.chainLength),
    }));
  }
  pekCertImport(d: string, pek: Uint8Array, oca: Uint8Array) {
    return this.op('pekCertImport', d, () => {
      if (pek.length !== 0x824 || oca.length !== 0x824) throw nativeError('EIO', 'ioctl', d, 'PEK_CERT_IMPORT', SevRet.SEV_RET_INVALID_CERTIFICATE);
      this.owner = 'external';
    });
  }
  getId(d: string) {
    return this.op('getId', d, () => ({ id: Buffer.from(this.id), command: 'GET_ID2' as const }));
  }
  snpPlatformStatus(d: string) {
    return this.op('snpPlatformStatus', d, () => {
      const b = Buffer.alloc(SEV_STRUCTS.sev_user_data_snp_status.size);
      b[0] = 1;
      b[1] = 55;
      b[2] = 1;
      b[3] = 1;
      b.writeUInt32LE(21, 4);
      b.writeUInt32LE(0b101, 8);
      b.writeBigUInt64LE(0x1122334455667788n, 16);
      b.writeBigUInt64LE(0x0102030405060708n, 24);
      return b;
    });
  }
  snpCommit(d: string) {
    return this.op('snpCommit', d, () => undefined);
  }
  lastSnpConfig: Buffer | null = null;
  snpSetConfig(d: string, c: Uint8Array) {
    return this.op('snpSetConfig', d, () => {
      this.lastSnpConfig = Buffer.from(c);
    });
  }
  kvmApiVersion(d: string) {
    return this.op('kvmApiVersion', d, () => 12);
  }
  // The SEV host fake has no SNP guest device: like a host without /dev/sev-guest.
  snpGuestReport(d: string): Promise<Buffer> {
    return this.op('snpGuestReport', d, () => {
      throw nativeError('ENOENT', 'open', d);
    });
  }
  snpGuestExtReport(d: string): Promise<{ report: Buffer; certs: Buffer }> {
    return this.op('snpGuestExtReport', d, () => {
      throw nativeError('ENOENT', 'open', d);
    });
  }
  snpGuestDerivedKey(d: string): Promise<Buffer> {
    return this.op('snpGuestDerivedKey', d, () => {
      throw nativeError('ENOENT', 'open', d);
    });
  }
  cpuid(leaf: number, subleaf = 0): [number, number, number, number] {
    return [leaf, subleaf, 0, 0];
  }
}
