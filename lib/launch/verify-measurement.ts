/**
 * The owner's check of a host-reported launch measurement, and on a mismatch the diagnosis of what the host
 * launched instead. Kept apart from measurement.ts (the formulas) so that the formulas, which the simulator's
 * firmware model also uses, do not load the diagnosis search and the two do not import each other.
 */
import { expectLength } from './bytes.js';
import { LaunchInputError } from './errors.js';
import { safeEqual } from './kdf.js';
import { checkHostReport, computeLaunchDigest, computeMeasure, parseMeasurementBlob, type HostReport, type LaunchDigestInput } from './measurement.js';
import { diagnoseMeasurement, type DiagnoseSpace, type MeasurementDiagnosis } from './diagnose.js';
import { Policy, type PolicyLike } from './policy.js';

/**
 * What verifyMeasurement compares: the host's 48-byte blob and its query-sev values against the owner's policy,
 * TIK and expected launch.
 */
export interface VerifyMeasurementInput {
  /** The host's 48-byte LAUNCH_MEASURE blob (raw or base64). */
  measurement: Uint8Array | string;
  /** The host's reported platform version and guest policy. */
  sevInfo: HostReport;
  /** The owner's own expectations. */
  expected: {
    policy: PolicyLike;
    tik: Uint8Array;
    /** Either the digest, or what to compute it from. */
    digest?: Uint8Array;
    launch?: LaunchDigestInput;
  };
  /**
   * On a mismatch with expected.launch given, search which variant explains the host's blob
   * (diagnose.ts; default space, well under a second) and say it in the message; false turns it off.
   */
  diagnose?: boolean | DiagnoseSpace;
}

/**
 * The outcome of verifyMeasurement: a match, or why not (policy mismatch, firmware too old, measurement
 * mismatch) with a diagnosis when one was searched.
 */
export type MeasurementVerdict =
  | { match: true; digest: Buffer; mnonce: Buffer; expectedMeasure: Buffer }
  | {
      match: false;
      reason: 'policy-mismatch' | 'firmware-too-old' | 'measurement-mismatch';
      message: string;
      digest?: Buffer;
      mnonce: Buffer;
      expectedMeasure?: Buffer;
      /** On a measurement mismatch with expected.launch given: which variant the host launched, if any explains it. */
      diagnosis?: MeasurementDiagnosis;
    };

/**
 * Check the host's launch measurement against the owner's expectations.
 * Refuses (match=false) before any MAC when the host's policy is not the
 * owner's, or the firmware is older than the policy's minimum; compares the
 * MAC in constant time.
 */
export function verifyMeasurement(v: VerifyMeasurementInput): MeasurementVerdict {
  checkHostReport(v.sevInfo, v.measurement);
  const { measure, mnonce } = parseMeasurementBlob(v.measurement);
  const policy = Policy.from(v.expected.policy);
  const host = v.sevInfo;
  if (!policy.equals(host.policy >>> 0)) {
    return {
      match: false,
      reason: 'policy-mismatch',
      mnonce,
      message: `host reports policy 0x${(host.policy >>> 0).toString(16)}, owner expects ${policy.toHex()}`,
    };
  }
  if (!policy.allowsFirmware(host.apiMajor, host.apiMinor)) {
    return {
      match: false,
      reason: 'firmware-too-old',
      mnonce,
      message: `host firmware API ${host.apiMajor}.${host.apiMinor} is older than the policy minimum ${policy.apiMajor}.${policy.apiMinor}`,
    };
  }
  let digest: Buffer;
  if (v.expected.digest) digest = expectLength(v.expected.digest, 32, 'expected launch digest');
  else if (v.expected.launch) digest = computeLaunchDigest(v.expected.launch);
  else throw new LaunchInputError('verifyMeasurement needs the expected launch digest or the firmware', 'ERR_VERIFY_ARGS');
  const expectedMeasure = computeMeasure({
    digest,
    mnonce,
    tik: v.expected.tik,
    apiMajor: host.apiMajor,
    apiMinor: host.apiMinor,
    build: host.buildId,
    policy,
  });
  if (!safeEqual(expectedMeasure, measure)) {
    const message = 'launch measurement does not match the expected firmware, policy and TIK';
    const diagnosis =
      v.expected.launch && v.diagnose !== false ? diagnoseLaunch(v, v.expected.launch, v.diagnose === true ? undefined : v.diagnose) : undefined;
    if (!diagnosis) return { match: false, reason: 'measurement-mismatch', digest, mnonce, expectedMeasure, message };
    return { match: false, reason: 'measurement-mismatch', digest, mnonce, expectedMeasure, diagnosis, message: `${message}: ${diagnosis.summary}` };
  }
  return { match: true, digest, mnonce, expectedMeasure };
}

/** The diagnosis for a refused verifyMeasurement: the owner's launch input is the expectation. */
function diagnoseLaunch(v: VerifyMeasurementInput, launch: LaunchDigestInput, space: DiagnoseSpace | undefined): MeasurementDiagnosis {
  const es = launch.es;
  const name = launch.firmwareName ?? 'firmware';
  return diagnoseMeasurement({
    measurement: v.measurement,
    sevInfo: v.sevInfo,
    tik: v.expected.tik,
    firmwares: [{ name, image: launch.firmware }],
    kernel: launch.kernel ?? null,
    expected: {
      policy: v.expected.policy,
      firmware: name,
      kernelHashes: Boolean(launch.kernel),
      ...(es
        ? {
            numCpus: es.numCpus,
            ...(es.vcpuSig !== undefined ? { vcpuSig: es.vcpuSig } : es.vcpuType !== undefined ? { vcpuType: es.vcpuType } : {}),
            vmType: es.vmType ?? 'legacy',
            sevFeatures: es.sevFeatures ?? 0,
          }
        : {}),
    },
    ...(space ? { space } : {}),
  });
}
