/**
 * The ONLY module that loads the native addon (`sevkit.node`). Everything else
 * gets it through `getBinding()`, so unit tests can swap in a fake with
 * `setBinding(fake)` and the simulator can run the unchanged real addon.
 *
 * Load order is node-gyp-build's: `SEVKIT_PREBUILD` dir → build/Release →
 * build/Debug → prebuilds/linux-x64 (see addon-anchors.md §1.G). The addon is
 * loaded lazily on first use, so importing sevkit never needs a compiler or
 * /dev/sev.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { SevkitError } from './errors.js';

/** `{ size, offsets }` of one C struct as compiled into the addon (sizeof / offsetof). */
export interface NativeStructLayout {
  size: number;
  offsets: Record<string, number>;
}

/** Numeric constants compiled into the addon (native/include/sev_uapi.h). */
export interface NativeConstants {
  SEV_ISSUE_CMD: number;
  SEV_FW_BLOB_MAX_SIZE: number;
  SEV_CERT_SIZE: number;
  /** `_IO(0xAE, 0x00)` = 0xAE00, the ioctl `kvmApiVersion` issues on /dev/kvm. */
  KVM_GET_API_VERSION: number;
  /** Command ids by C name without the SEV_ prefix (`PLATFORM_STATUS: 1`), plus `SEV_MAX`. */
  commands: Record<string, number>;
  /** open(2) mode each command uses: 'O_RDONLY', 'O_RDWR' or 'O_RDWR|fallback:O_RDONLY'. */
  openMode: Record<string, string>;
  /** Firmware status codes by C name (`SEV_RET_INVALID_LEN: 4`). */
  status: Record<string, number>;
  states: { UNINIT: number; INIT: number; WORKING: number };
  SEV_STATUS_FLAGS_OWNER: number;
  SEV_STATUS_FLAGS_CONFIG_ES: number;
}

/**
 * The addon's JS surface. Every command opens `device` (read-only or
 * read-write, as the kernel requires for that command), issues SEV_ISSUE_CMD on
 * a libuv pool thread, closes it, and resolves with copies of the output.
 *
 * Rejections are `Error`s with Node-style `code` ('ENOENT', 'EACCES', 'ENOTTY',
 * 'EIO', 'EPERM', 'ENOTSUPP' for the kernel's 524, ...), `errno` (negative, as
 * Node's SystemError), `syscall` ('open' | 'ioctl'), `path`, `command` (the SEV
 * command name, or 'KVM_GET_API_VERSION') and, when the kernel reported a firmware failure (EIO),
 * `fwStatus` (number, -1 for NO_FW_CALL) and `fwStatusName` ('SEV_RET_...').
 * Length-protocol violations use EPROTO / EOVERFLOW with a `detail` string.
 * Argument errors throw synchronously (TypeError/RangeError with
 * ERR_INVALID_ARG_TYPE / ERR_INVALID_ARG_VALUE / ERR_OUT_OF_RANGE).
 */
export interface NativeBinding {
  /** SEV_PLATFORM_STATUS → the raw 12-byte `struct sev_user_data_status`. */
  platformStatus(device: string): Promise<Buffer>;
  /** SEV_FACTORY_RESET (O_RDWR). EBUSY while guests run. */
  factoryReset(device: string): Promise<void>;
  /** SEV_PEK_GEN (O_RDWR): new PEK (and PDH); the platform becomes self-owned. */
  pekGen(device: string): Promise<void>;
  /** SEV_PEK_CSR (O_RDWR): length probe then fetch → the PEK CSR (one 0x824-byte SEV cert). */
  pekCsr(device: string): Promise<Buffer>;
  /** SEV_PDH_GEN (O_RDWR): new PDH. */
  pdhGen(device: string): Promise<void>;
  /**
   * SEV_PDH_CERT_EXPORT: length probe then fetch. `pdh` is the PDH cert,
   * `certChain` is PEK‖OCA‖CEK as the firmware returns it. Opens O_RDWR, or
   * O_RDONLY if the node is not writable for us (enough once the platform is INIT).
   */
  pdhCertExport(device: string): Promise<{ pdh: Buffer; certChain: Buffer }>;
  /** SEV_PEK_CERT_IMPORT (O_RDWR): each blob 1..16384 bytes. */
  pekCertImport(device: string, pek: Uint8Array, oca: Uint8Array): Promise<void>;
  /**
   * SEV_GET_ID2 (probe + fetch); when the kernel lacks GET_ID2 (EINVAL), the
   * deprecated SEV_GET_ID. `command` says which one answered.
   */
  getId(device: string): Promise<{ id: Buffer; command: 'GET_ID2' | 'GET_ID' }>;
  /** SNP_PLATFORM_STATUS → the raw 32-byte `struct sev_user_data_snp_status`. */
  snpPlatformStatus(device: string): Promise<Buffer>;
  /** SNP_COMMIT (the driver has no write check, so O_RDONLY). */
  snpCommit(device: string): Promise<void>;
  /** SNP_SET_CONFIG (O_RDWR) with a raw 64-byte `struct sev_user_data_snp_config`. */
  snpSetConfig(device: string, config: Uint8Array): Promise<void>;
  /**
   * KVM_GET_API_VERSION (`_IO(0xAE, 0x00)`) on `device` (normally /dev/kvm): opens it
   * O_RDWR|O_CLOEXEC as QEMU does (again O_RDONLY|O_CLOEXEC on EACCES/EPERM/EROFS, as
   * sevctl's read-only open, since the ioctl needs no write access), issues the ioctl on a
   * pool thread, closes, and resolves with its non-negative return value (12 on every
   * Linux since 2.6.22). Rejects like the SEV commands, with `command:
   * 'KVM_GET_API_VERSION'`: ENOENT/EACCES from 'open', ENOTTY from 'ioctl' for a node that
   * is not KVM (e.g. /dev/null).
   */
  kvmApiVersion(device: string): Promise<number>;
  /**
   * SNP_GET_REPORT on the SNP guest device (normally /dev/sev-guest), opened
   * O_RDWR|O_NONBLOCK|O_NOCTTY and refused unless a character device:
   * `reportData` exactly 64 bytes, `vmpl` 0..3 (else TypeError/RangeError before
   * any I/O). Resolves with the report (report_size bytes, normally 1184).
   * Rejects like the host commands (`command: 'SNP_GET_REPORT'`); a firmware
   * answer gives `fwStatus`/`fwStatusName` (also a non-zero status inside an
   * otherwise successful response), a VMM answer `vmmError`/`vmmErrorName`.
   */
  snpGuestReport(device: string, reportData: Uint8Array, vmpl: number): Promise<Buffer>;
  /**
   * SNP_GET_EXT_REPORT: as snpGuestReport, plus the host's certificate buffer
   * (`certs`, a page multiple up to 16 KiB, untrimmed, all zero when the host
   * has none). Starts with one page; retries once with the size the driver asks for.
   */
  snpGuestExtReport(device: string, reportData: Uint8Array, vmpl: number): Promise<{ report: Buffer; certs: Buffer }>;
  /** SNP_GET_DERIVED_KEY with a raw 32-byte `struct snp_derived_key_req` (vmpl 0..3) → the 32-byte key. */
  snpGuestDerivedKey(device: string, request: Uint8Array): Promise<Buffer>;
  /** Raw x86 CPUID → [eax, ebx, ecx, edx] (unsigned). Synchronous. */
  cpuid(leaf: number, subleaf?: number): [number, number, number, number];
  /** sizeof/offsetof of every vendored struct, keyed by C struct name. */
  readonly layout: Record<string, NativeStructLayout>;
  readonly constants: NativeConstants;
}

/** Raised when the addon cannot be loaded (no prebuild for this platform and no build). */
export class BindingLoadError extends SevkitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_SEVKIT_BINDING', message, options);
  }
}

/**
 * Package root: the nearest directory above this module with a package.json. lib/ (sources via
 * tsx) and dist/ sit one level below it, a bundled CLI entry (dist/cli/sev-status.js) two.
 */
export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  for (let d = from; ; d = path.dirname(d)) {
    if (existsSync(path.join(d, 'package.json'))) return d;
    if (path.dirname(d) === d) return path.resolve(from, '..');
  }
}

let override: NativeBinding | null = null;
let loaded: NativeBinding | null = null;

/**
 * What rebuilds the native parts (addon and simulator shim) where sevkit sits: inside a
 * consumer's node_modules that is `npm rebuild sevkit` (their project has none of our
 * scripts); in a checkout of this repository, `npm run build:gyp`.
 */
export function buildHint(root: string = PACKAGE_ROOT): string {
  if (root.split(path.sep).includes('node_modules')) {
    return `no prebuild fits ${process.platform}-${process.arch}; run \`npm rebuild sevkit\` in your project to build it from source (needs a C++ compiler, make and Python 3)`;
  }
  if (existsSync(path.join(root, 'binding.gyp'))) return 'run `npm run build:gyp` (or `npm run build:native`) to build it';
  return 'reinstall sevkit';
}

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  const gypBuild = require('node-gyp-build') as ((dir: string) => unknown) & { path(dir: string): string };
  try {
    return gypBuild(PACKAGE_ROOT) as NativeBinding;
  } catch (e) {
    const hint = buildHint(PACKAGE_ROOT);
    throw new BindingLoadError(`cannot load the sevkit native addon for ${process.platform}-${process.arch}: ${(e as Error).message.split('\n')[0]}; ${hint}`, {
      cause: e,
    });
  }
}

/** The binding in use: the test override if set, else the real addon (loaded once). */
export function getBinding(): NativeBinding {
  return override ?? getNativeBinding();
}

/** Replace the binding (unit tests, fakes); `null` restores the real addon. */
export function setBinding(fake: NativeBinding | null): void {
  override = fake;
}

/** The real addon regardless of any override (parity tests, benchmarks). */
export function getNativeBinding(): NativeBinding {
  if (!loaded) loaded = load();
  return loaded;
}
