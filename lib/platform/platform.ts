/**
 * SevPlatform: typed access to one SEV platform device (/dev/sev, or the
 * simulator's, which the addon cannot tell apart).
 *
 * All commands for one device path go through a per-path promise queue: the
 * kernel serialises SEV commands on one mutex anyway, and queueing in JS keeps
 * concurrent callers from parking every libuv pool thread (shared with fs, dns
 * and crypto) in a blocked ioctl.
 */
import { getBinding, type NativeBinding } from '../binding.js';
import { SEV_FW_BLOB_MAX_SIZE, SEV_PLATFORM_CERT_SIZE } from './constants.js';
import { SevError, toSevError } from './errors.js';
import { decodePlatformStatus, decodeSnpPlatformStatus, encodeSnpConfig, type PlatformStatus, type SnpConfig, type SnpPlatformStatus } from './layout.js';

/** The SEV device node used when neither the option nor SEVKIT_DEVICE names one. */
export const DEFAULT_DEVICE = '/dev/sev';

/** Options of SevPlatform: the device path and a binding to use instead of the process-wide addon. */
export interface SevPlatformOptions {
  /** Device path; default /dev/sev (the CLI passes $SEVKIT_DEVICE). */
  device?: string;
  /** Binding to use instead of the process-wide one (tests). */
  binding?: NativeBinding;
}

/** The platform's certificates as raw 0x824-byte SEV certs. */
export interface PlatformCerts {
  pdh: Buffer;
  pek: Buffer;
  oca: Buffer;
  cek: Buffer;
}

/** The chip id and the ioctl that returned it. */
export interface ChipId {
  id: Buffer;
  /** Which ioctl answered: GET_ID2, or the deprecated GET_ID on old kernels. */
  command: 'GET_ID2' | 'GET_ID';
}

/** Tail of the queue per device path (shared by every SevPlatform on that path). */
const queues = new Map<string, Promise<unknown>>();

function enqueue<T>(key: string, job: () => Promise<T>): Promise<T> {
  const prev = queues.get(key) ?? Promise.resolve();
  const run = prev.then(job, job);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  queues.set(key, tail);
  // Drop the entry once idle so a long-lived process does not accumulate paths.
  void tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key);
  });
  return run;
}

/** Upper-case hex of a chip id, as sevctl prints it and AMD KDS expects it. */
export function chipIdHex(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.length).toString('hex').toUpperCase();
}

/** The device path: `device` when given and non-empty, else /dev/sev (the CLI passes $SEVKIT_DEVICE). */
export function resolveDevice(device?: string): string {
  return device !== undefined && device !== '' ? device : DEFAULT_DEVICE;
}

function checkBlob(name: string, b: unknown): Uint8Array {
  if (!(b instanceof Uint8Array)) {
    throw new SevError({ code: 'ERR_INVALID_ARG_TYPE', message: `${name} certificate must be a Buffer` });
  }
  if (b.length === 0 || b.length > SEV_FW_BLOB_MAX_SIZE) {
    throw new SevError({
      code: 'ERR_OUT_OF_RANGE',
      message: `${name} certificate must be 1..${SEV_FW_BLOB_MAX_SIZE} bytes, got ${b.length}`,
    });
  }
  return b;
}

/**
 * The /dev/sev platform commands (status, certificate export, PEK/PDH management, chip id, SNP status/config)
 * through the native addon, serialised per device path; every failure is a SevError.
 */
export class SevPlatform {
  readonly device: string;
  readonly #binding: NativeBinding | undefined;

  constructor(options: SevPlatformOptions = {}) {
    this.device = resolveDevice(options.device);
    this.#binding = options.binding;
  }

  /** Run one command through the device's queue, mapping addon errors to SevError. */
  #run<T>(fn: (b: NativeBinding, device: string) => Promise<T>): Promise<T> {
    const device = this.device;
    return enqueue(device, async () => {
      const b = this.#binding ?? getBinding();
      try {
        return await fn(b, device);
      } catch (e) {
        throw toSevError(e, device);
      }
    });
  }

  /** PLATFORM_STATUS, decoded. */
  status(): Promise<PlatformStatus> {
    return this.#run(async (b, d) => decodePlatformStatus(await b.platformStatus(d)));
  }

  /** PLATFORM_STATUS as the raw 12-byte struct. */
  statusRaw(): Promise<Buffer> {
    return this.#run((b, d) => b.platformStatus(d));
  }

  /**
   * PDH_CERT_EXPORT, split into the four certs. The firmware's chain is
   * PEK‖OCA‖CEK; any other size is refused rather than guessed at.
   */
  exportCerts(): Promise<PlatformCerts> {
    return this.#run(async (b, d) => {
      const { pdh, certChain } = await b.pdhCertExport(d);
      const n = SEV_PLATFORM_CERT_SIZE;
      if (pdh.length !== n || certChain.length !== 3 * n) {
        throw new SevError({
          code: 'EPROTO',
          path: d,
          command: 'PDH_CERT_EXPORT',
          message: `${d}: PDH_CERT_EXPORT returned a ${pdh.length}-byte PDH and a ${certChain.length}-byte chain, expected ${n} and ${3 * n}`,
        });
      }
      return {
        pdh: Buffer.from(pdh),
        pek: Buffer.from(certChain.subarray(0, n)),
        oca: Buffer.from(certChain.subarray(n, 2 * n)),
        cek: Buffer.from(certChain.subarray(2 * n, 3 * n)),
      };
    });
  }

  /** PEK_GEN: new PEK and PDH; the platform becomes self-owned. */
  pekGen(): Promise<void> {
    return this.#run((b, d) => b.pekGen(d));
  }

  /** PDH_GEN: rotate the PDH. */
  pdhGen(): Promise<void> {
    return this.#run((b, d) => b.pdhGen(d));
  }

  /** PEK_CSR: the PEK certificate signing request (one SEV cert). */
  pekCsr(): Promise<Buffer> {
    return this.#run((b, d) => b.pekCsr(d));
  }

  /** PEK_CERT_IMPORT: take ownership with an OCA-signed PEK and the OCA cert. */
  async pekCertImport(pek: Uint8Array, oca: Uint8Array): Promise<void> {
    // Validated before queueing, so a bad argument never waits behind other commands.
    const p = checkBlob('PEK', pek);
    const o = checkBlob('OCA', oca);
    return this.#run((b, d) => b.pekCertImport(d, p, o));
  }

  /** FACTORY_RESET: erase PEK/PDH/OCA state (EBUSY while guests run). */
  factoryReset(): Promise<void> {
    return this.#run((b, d) => b.factoryReset(d));
  }

  /** The chip id (GET_ID2, or GET_ID on old kernels). */
  async getId(): Promise<Buffer> {
    return (await this.getIdInfo()).id;
  }

  /** The chip id plus which command produced it. */
  getIdInfo(): Promise<ChipId> {
    return this.#run((b, d) => b.getId(d));
  }

  /** SNP_PLATFORM_STATUS, decoded. */
  snpPlatformStatus(): Promise<SnpPlatformStatus> {
    return this.#run(async (b, d) => decodeSnpPlatformStatus(await b.snpPlatformStatus(d)));
  }

  /** SNP_COMMIT: commit the current firmware (blocks rollback). */
  snpCommit(): Promise<void> {
    return this.#run((b, d) => b.snpCommit(d));
  }

  /** SNP_SET_CONFIG: reported TCB and the chip-id/chip-key masks. */
  async snpSetConfig(config: SnpConfig): Promise<void> {
    const raw = encodeSnpConfig(config);
    return this.#run((b, d) => b.snpSetConfig(d, raw));
  }
}

/** Raw CPUID from the addon → [eax, ebx, ecx, edx]. */
export function cpuid(leaf: number, subleaf = 0, binding?: NativeBinding): [number, number, number, number] {
  return (binding ?? getBinding()).cpuid(leaf, subleaf);
}
