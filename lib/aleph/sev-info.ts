/**
 * The one home of the conversions between the three shapes an SEV guest's firmware values travel in:
 * QEMU's `query-sev` answer (QmpSevInfo, kebab-case), aleph's `sev_info` (AlephSevInfo, snake_case, what
 * the CRN sends the owner) and the values the owner checks and MACs (HostReport, lib/launch). All three
 * are host-reported: the conversions copy, they do not vouch (checkHostReport does).
 */
import { InputError } from '../errors.js';
import type { HostReport } from '../launch/measurement.js';
import type { QmpSevInfo } from '../qmp/types.js';
import type { AlephSevInfo } from './messages.js';

/**
 * QMP's kebab-case `query-sev` (QEMU 7.2 flat or 9.1's union; extra fields dropped) → aleph's snake_case
 * `sev_info`. Lenient on purpose (missing numbers become 0, a non-string state ''), because the CRN only
 * relays it: the owner range-checks what arrives.
 */
export function toAlephSevInfo(q: QmpSevInfo | Record<string, unknown>): AlephSevInfo {
  const r = q as Record<string, unknown>;
  return {
    enabled: r.enabled === true,
    api_major: Number(r['api-major'] ?? r.api_major ?? 0),
    api_minor: Number(r['api-minor'] ?? r.api_minor ?? 0),
    build_id: Number(r['build-id'] ?? r.build_id ?? 0),
    policy: Number(r.policy ?? 0),
    state: typeof r.state === 'string' ? r.state : '',
    handle: Number(r.handle ?? 0),
  };
}

/** aleph's `sev_info` → the values the owner checks (checkHostReport) and MACs (verifyMeasurement). */
export function hostReportOf(si: AlephSevInfo): HostReport {
  return { apiMajor: si.api_major, apiMinor: si.api_minor, buildId: si.build_id, policy: si.policy };
}

/**
 * Any JSON form a user may have saved of the host's answer → HostReport: QMP `query-sev` (with or without
 * its `{"return": …}` envelope), aleph's measurement answer (`{"sev_info": …}`) or its bare `sev_info`, or
 * HostReport itself (camelCase). Only picks the fields; checkHostReport judges them. Throws InputError
 * naming the first missing numeric field.
 */
export function hostReportFromJson(json: unknown): HostReport {
  let j = json as Record<string, unknown> | null;
  if (!j || typeof j !== 'object') throw new InputError('SEV info: not a JSON object (expected QMP query-sev output)');
  if (j.return && typeof j.return === 'object') j = j.return as Record<string, unknown>;
  if (j.sev_info && typeof j.sev_info === 'object') j = j.sev_info as Record<string, unknown>;
  const o = j;
  const num = (...keys: string[]): number => {
    for (const k of keys) if (typeof o[k] === 'number') return o[k] as number;
    throw new InputError(`SEV info: missing numeric field ${keys[0]!}`);
  };
  return {
    apiMajor: num('api-major', 'api_major', 'apiMajor'),
    apiMinor: num('api-minor', 'api_minor', 'apiMinor'),
    buildId: num('build-id', 'build_id', 'buildId'),
    policy: num('policy'),
  };
}
