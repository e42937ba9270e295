/**
 * `query-sev` read into typed, range-checked values. QEMU 7.2 answers a flat QmpSevInfo;
 * QEMU >= 9.1 a union tagged by `sev-type` ("sev" with policy/handle, "sev-snp" with
 * snp-policy; kernel-qemu.md §3.2, snp-launch.md §3.2). QEMU's answer is host-reported,
 * so every field is checked before anything uses it.
 */
import { QmpProtocolError } from './errors.js';
import type { QmpSevInfo, SevState } from './types.js';

const SEV_STATES: readonly string[] = ['uninit', 'launch-update', 'launch-secret', 'running', 'send-update', 'receive-update'];

/** Fields both shapes carry. */
interface SevInfoBase {
  enabled: boolean;
  apiMajor: number;
  apiMinor: number;
  buildId: number;
  state: SevState;
}

/** An SEV / SEV-ES guest (`sev-type` "sev", or no tag on QEMU < 9.1). */
export interface SevGuestInfo extends SevInfoBase {
  sevType: 'sev';
  /** u32 guest policy. */
  policy: number;
  handle: number;
}

/** An SEV-SNP guest (`sev-type` "sev-snp"). There is never a `launch-secret` state. */
export interface SnpGuestInfo extends SevInfoBase {
  sevType: 'sev-snp';
  /** u64 SNP guest policy. */
  snpPolicy: bigint;
}

/** Either shape of a checked `query-sev` answer. */
export type ParsedSevInfo = SevGuestInfo | SnpGuestInfo;

function byte(v: unknown, what: string): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 255) throw new QmpProtocolError(`QMP query-sev: ${what} ${JSON.stringify(v)} is not 0..255`);
  return v as number;
}

function u32(v: unknown, what: string): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 0xffffffff)
    throw new QmpProtocolError(`QMP query-sev: ${what} ${JSON.stringify(v)} is not a u32`);
  return v as number;
}

/**
 * Checks a `query-sev` answer: api-major/minor and build-id 0..255 (the firmware has one
 * byte each), a known state, policy a u32 (SEV) or snp-policy a safe non-negative integer
 * (SNP; JSON numbers beyond 2^53 cannot be read exactly, and no valid policy is that large),
 * and no `launch-secret` for SNP. Throws QmpProtocolError.
 */
export function parseSevInfo(raw: QmpSevInfo | Record<string, unknown>): ParsedSevInfo {
  const r = raw as Record<string, unknown>;
  if (!r || typeof r !== 'object' || typeof r.enabled !== 'boolean') throw new QmpProtocolError('QMP query-sev: reply is not a SevInfo object');
  if (typeof r.state !== 'string' || !SEV_STATES.includes(r.state)) throw new QmpProtocolError(`QMP query-sev: unknown state ${JSON.stringify(r.state)}`);
  const base: SevInfoBase = {
    enabled: r.enabled,
    apiMajor: byte(r['api-major'], 'api-major'),
    apiMinor: byte(r['api-minor'], 'api-minor'),
    buildId: byte(r['build-id'], 'build-id'),
    state: r.state as SevState,
  };
  const type = r['sev-type'] ?? 'sev';
  if (type === 'sev') return { ...base, sevType: 'sev', policy: u32(r.policy, 'policy'), handle: u32(r.handle, 'handle') };
  if (type !== 'sev-snp') throw new QmpProtocolError(`QMP query-sev: unknown sev-type ${JSON.stringify(type)}`);
  const p = r['snp-policy'];
  if (!Number.isSafeInteger(p) || (p as number) < 0)
    throw new QmpProtocolError(`QMP query-sev: snp-policy ${JSON.stringify(p)} is not a u64 that JSON can carry exactly`);
  if (base.state === 'launch-secret') throw new QmpProtocolError('QMP query-sev: an SNP guest reported state launch-secret, which SNP does not have');
  return { ...base, sevType: 'sev-snp', snpPolicy: BigInt(p as number) };
}
