/**
 * The guest owner's side of a confidential launch on a CRN:
 *
 *   firmware → certificates → chain → session → initialize → measurement → verify → secret → inject
 *
 * The firmware step refuses, before anything is sent, a launch that could never deliver the secret: a
 * firmware without a launch-secret area (unless the owner names the GPA), SEV-ES without the vCPU count and
 * type, a secret larger than the area; it also predicts the launch digest from the owner's own inputs.
 * Every wait has a deadline (each request, the measurement, the launch as a whole) and reports progress.
 *
 * Every trust decision is made before the secret exists in encrypted form:
 * the secret is read by the caller but only encrypted (and then sent) after
 * the chain verified to the expected root and the measurement matched the
 * owner's own computation from its own firmware and policy. The first failed
 * check throws LaunchRefusedError naming the step; nothing after it runs.
 */
import { SevkitError } from '../errors.js';
import {
  decodeSevChain,
  verifyTrustedChain,
  type ChainVerification,
  type TrustedChainVerification,
  type CaChain,
  type Generation,
  SEV_CHAIN_SIZE,
} from '../certs/index.js';
import {
  buildSecret,
  buildSecretTable,
  checkHostReport,
  computeLaunchDigest,
  createSession,
  DISK_PASSWORD_GUID,
  Policy,
  verifyMeasurement,
  type EsVmsaSpec,
  type LaunchDigestInput,
  type PolicyLike,
} from '../launch/index.js';
import { parseOvmf } from '../firmware/ovmf.js';
import { CrnClient, CrnHttpError, printable, type MeasurementPoll } from './client.js';
import type { SevMeasurementResponse } from '../aleph/messages.js';
import { hostReportOf } from '../aleph/sev-info.js';
import { formatSeconds } from '../util/http-request.js';

/** The steps of launchOnCrn, in order (progress reports and LaunchRefusedError name them). */
export const LAUNCH_STEPS = ['firmware', 'certificates', 'chain', 'session', 'initialize', 'measurement', 'verify', 'secret', 'inject'] as const;
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

/** Reported about once a second while a step waits on the CRN: what for, and for how long so far. */
export interface LaunchWait {
  step: LaunchStep;
  /** "the launch measurement (VM starting)", … */
  waitingFor: string;
  elapsedMs: number;
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
  /**
   * Where the firmware receives the secret when its footer table declares no launch-secret area (a custom
   * firmware). aleph's inject_secret carries no address: the CRN must inject there itself.
   */
  secretArea?: { gpa: number; size: number };
  /** Bound on waiting for the measurement after initialize. */
  measurementTimeoutMs?: number;
  /** Bound on the whole launch, every step included (default: measurement bound + 5 minutes). */
  deadlineMs?: number;
  /** Cancels the launch (Ctrl-C); the step in progress is refused with the reason. */
  signal?: AbortSignal;
  pollIntervalMs?: number;
  /** Seconds the CRN may hold one measurement request (`?wait=`, default 20; 0 = plain polling). */
  measurementWaitSeconds?: number;
  onProgress?: (p: LaunchProgress) => void;
  onWait?: (w: LaunchWait) => void;
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
  const measurementTimeoutMs = o.measurementTimeoutMs ?? 60_000;
  const deadlineMs = o.deadlineMs ?? measurementTimeoutMs + 300_000;
  const launchStarted = Date.now();
  const crn = o.client.url;
  // Requests in flight end with the launch (deadline, refusal, interruption), not at their own deadlines.
  const ended = new AbortController();
  const client = o.client.withSignal(ended.signal);
  try {
    return await launchSteps(o, client, { policy, timings, measurementTimeoutMs, deadlineMs, launchStarted, crn });
  } finally {
    ended.abort();
  }
}

/** What launchOnCrn fixed before the steps run. */
interface LaunchContext {
  policy: Policy;
  timings: Record<LaunchStep, number>;
  measurementTimeoutMs: number;
  deadlineMs: number;
  launchStarted: number;
  crn: string;
}

/** The steps of launchOnCrn, against the launch's own client. */
async function launchSteps(o: OwnerLaunchOptions, client: CrnClient, ctx: LaunchContext): Promise<OwnerLaunchResult> {
  const { policy, timings, measurementTimeoutMs, deadlineMs, launchStarted, crn } = ctx;
  const step = async <T>(name: LaunchStep, waitingFor: string | null, fn: () => Promise<{ value: T; detail: string }>): Promise<T> => {
    const t0 = performance.now();
    // Each step races the launch's overall deadline and the caller's signal, so no step can outlast them.
    let timer: NodeJS.Timeout | undefined;
    let ticker: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<never>((_, reject) => {
      const left = deadlineMs - (Date.now() - launchStarted);
      const expire = () =>
        reject(
          new LaunchRefusedError(
            name,
            `the launch did not finish within its deadline of ${formatSeconds(deadlineMs)} (still waiting for ${waitingFor ?? name} from ${crn})`,
          ),
        );
      if (left <= 0) expire();
      else timer = setTimeout(expire, left);
      if (o.signal) {
        onAbort = () => reject(new LaunchRefusedError(name, `interrupted while waiting for ${waitingFor ?? name} from ${crn}`, { cause: o.signal!.reason }));
        if (o.signal.aborted) onAbort();
        else o.signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    stop.catch(() => undefined);
    const current = { waitingFor: waitingFor ?? name };
    if (waitingFor && o.onWait) {
      const tick = () => o.onWait!({ step: name, waitingFor: current.waitingFor, elapsedMs: performance.now() - t0 });
      ticker = setInterval(tick, 1000);
      ticker.unref?.();
    }
    waitState.set = (w: string) => {
      current.waitingFor = w;
    };
    try {
      const { value, detail } = await Promise.race([fn(), stop]);
      const ms = performance.now() - t0;
      timings[name] = ms;
      o.onProgress?.({ step: name, index: LAUNCH_STEPS.indexOf(name) + 1, total: LAUNCH_STEPS.length, ms, detail });
      return value;
    } finally {
      clearTimeout(timer);
      clearInterval(ticker);
      if (onAbort) o.signal?.removeEventListener('abort', onAbort);
      waitState.set = () => undefined;
    }
  };
  const waitState: { set: (w: string) => void } = { set: () => undefined };
  const refuse = (s: LaunchStep, why: string, cause?: unknown): never => {
    throw new LaunchRefusedError(s, why, cause === undefined ? undefined : { cause });
  };
  const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e));

  // 0. Refuse early: nothing reaches the CRN for a launch that could never deliver the secret.
  const fw = await step('firmware', null, async () => {
    let area: { gpa: number; size: number } | undefined;
    try {
      const info = parseOvmf(o.firmware);
      if (info.secretArea) area = { gpa: info.secretArea.base, size: info.secretArea.size };
    } catch (e) {
      if (!o.secretArea)
        refuse('firmware', `${describe(e)}: it declares no launch-secret area (give the GPA explicitly if it receives the secret elsewhere)`, e);
    }
    if (o.secretArea) area = o.secretArea;
    if (!area) {
      refuse(
        'firmware',
        'the firmware declares no launch-secret area in its OVMF footer table, so it cannot receive the secret (use an AmdSev OVMF build, or give the GPA explicitly)',
      );
    }
    if (policy.es && (!o.es || !Number.isInteger(o.es.numCpus) || o.es.numCpus < 1 || (o.es.vcpuType === undefined && o.es.vcpuSig === undefined))) {
      refuse('firmware', 'policy has SEV-ES: the vCPU count and the vCPU type or signature are needed to predict the VMSA measurement');
    }
    const table = buildSecretTable([{ guid: DISK_PASSWORD_GUID, data: o.secret }], 'aleph');
    const size = table.length;
    table.fill(0);
    if (size > area!.size) refuse('firmware', `the secret table is ${size} bytes, larger than the firmware's launch-secret area (${area!.size} bytes)`);
    const launch: LaunchDigestInput = { firmware: o.firmware, firmwareName: 'firmware', ...(policy.es ? { es: o.es! } : {}) };
    let digest: Buffer;
    try {
      digest = computeLaunchDigest(launch);
    } catch (e) {
      return refuse('firmware', describe(e), e);
    }
    const es = policy.es ? `, SEV-ES ${o.es!.numCpus} vCPU(s) ${o.es!.vcpuType ?? `sig 0x${o.es!.vcpuSig!.toString(16)}`}` : '';
    return {
      value: { launch, digest, area: area! },
      detail: `secret area 0x${area!.gpa.toString(16)} (${area!.size} bytes) takes the ${size}-byte table${es}; launch digest ${digest.toString('hex').slice(0, 16)}…`,
    };
  });

  // 1. The platform's certificates, as the CRN serves them.
  const chainBytes = await step('certificates', `the platform certificates`, async () => {
    let b: Buffer;
    try {
      b = await client.getCertificates();
    } catch (e) {
      return refuse('certificates', describe(e), e);
    }
    if (b.length !== SEV_CHAIN_SIZE) refuse('certificates', `CRN served ${b.length} bytes, expected ${SEV_CHAIN_SIZE} (PDH‖PEK‖OCA‖CEK)`);
    return { value: b, detail: `${b.length} bytes (PDH, PEK, OCA, CEK) from ${client.url}` };
  });

  // 2. The chain must lead to the expected root before the PDH is used for anything.
  const verified = await step('chain', null, async () => {
    let v: TrustedChainVerification;
    try {
      v = verifyTrustedChain({ chain: decodeSevChain(chainBytes), ca: o.ca, generation: o.generation });
    } catch (e) {
      return refuse('chain', describe(e), e);
    }
    if (!v.ok) {
      const f = v.failed[0]!;
      refuse('chain', `${f.signer} → ${f.subject}: ${f.reason ?? 'signature invalid'}`);
    }
    const root = v.anchor?.chosenBy === 'ca' ? 'the given CA' : `AMD ${v.generation} roots (built in)`;
    return { value: v, detail: `PDH ← PEK ← OCA, PEK ← CEK ← ASK ← ARK verified against ${root}` };
  });

  // 3. Session for this PDH (TEK/TIK stay in this process).
  const session = await step('session', null, async () => {
    try {
      const s = createSession(verified.sev.pdh, policy);
      return { value: s, detail: `policy ${policy.toString()}, GODH + session blob created` };
    } catch (e) {
      return refuse('session', describe(e), e);
    }
  });

  try {
    // 4. Upload: the CRN starts the VM paused in launch-secret state.
    await step('initialize', 'the CRN to start the VM (initialize)', async () => {
      try {
        const text = await client.initialize(o.ref, { session: session.sessionB64, godh: session.godhB64 });
        return { value: undefined, detail: printable(text, 120) };
      } catch (e) {
        return refuse('initialize', describe(e), e);
      }
    });

    // 5. Poll the measurement, bounded: QEMU needs a moment after initialize.
    const measurement = await step('measurement', 'the launch measurement (VM starting)', async () => {
      const deadline = Date.now() + measurementTimeoutMs;
      let interval = o.pollIntervalMs ?? 100;
      let wait = o.measurementWaitSeconds ?? 20;
      let last = '';
      let polls = 0;
      for (;;) {
        polls++;
        const left = deadline - Date.now();
        let r: MeasurementPoll;
        const t0 = Date.now();
        try {
          // Long-poll (PROTOCOL.md §1): the CRN holds the request until the VM awaits its secret.
          const w = wait > 0 ? Math.min(wait, Math.floor(left / 1000)) : 0;
          r = await client.measurementOnce(o.ref, w >= 1 ? { waitSeconds: w } : {});
        } catch (e) {
          return refuse('measurement', describe(e), e);
        }
        if (r.status === 200) {
          const si = r.value!.sev_info;
          // Before anything else is done with them: values that cannot be true end the launch here.
          try {
            checkHostReport(hostReportOf(si), r.value!.launch_measure);
          } catch (e) {
            return refuse('measurement', describe(e), e);
          }
          return { value: r.value!, detail: `after ${polls} request(s), state ${si.state}` };
        }
        last = `HTTP ${r.status}${r.detail ? `: ${r.detail}` : ''}`;
        waitState.set(`the launch measurement (last answer ${printable(last, 60)})`);
        // aleph answers 403 "Operation not running" / 500 (no QMP socket yet); sevkit 503. Anything else is final.
        const transient = r.status === 503 || r.status === 500 || (r.status === 403 && /not running/i.test(r.detail));
        if (!transient) refuse('measurement', `CRN answered ${last}`);
        // A CRN that answered at once ignored ?wait (aleph's own): plain polling from now on.
        if (wait > 0 && Date.now() - t0 < 500 && r.retryAfterMs === undefined) wait = 0;
        const pause = r.retryAfterMs !== undefined ? Math.min(Math.max(r.retryAfterMs, 50), 10_000) : interval;
        if (Date.now() + pause > deadline) refuse('measurement', `no measurement within ${formatSeconds(measurementTimeoutMs)} (last: ${last})`);
        await new Promise((r2) => setTimeout(r2, pause));
        interval = Math.min(interval * 2, 1000);
      }
    });

    // 6. Trust decision: host's reported policy, state and the MAC over our own digest.
    //    Yields the exact MEASURE‖MNONCE that matched, so the secret is bound to what was verified.
    const verifiedMeasurement = await step('verify', null, async () => {
      const si = measurement.sev_info;
      if (si.enabled !== true) refuse('verify', 'host reports SEV not enabled for this guest');
      if (si.policy >>> 0 !== policy.value >>> 0) {
        refuse('verify', `host reports policy 0x${(si.policy >>> 0).toString(16)}, requested ${policy.toHex()}`);
      }
      if (si.state !== 'launch-secret') refuse('verify', `guest is in state '${si.state}', expected 'launch-secret' (it must not run before the secret)`);
      let verdict: ReturnType<typeof verifyMeasurement>;
      try {
        verdict = verifyMeasurement({
          measurement: measurement.launch_measure,
          sevInfo: hostReportOf(si),
          expected: { policy, tik: session.tik, digest: fw.digest, launch: fw.launch },
        });
      } catch (e) {
        return refuse('verify', describe(e), e);
      }
      if (!verdict.match) return refuse('verify', verdict.message);
      return {
        value: Buffer.concat([verdict.expectedMeasure, verdict.mnonce]),
        detail: `measurement matches own launch digest (${verdict.digest.toString('hex').slice(0, 16)}…), policy ${policy.toHex()}, API ${si.api_major}.${si.api_minor} build ${si.build_id}`,
      };
    });

    // 7. Only now is the secret encrypted, bound to this measurement.
    const packet = await step('secret', null, async () => {
      const maxSize = fw.area.size;
      try {
        const built = buildSecret({
          tek: session.tek,
          tik: session.tik,
          measurement: verifiedMeasurement,
          entries: [{ guid: DISK_PASSWORD_GUID, data: o.secret }],
          layout: 'aleph',
          ...(maxSize ? { maxSize } : {}),
        });
        return {
          value: { packet_header: built.header.toString('base64'), secret: built.payload.toString('base64') },
          detail: `${built.payload.length}-byte encrypted table (aleph layout, disk password)`,
        };
      } catch (e) {
        return refuse('secret', describe(e), e);
      }
    });

    // 8. Inject; the CRN resumes the VM and reports its status.
    const status = await step('inject', 'the CRN to inject the secret and resume the VM', async () => {
      try {
        const r = await client.injectSecret(o.ref, packet);
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
