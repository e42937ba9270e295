/**
 * A small in-process SEV platform for the CRN tests: a certificate chain
 * under a test CA, and a VM launcher that plays the firmware's launch
 * commands with lib/launch's firmware-side functions (openSession,
 * launchMeasure, openSecret). Knobs let a test make the host hostile.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import { Algo, Usage, createCaCert, createSevCert, encodeCaCert, encodeSevCert, signCaCert, signSevCert, type CaChain } from '../../lib/certs/index.js';
import { computeLaunchDigest, launchMeasure, openSecret, openSession, parseSecretTable } from '../../lib/launch/index.js';
import type { CertificateSource, CrnVm, LaunchSpec, CrnPlatformCerts, VmLauncher, CrnVmRunStatus } from '../../lib/crn/backend.js';
import type { AlephSevInfo } from '../../lib/aleph/messages.js';

export interface TestCa {
  ark: KeyObject;
  ask: KeyObject;
  chain: CaChain;
  /** ASK‖ARK, the --ca file format. */
  bytes: Buffer;
}

const p384 = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });

export function makeCa(): TestCa {
  const ark = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ask = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const arkCert = signCaCert(createCaCert({ usage: Usage.ARK, publicKey: ark.publicKey }), { privateKey: ark.privateKey });
  const askCert = signCaCert(createCaCert({ usage: Usage.ASK, publicKey: ask.publicKey, certifyingId: arkCert.keyId }), {
    privateKey: ark.privateKey,
    signerKeyId: arkCert.keyId,
  });
  return {
    ark: ark.privateKey,
    ask: ask.privateKey,
    chain: { ark: arkCert, ask: askCert },
    bytes: Buffer.concat([encodeCaCert(askCert), encodeCaCert(arkCert)]),
  };
}

export interface TestPlatform {
  certs: CrnPlatformCerts;
  pdhKey: KeyObject;
  pekKey: KeyObject;
  ca: TestCa;
}

const ECDSA = Algo.ECDSA_SHA256;

/** A platform chain PDH ← PEK ← (OCA, CEK ← ASK ← ARK). */
export function makePlatform(ca: TestCa, over: { cekSigner?: TestCa } = {}): TestPlatform {
  const cekK = p384();
  const ocaK = p384();
  const pekK = p384();
  const pdhK = p384();
  const api = { apiMajor: 1, apiMinor: 55 };
  let cek = createSevCert({ usage: Usage.CEK, publicKey: cekK.publicKey, ...api });
  cek = signSevCert(cek, 1, { signerUsage: Usage.ASK, signerAlgo: Algo.RSA_SHA256, privateKey: (over.cekSigner ?? ca).ask });
  let oca = createSevCert({ usage: Usage.OCA, publicKey: ocaK.publicKey, ...api });
  oca = signSevCert(oca, 1, { signerUsage: Usage.OCA, signerAlgo: ECDSA, privateKey: ocaK.privateKey });
  let pek = createSevCert({ usage: Usage.PEK, publicKey: pekK.publicKey, ...api });
  pek = signSevCert(pek, 1, { signerUsage: Usage.OCA, signerAlgo: ECDSA, privateKey: ocaK.privateKey });
  pek = signSevCert(pek, 2, { signerUsage: Usage.CEK, signerAlgo: ECDSA, privateKey: cekK.privateKey });
  let pdh = createSevCert({ usage: Usage.PDH, publicKey: pdhK.publicKey, ...api });
  pdh = signSevCert(pdh, 1, { signerUsage: Usage.PEK, signerAlgo: ECDSA, privateKey: pekK.privateKey });
  return {
    certs: { pdh: encodeSevCert(pdh), pek: encodeSevCert(pek), oca: encodeSevCert(oca), cek: encodeSevCert(cek) },
    pdhKey: pdhK.privateKey,
    pekKey: pekK.privateKey,
    ca,
  };
}

/** A PDH the attacker made (signed by its own key, not the platform's PEK). */
export function substitutePdh(p: TestPlatform): TestPlatform {
  const pdhK = p384();
  const fakePek = p384();
  let pdh = createSevCert({ usage: Usage.PDH, publicKey: pdhK.publicKey, apiMajor: 1, apiMinor: 55 });
  pdh = signSevCert(pdh, 1, { signerUsage: Usage.PEK, signerAlgo: ECDSA, privateKey: fakePek.privateKey });
  return { ...p, certs: { ...p.certs, pdh: encodeSevCert(pdh) }, pdhKey: pdhK.privateKey };
}

export class StaticCerts implements CertificateSource {
  constructor(public certs: CrnPlatformCerts) {}
  async exportCerts(): Promise<CrnPlatformCerts> {
    return this.certs;
  }
}

export interface Hostility {
  /** Launch with this policy instead of the allocated one (the session MAC then fails in real firmware). */
  launchPolicy?: number;
  /** Report this policy in sev_info. */
  reportPolicy?: number;
  /** Measure this firmware image instead of the allocated one. */
  firmware?: Buffer;
  /** Rewrite the 48-byte measurement blob before serving it. */
  measurement?: (real: Buffer) => Buffer;
  /** Report this state in sev_info. */
  reportState?: string;
  /** Report SEV as disabled. */
  reportEnabled?: boolean;
}

export interface GuestRecord {
  ref: string;
  /** The decrypted secret table as the guest would find it. */
  table?: Buffer;
  passwords: string[];
}

/** Plays LAUNCH_START/UPDATE_DATA/MEASURE/SECRET for each VM in-process. */
export class ModelLauncher implements VmLauncher {
  readonly kind = 'model';
  hostile: Hostility = {};
  guests: GuestRecord[] = [];
  measurements: Buffer[] = [];
  api = { major: 1, minor: 55, build: 24 };
  constructor(public platform: TestPlatform) {}

  async launch(spec: LaunchSpec): Promise<CrnVm> {
    const h = this.hostile;
    const policy = h.launchPolicy ?? spec.policy;
    const godh = fs.readFileSync(spec.godhFile, 'latin1');
    const session = fs.readFileSync(spec.sessionFile, 'latin1');
    // LAUNCH_START: throws (like the firmware refusing) on a bad GODH, wrap MAC or policy MAC.
    const { tek, tik } = openSession({ godh, session, pdhPrivateKey: this.platform.pdhKey, policy });
    const firmware = h.firmware ?? fs.readFileSync(spec.firmware);
    const digest = computeLaunchDigest({ firmware });
    let blob = launchMeasure({ digest, tik, apiMajor: this.api.major, apiMinor: this.api.minor, build: this.api.build, policy });
    this.measurements.push(Buffer.from(blob));
    if (h.measurement) blob = h.measurement(blob);
    const sevInfo: AlephSevInfo = {
      enabled: h.reportEnabled ?? true,
      api_major: this.api.major,
      api_minor: this.api.minor,
      build_id: this.api.build,
      policy: h.reportPolicy ?? policy,
      state: h.reportState ?? 'launch-secret',
      handle: this.guests.length + 1,
    };
    const guest: GuestRecord = { ref: spec.ref, passwords: [] };
    this.guests.push(guest);
    const realMeasure = this.measurements.at(-1)!;
    let running = false;
    return {
      ready: Promise.resolve(),
      async measurement() {
        return { sevInfo: { ...sevInfo, state: running ? 'running' : sevInfo.state }, launchMeasure: blob.toString('base64') };
      },
      async injectSecret(p) {
        // LAUNCH_SECRET against the firmware's own measurement, not what the host served.
        const table = openSecret({
          header: Buffer.from(p.packetHeader, 'base64'),
          payload: Buffer.from(p.secret, 'base64'),
          tek,
          tik,
          measurement: realMeasure,
        });
        guest.table = table;
        guest.passwords = parseSecretTable(table).entries.map((e) => e.data.toString('utf8').replace(/\0+$/, ''));
      },
      async cont() {
        running = true;
      },
      async queryStatus(): Promise<CrnVmRunStatus> {
        return running ? { status: 'running', running: true, singlestep: false } : { status: 'prelaunch', running: false };
      },
      async stop() {
        tek.fill(0);
        tik.fill(0);
      },
    };
  }
}
