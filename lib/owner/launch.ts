/**
 * The guest owner's side of a confidential launch on a CRN:
 *
 *   certificates → chain → session → initialize → measurement → verify → secret → inject
 *
 * Every trust decision is made before the secret exists in encrypted form:
 * the secret is read by the caller but only encrypted (and then sent) after
 * the chain verified to the expected root and the measurement matched the
 * owner's own computation from its own firmware and policy. The first failed
 * check throws LaunchRefusedError naming the step; nothing after it runs.
 */
import crypto from 'node:crypto';
import { SevkitError } from '../errors.js';
import { decodeSevChain, verifyChain, type ChainVerification, type CaChain, type Generation, SEV_CHAIN_SIZE } from '../certs/index.js';
import {
  buildSecret,
  createSession,
  DISK_PASSWORD_GUID,
  Policy,
  verifyMeasurement,
  type EsVmsaSpec,
  type LaunchDigestInput,
  type PolicyLike,
} from '../launch/index.js';
import { parseOvmf } from '../firmware/ovmf.js';
import { CrnClient, CrnHttpError, printable } from './client.js';
import type { SevMeasurementResponse } from '../aleph/messages.js';

/** The steps of launchOnCrn, in order (progress reports and LaunchRefusedError name them). */
export const LAUNCH_STEPS = ['certificates', 'chain', 'session', 'initialize', 'measurement', 'verify', 'secret', 'inject'] as const;
/** One step of launchOnCrn. */
export type LaunchStep = (typeof LAUNCH_STEPS)[number];

/** The launch was refused at `step`; the secret was not sent. */
export class LaunchRefusedError extends SevkitError {
  constructor(
    readonly step: LaunchStep,
    readonly why: string,
    options?: { cause?: unknown },
  ) {
    super(`ERR_LAUNCH_${step.toUpperCase()}`, `launch refused at step '${step}': ${why}; the secret was not sent`, options);
  }
}

/** The secret was sent but the CRN did not confirm the VM running. */
export class LaunchInjectError extends SevkitError {
  constructor(why: string, options?: { cause?: unknown }) {
    super('ERR_LAUNCH_INJECT', `step 'inject': ${why}`, options);
  }
}

/** A progress report of launchOnCrn: the step finished, its position, its duration (ms) and a one-line detail. */
export interface LaunchProgress {
  step: LaunchStep;
  index: number;
  total: number;
  ms: number;
  detail: string;
}

/**
 * What launchOnCrn needs: the CRN client, the VM ref, the expected firmware, the policy, the secret, the trust
 * anchor (CA chain or generation) and SEV-ES inputs.
 */
export interface OwnerLaunchOptions {
  client: CrnClient;
  ref: string;
  /** The firmware image the owner expects the VM to boot (the exact OVMF file). */
  firmware: Uint8Array;
  policy: PolicyLike;
  /** The disk password the guest's GRUB uses (aleph layout, GUID 736869e5-…). */
  secret: Uint8Array;
  /** Trust anchor: an explicit ASK‖ARK (bytes or decoded) … */
  ca?: CaChain | Uint8Array;
  /** … or the built-in AMD roots of this generation; default: detect from the CEK. */
  generation?: Generation;
  /** SEV-ES: the VMSA inputs needed to predict the launch digest. */
  es?: EsVmsaSpec;
  /** Bound on waiting for the measurement after initialize. */
  measurementTimeoutMs?: number;
  pollIntervalMs?: number;
  onProgress?: (p: LaunchProgress) => void;
}

/**
 * A launch that verified and received its secret: the chain's anchor, the host's query-sev values and
 * measurement, and per-step timings (ms).
 */
export interface OwnerLaunchResult {
  ref: string;
  chain: { generation?: Generation; caSource: ChainVerification['caSource'] };
  sevInfo: SevMeasurementResponse['sev_info'];
  launchMeasure: string;
  status: unknown;
  /** Milliseconds per step. */
  timings: Record<LaunchStep, number>;
}

const REF_RE = /^[0-9a-f]{64}$/;

/**
 * The guest owner's launch on a CRN: verify the platform chain, build the session, check the measurement, and
 * only then send the secret. Throws LaunchRefusedError (secret not sent), LaunchInjectError (sent, not
 * confirmed), or SevkitError ERR_INPUT for a malformed ref.
 */
export async function launchOnCrn(o: OwnerLaunchOptions): Promise<OwnerLaunchResult> {
  if (!REF_RE.test(o.ref)) throw new SevkitError('ERR_INPUT', `--vm must be 64 lower-case hex digits, got '${o.ref.slice(0, 80)}'`);
  const policy = Policy.from(o.policy);
  const timings = {} as Record<LaunchStep, number>;
  const step = async <T>(name: LaunchStep, fn: () => Promise<{ value: T; detail: string }>): Promise<T> => {
    const t0 = performance.now();
    const { value, detail } = await fn();
    const ms = performance.now() - t0;
    timings[name] = ms;
    o.onProgress?.({ step: name, index: LAUNCH_STEPS.indexOf(name) + 1, total: LAUNCH_STEPS.length, ms, detail });
    return value;
  };
  const refuse = (s: LaunchStep, why: string, cause?: unknown): never => {
    throw new LaunchRefusedError(s, why, cause === undefined ? undefined : { cause });
  };
  const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e));

  // 1. The platform's certificates, as the CRN serves them.
  const chainBytes = await step('certificates', async () => {
    let b: Buffer;
    try {
      b = await o.client.getCertificates();
    } catch (e) {
      return refuse('certificates', describe(e), e);
    }
    if (b.length !== SEV_CHAIN_SIZE) refuse('certificates', `CRN served ${b.length} bytes, expected ${SEV_CHAIN_SIZE} (PDH‖PEK‖OCA‖CEK)`);
    return { value: b, detail: `${b.length} bytes (PDH, PEK, OCA, CEK) from ${o.client.url}` };
  });

  // 2. The chain must lead to the expected root before the PDH is used for anything.
  const verified = await step('chain', async () => {
    let v: ChainVerification;
    try {
      v = verifyChain({ sev: decodeSevChain(chainBytes), ...(o.ca ? { ca: o.ca } : {}), ...(o.generation ? { generation: o.generation } : {}) });
    } catch (e) {
      return refuse('chain', describe(e), e);
    }
    if (!v.ok) {
      const f = v.failed[0]!;
      refuse('chain', `${f.signer} → ${f.subject}: ${f.reason ?? 'signature invalid'}`);
    }
    const root = v.caSource === 'given' ? 'the given CA' : `AMD ${v.generation} roots (built in)`;
    return { value: v, detail: `PDH ← PEK ← OCA, PEK ← CEK ← ASK ← ARK verified against ${root}` };
  });

  // 3. Session for this PDH (TEK/TIK stay in this process).
  const session = await step('session', async () => {
    try {
      const s = createSession(verified.sev.pdh, policy);
      return { value: s, detail: `policy ${policy.toString()}, GODH + session blob created` };
    } catch (e) {
      return refuse('session', describe(e), e);
    }
  });

  try {
    // 4. Upload: the CRN starts the VM paused in launch-secret state.
    await step('initialize', async () => {
      try {
        const text = await o.client.initialize(o.ref, { session: session.sessionB64, godh: session.godhB64 });
        return { value: undefined, detail: printable(text, 120) };
      } catch (e) {
        return refuse('initialize', describe(e), e);
      }
    });

    // 5. Poll the measurement, bounded: QEMU needs a moment after initialize.
    const measurement = await step('measurement', async () => {
      const deadline = Date.now() + (o.measurementTimeoutMs ?? 60_000);
      let interval = o.pollIntervalMs ?? 100;
      let last = '';
      let polls = 0;
      for (;;) {
        polls++;
        let r: Awaited<ReturnType<CrnClient['measurementOnce']>>;
        try {
          r = await o.client.measurementOnce(o.ref);
        } catch (e) {
          return refuse('measurement', describe(e), e);
        }
        if (r.status === 200) return { value: r.value!, detail: `after ${polls} request(s), state ${r.value!.sev_info.state}` };
        last = `HTTP ${r.status}${r.detail ? `: ${r.detail}` : ''}`;
        // aleph answers 403 "Operation not running" / 500 (no QMP socket yet); sevkit 503. Anything else is final.
        const transient = r.status === 503 || r.status === 500 || (r.status === 403 && /not running/i.test(r.detail));
        if (!transient) refuse('measurement', `CRN answered ${last}`);
        if (Date.now() + interval > deadline) refuse('measurement', `no measurement within ${o.measurementTimeoutMs ?? 60_000} ms (last: ${last})`);
        await new Promise((r2) => setTimeout(r2, interval));
        interval = Math.min(interval * 2, 1000);
      }
    });

    // 6. Trust decision: host's reported policy, state and the MAC over our own digest.
    //    Yields the exact MEASURE‖MNONCE that matched, so the secret is bound to what was verified.
    const verifiedMeasurement = await step('verify', async () => {
      const si = measurement.sev_info;
      if (si.enabled !== true) refuse('verify', 'host reports SEV not enabled for this guest');
      if ((si.policy >>> 0) !== policy.value >>> 0) {
        refuse('verify', `host reports policy 0x${(si.policy >>> 0).toString(16)}, requested ${policy.toHex()}`);
      }
      if (si.state !== 'launch-secret') refuse('verify', `guest is in state '${si.state}', expected 'launch-secret' (it must not run before the secret)`);
      const launch: LaunchDigestInput = { firmware: o.firmware, firmwareName: 'firmware', ...(policy.es ? { es: o.es ?? null } : {}) };
      if (policy.es && !o.es) refuse('verify', 'policy has SEV-ES: the vCPU count and type are needed to predict the VMSA measurement');
      let verdict: ReturnType<typeof verifyMeasurement>;
      try {
        verdict = verifyMeasurement({
          measurement: measurement.launch_measure,
          sevInfo: { apiMajor: si.api_major, apiMinor: si.api_minor, buildId: si.build_id, policy: si.policy },
          expected: { policy, tik: session.tik, launch },
        });
      } catch (e) {
        return refuse('verify', describe(e), e);
      }
      if (!verdict.match) return refuse('verify', verdict.message);
      return {
        value: Buffer.concat([verdict.expectedMeasure, verdict.mnonce]),
        detail: `measurement matches own firmware (sha256 ${crypto.createHash('sha256').update(o.firmware).digest('hex').slice(0, 16)}…), policy ${policy.toHex()}, API ${si.api_major}.${si.api_minor} build ${si.build_id}`,
      };
    });

    // 7. Only now is the secret encrypted, bound to this measurement.
    const packet = await step('secret', async () => {
      let maxSize: number | undefined;
      try {
        maxSize = parseOvmf(o.firmware).secretArea?.size;
      } catch {
        maxSize = undefined;
      }
      try {
        const built = buildSecret({
          tek: session.tek,
          tik: session.tik,
          measurement: verifiedMeasurement,
          entries: [{ guid: DISK_PASSWORD_GUID, data: o.secret }],
          layout: 'aleph',
          ...(maxSize ? { maxSize } : {}),
        });
        return { value: { packet_header: built.header.toString('base64'), secret: built.payload.toString('base64') }, detail: `${built.payload.length}-byte encrypted table (aleph layout, disk password)` };
      } catch (e) {
        return refuse('secret', describe(e), e);
      }
    });

    // 8. Inject; the CRN resumes the VM and reports its status.
    const status = await step('inject', async () => {
      try {
        const r = await o.client.injectSecret(o.ref, packet);
        const st = r.status as { status?: string; running?: boolean } | undefined;
        if (!st || st.running !== true) throw new LaunchInjectError(`CRN reports the VM not running: ${JSON.stringify(r.status)?.slice(0, 200)}`);
        return { value: r.status, detail: `VM ${printable(String(st.status), 64)}` };
      } catch (e) {
        if (e instanceof LaunchInjectError) throw e;
        throw new LaunchInjectError(e instanceof CrnHttpError ? e.message : describe(e), { cause: e });
      }
    });

    return {
      ref: o.ref,
      chain: { ...(verified.generation ? { generation: verified.generation } : {}), caSource: verified.caSource },
      sevInfo: measurement.sev_info,
      launchMeasure: measurement.launch_measure,
      status,
      timings,
    };
  } finally {
    session.tek.fill(0);
    session.tik.fill(0);
  }
}
