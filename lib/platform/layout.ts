/**
 * Byte layouts of the /dev/sev user structs (all packed, little-endian;
 * kernel-qemu.md §1.3) and the decoders/encoders built on them. The offsets
 * here are what the decoders read; test/native checks them against the
 * sizeof/offsetof table compiled into the addon, so TS and C cannot drift.
 */
import { SevError } from './errors.js';
import { SEV_STATUS_FLAGS_CONFIG_ES, SEV_STATUS_FLAGS_OWNER, SnpConfigFlag, SnpStatusFlag } from './constants.js';

/** Size in bytes and field byte offsets of one packed /dev/sev user struct, as in SEV_STRUCTS. */
export interface StructLayout {
  readonly size: number;
  readonly offsets: Readonly<Record<string, number>>;
}

/** Keyed by the kernel's struct name; field names are the C names. */
export const SEV_STRUCTS = {
  sev_issue_cmd: { size: 16, offsets: { cmd: 0, data: 4, error: 12 } },
  sev_user_data_status: {
    size: 12,
    offsets: { api_major: 0, api_minor: 1, state: 2, flags: 3, build: 7, guest_count: 8 },
  },
  sev_user_data_pek_csr: { size: 12, offsets: { address: 0, length: 8 } },
  sev_user_data_pek_cert_import: {
    size: 24,
    offsets: { pek_cert_address: 0, pek_cert_len: 8, oca_cert_address: 12, oca_cert_len: 20 },
  },
  sev_user_data_pdh_cert_export: {
    size: 24,
    offsets: { pdh_cert_address: 0, pdh_cert_len: 8, cert_chain_address: 12, cert_chain_len: 20 },
  },
  sev_user_data_get_id: { size: 128, offsets: { socket1: 0, socket2: 64 } },
  sev_user_data_get_id2: { size: 12, offsets: { address: 0, length: 8 } },
  sev_user_data_snp_status: {
    size: 32,
    offsets: {
      api_major: 0,
      api_minor: 1,
      state: 2,
      rmp_flags: 3, // bit 0 is_rmp_initialized
      build_id: 4,
      flags: 8,
      guest_count: 12,
      current_tcb_version: 16,
      reported_tcb_version: 24,
    },
  },
  sev_user_data_snp_config: { size: 64, offsets: { reported_tcb: 0, flags: 8, rsvd1: 12 } },
  sev_user_data_snp_vlek_load: {
    size: 16,
    offsets: { len: 0, vlek_wrapped_version: 4, rsvd: 5, vlek_wrapped_address: 8 },
  },
} as const satisfies Record<string, StructLayout>;

/** The SEV platform state from PLATFORM_STATUS (firmware state codes 0, 1, 2). */
export type PlatformState = 'UNINIT' | 'INIT' | 'WORKING';
const STATES: readonly PlatformState[] = ['UNINIT', 'INIT', 'WORKING'];

/** Decoded `struct sev_user_data_status` (PLATFORM_STATUS). */
export interface PlatformStatus {
  /** api_major */
  apiMajor: number;
  /** api_minor */
  apiMinor: number;
  /** build: firmware build id */
  build: number;
  /** state: 0 UNINIT, 1 INIT, 2 WORKING */
  state: PlatformState;
  /** flags bit 0 (SEV_STATUS_FLAGS_OWNER): 0 self-owned, 1 externally owned */
  owner: 'self' | 'external';
  /** flags bit 8 (SEV_STATUS_FLAGS_CONFIG_ES): firmware initialised with SEV-ES */
  esEnabled: boolean;
  /** guest_count */
  guestCount: number;
  /** flags: the raw u32 (bytes 3..6), for bits this decoder does not name */
  flags: number;
}

function expectSize(buf: Uint8Array, struct: keyof typeof SEV_STRUCTS): Buffer {
  const size = SEV_STRUCTS[struct].size;
  if (buf.length !== size) {
    throw new SevError({
      code: 'EPROTO',
      message: `struct ${struct} must be ${size} bytes, got ${buf.length}`,
    });
  }
  return Buffer.from(buf.buffer, buf.byteOffset, buf.length);
}

/**
 * Decodes the 12-byte `struct sev_user_data_status`; throws SevError (code EPROTO) on a wrong size or an unknown
 * platform state.
 */
export function decodePlatformStatus(raw: Uint8Array): PlatformStatus {
  const b = expectSize(raw, 'sev_user_data_status');
  const o = SEV_STRUCTS.sev_user_data_status.offsets;
  const stateCode = b.readUInt8(o.state);
  const state = STATES[stateCode];
  if (state === undefined) {
    // Refuse rather than guess: an unknown state means a firmware/kernel we do not understand.
    throw new SevError({ code: 'EPROTO', message: `PLATFORM_STATUS reported unknown platform state ${stateCode}` });
  }
  const flags = b.readUInt32LE(o.flags);
  return {
    apiMajor: b.readUInt8(o.api_major),
    apiMinor: b.readUInt8(o.api_minor),
    build: b.readUInt8(o.build),
    state,
    owner: flags & SEV_STATUS_FLAGS_OWNER ? 'external' : 'self',
    esEnabled: (flags & SEV_STATUS_FLAGS_CONFIG_ES) !== 0,
    guestCount: b.readUInt32LE(o.guest_count),
    flags,
  };
}

/** Inverse of decodePlatformStatus (fakes, the simulator's tests). */
export function encodePlatformStatus(s: Omit<PlatformStatus, 'flags'> & { flags?: number }): Buffer {
  const o = SEV_STRUCTS.sev_user_data_status.offsets;
  const b = Buffer.alloc(SEV_STRUCTS.sev_user_data_status.size);
  b.writeUInt8(s.apiMajor, o.api_major);
  b.writeUInt8(s.apiMinor, o.api_minor);
  b.writeUInt8(STATES.indexOf(s.state), o.state);
  let flags = (s.flags ?? 0) & ~(SEV_STATUS_FLAGS_OWNER | SEV_STATUS_FLAGS_CONFIG_ES);
  if (s.owner === 'external') flags |= SEV_STATUS_FLAGS_OWNER;
  if (s.esEnabled) flags |= SEV_STATUS_FLAGS_CONFIG_ES;
  b.writeUInt32LE(flags >>> 0, o.flags);
  b.writeUInt8(s.build, o.build);
  b.writeUInt32LE(s.guestCount, o.guest_count);
  return b;
}

/** Decoded `struct sev_user_data_snp_status` (SNP_PLATFORM_STATUS). */
export interface SnpPlatformStatus {
  /** api_major */
  apiMajor: number;
  /** api_minor */
  apiMinor: number;
  /** state: SNP 0 UNINIT, 1 INIT */
  state: 'UNINIT' | 'INIT';
  /** is_rmp_initialized (byte 3 bit 0) */
  rmpInitialized: boolean;
  /** build_id */
  buildId: number;
  /** mask_chip_id (flags bit 0) */
  maskChipId: boolean;
  /** mask_chip_key (flags bit 1) */
  maskChipKey: boolean;
  /** vlek_en (flags bit 2) */
  vlekEnabled: boolean;
  /** feature_info (flags bit 3) */
  featureInfo: boolean;
  /** rapl_dis (flags bit 4) */
  raplDisabled: boolean;
  /** ciphertext_hiding_cap (flags bit 5) */
  ciphertextHidingCap: boolean;
  /** ciphertext_hiding_en (flags bit 6) */
  ciphertextHidingEnabled: boolean;
  /** guest_count */
  guestCount: number;
  /** current_tcb_version */
  currentTcbVersion: bigint;
  /** reported_tcb_version */
  reportedTcbVersion: bigint;
  /** flags: the raw u32 */
  flags: number;
}

/**
 * Decodes the 32-byte `struct sev_user_data_snp_status`; throws SevError (code EPROTO) on a wrong size or an
 * unknown SNP state.
 */
export function decodeSnpPlatformStatus(raw: Uint8Array): SnpPlatformStatus {
  const b = expectSize(raw, 'sev_user_data_snp_status');
  const o = SEV_STRUCTS.sev_user_data_snp_status.offsets;
  const stateCode = b.readUInt8(o.state);
  if (stateCode > 1) {
    throw new SevError({ code: 'EPROTO', message: `SNP_PLATFORM_STATUS reported unknown SNP state ${stateCode}` });
  }
  const flags = b.readUInt32LE(o.flags);
  return {
    apiMajor: b.readUInt8(o.api_major),
    apiMinor: b.readUInt8(o.api_minor),
    state: stateCode === 1 ? 'INIT' : 'UNINIT',
    rmpInitialized: (b.readUInt8(o.rmp_flags) & 1) !== 0,
    buildId: b.readUInt32LE(o.build_id),
    maskChipId: (flags & SnpStatusFlag.mask_chip_id) !== 0,
    maskChipKey: (flags & SnpStatusFlag.mask_chip_key) !== 0,
    vlekEnabled: (flags & SnpStatusFlag.vlek_en) !== 0,
    featureInfo: (flags & SnpStatusFlag.feature_info) !== 0,
    raplDisabled: (flags & SnpStatusFlag.rapl_dis) !== 0,
    ciphertextHidingCap: (flags & SnpStatusFlag.ciphertext_hiding_cap) !== 0,
    ciphertextHidingEnabled: (flags & SnpStatusFlag.ciphertext_hiding_en) !== 0,
    guestCount: b.readUInt32LE(o.guest_count),
    currentTcbVersion: b.readBigUInt64LE(o.current_tcb_version),
    reportedTcbVersion: b.readBigUInt64LE(o.reported_tcb_version),
    flags,
  };
}

/** Input of SNP_SET_CONFIG (`struct sev_user_data_snp_config`). */
export interface SnpConfig {
  /** reported_tcb: the TCB version the firmware reports (u64) */
  reportedTcb: bigint;
  /** mask_chip_id (flags bit 0) */
  maskChipId?: boolean;
  /** mask_chip_key (flags bit 1) */
  maskChipKey?: boolean;
}

/**
 * Encodes SNP_SET_CONFIG's 64-byte `struct sev_user_data_snp_config`; throws SevError (ERR_OUT_OF_RANGE) unless
 * reportedTcb is a u64 bigint.
 */
export function encodeSnpConfig(c: SnpConfig): Buffer {
  if (typeof c.reportedTcb !== 'bigint' || c.reportedTcb < 0n || c.reportedTcb > 0xffff_ffff_ffff_ffffn) {
    throw new SevError({ code: 'ERR_OUT_OF_RANGE', message: 'SNP config reportedTcb must be a u64 bigint' });
  }
  const o = SEV_STRUCTS.sev_user_data_snp_config.offsets;
  const b = Buffer.alloc(SEV_STRUCTS.sev_user_data_snp_config.size); // rsvd1 stays zero
  b.writeBigUInt64LE(c.reportedTcb, o.reported_tcb);
  let flags = 0;
  if (c.maskChipId) flags |= SnpConfigFlag.mask_chip_id;
  if (c.maskChipKey) flags |= SnpConfigFlag.mask_chip_key;
  b.writeUInt32LE(flags, o.flags);
  return b;
}
