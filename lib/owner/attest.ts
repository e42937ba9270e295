/**
 * The guest owner's side of SEV-SNP attested TLS (shared/specs/snp-launch.md
 * §4.3): connect to the guest agent's (forwarded) port, take the certificate
 * the agent presented in THIS handshake, verify the report it carries with the
 * full policy — the measurement the owner computes from its own firmware,
 * kernel, initrd, cmdline and vCPUs; debug refused; TCB minimums; VMPL; and
 * REPORT_DATA = aleph's binding of the handshake's own key — and only then send
 * the owner-signed secret envelope over that same TLS connection. Nothing of
 * the secret is sent before the verdict is positive; a refused measurement is
 * diagnosed (which vCPU count/type, guest features, VMM, kernel hashes or
 * firmware explains it) and still refused.
 *
 * TLS 1.3's CertificateVerify proves the peer holds the certificate's key, so
 * a relay that shows a genuine report under its own key fails the binding.
 */
import http from 'node:http';
import tls from 'node:tls';
import { isIP } from 'node:net';
import { SevkitError } from '../errors.js';
import type { KernelHashesInput } from '../launch/hashes.js';
import { signInjectEnvelope } from '../aleph/snp-inject.js';
import type { Wallet } from '../aleph/wallet.js';
import { computeSnpDigest, type SnpFirmware } from '../snp/digest.js';
import { diagnoseSnpDigest, type SnpDiagnosis } from '../snp/diagnose.js';
import type { KdsClient } from '../snp/kds.js';
import { encodeGuestPolicy } from '../snp/flags.js';
import { tcbLayoutOf, type SnpProduct } from '../snp/product.js';
import { alephKeyBoundReportData, parseAttestedCertificate, tlsKeyDigest } from '../snp/ratls.js';
import { parseReport, reportProduct } from '../snp/report.js';
import type { ProductRoots } from '../snp/roots.js';
import type { SnpVmmType } from '../snp/vmsa.js';
import { verifySnpReport, type SnpPolicy, type SnpVerdict } from '../snp/verify.js';

/** The launch the owner expects, from its own files (aleph's defaults: EPYC-v4, guest features 0x1, QEMU). */
export interface SnpExpectedLaunch {
  /** The -bios image (raw or loaded once with loadSnpFirmware). */
  firmware: Uint8Array | SnpFirmware;
  firmwareName?: string;
  vcpus: number;
  /** QEMU -cpu model (default EPYC-v4, aleph's). */
  vcpuType?: string;
  /** CPUID(1).EAX instead of the type. */
  vcpuSig?: number;
  /** SEV_FEATURES (default 0x1). */
  guestFeatures?: bigint | number | string;
  /** Default qemu. */
  vmmType?: SnpVmmType;
  /** Measured direct boot: kernel, initrd, cmdline. */
  kernel?: KernelHashesInput | null;
}

/** Options of attestAgent / attestAndInject. */
export interface AttestOptions {
  /** The agent: https://HOST:PORT (path ignored). */
  url: string;
  expected: SnpExpectedLaunch;
  /** Other firmware builds the mismatch diagnosis may name (the expected one is always tried first). */
  otherFirmwares?: { name: string; image: Uint8Array | SnpFirmware }[];
  /** Policy beyond the measurement and key binding (TCB minimums, SMT, VMPL, host data, ...); debug stays refused unless it says otherwise. */
  policy?: Omit<SnpPolicy, 'measurements' | 'reportData' | 'reportDataBoundTo'>;
  /** Where the VCEK comes from: KDS (by the report's chip id and REPORTED_TCB) ... */
  kds?: KdsClient;
  /** ... or a given VCEK/VLEK (DER or PEM). */
  vek?: Uint8Array;
  /** A supplied ASK/ASVK and ARK (checked against the pinned roots). */
  intermediate?: Uint8Array;
  ark?: Uint8Array;
  /** A CRL to check the chain against. */
  crl?: Uint8Array;
  /** Trust anchors instead of AMD's built-in roots (the simulator's TEST roots). */
  roots?: (product: SnpProduct) => ProductRoots;
  /** Verification time (default now). */
  at?: Date;
  /** The exact guest POLICY the owner launched with (refused otherwise), as the u64. */
  expectedPolicy?: bigint;
  /** Deadline for the whole exchange, ms: connect, handshake, VCEK fetch, verification, inject (default 60 s). */
  deadlineMs?: number;
}

/** The owner refused the agent (a failed check); nothing was sent. `diagnosis` is set for a measurement mismatch. */
export class AttestRefusedError extends SevkitError {
  constructor(
    message: string,
    readonly verdict: SnpVerdict | undefined,
    readonly diagnosis: SnpDiagnosis | undefined,
    code = 'ERR_ATTEST_REFUSED',
  ) {
    super(code, message);
  }
}

/** The agent could not be reached or the connection failed (connect, TLS, deadline). */
export class AttestTransportError extends SevkitError {
  constructor(message: string, code = 'ERR_ATTEST_TRANSPORT', options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The agent refused the envelope (after a positive verdict): `status` and the agent's reason. */
export class AttestInjectError extends SevkitError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super('ERR_ATTEST_INJECT', message);
  }
}

/** A verified agent, its connection still open. */
export interface AttestedAgent {
  verdict: SnpVerdict;
  /** The report's MEASUREMENT (equal to `expectedMeasurement`). */
  measurement: Buffer;
  expectedMeasurement: Buffer;
  /** The handshake key's 97-byte point and its SHA-384 (the envelope's tls_key). */
  publicPoint: Buffer;
  keyDigest: Buffer;
  /** The peer certificate of the verified handshake (DER). */
  certificateDer: Buffer;
  /** The verified TLS connection (use it or close it). */
  socket: tls.TLSSocket;
}

/** What attestAndInject did. */
export interface AttestResult {
  verdict: SnpVerdict;
  measurement: Buffer;
  keyDigest: Buffer;
  /** Secret names the agent says it wrote. */
  injected: string[];
}

interface Deadline {
  left(): number;
  at: number;
}

function deadline(ms: number): Deadline {
  const at = Date.now() + ms;
  return { at, left: () => Math.max(0, at - Date.now()) };
}

function parseAgentUrl(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AttestTransportError(`not a URL: '${url.slice(0, 80)}'`, 'ERR_ATTEST_URL');
  }
  if (u.protocol !== 'https:') throw new AttestTransportError(`the agent URL must be https://HOST:PORT, got ${u.protocol}`, 'ERR_ATTEST_URL');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return { host, port: u.port ? Number(u.port) : 8443 };
}

/** One TLS 1.3 connection, the certificate checked by us (not by a CA), within the deadline. */
function connectTls(host: string, port: number, d: Deadline): Promise<{ socket: tls.TLSSocket; certificateDer: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, ...(isIP(host) ? {} : { servername: host }), rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    const timer = setTimeout(() => fail(new AttestTransportError(`${host}:${port}: no TLS handshake within the deadline`, 'ERR_ATTEST_TIMEOUT')), d.left());
    function fail(e: Error): void {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    }
    socket.once('error', (e: NodeJS.ErrnoException) =>
      fail(new AttestTransportError(`${host}:${port}: ${e.code ?? e.message}`, 'ERR_ATTEST_TRANSPORT', { cause: e })),
    );
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = socket.getPeerX509Certificate();
      if (!cert) return fail(new AttestTransportError(`${host}:${port}: the agent presented no certificate`));
      // Keep a handler: an error while we verify must not be unhandled.
      socket.on('error', () => socket.destroy());
      resolve({ socket, certificateDer: Buffer.from(cert.raw) });
    });
  });
}

function expectedMeasurement(e: SnpExpectedLaunch): Buffer {
  return computeSnpDigest({
    firmware: e.firmware,
    ...(e.firmwareName ? { firmwareName: e.firmwareName } : {}),
    vcpus: e.vcpus,
    ...(e.vcpuSig !== undefined ? { vcpuSig: e.vcpuSig } : { vcpuType: e.vcpuType ?? 'EPYC-v4' }),
    guestFeatures: e.guestFeatures ?? 1n,
    vmmType: e.vmmType ?? 'qemu',
    ...(e.kernel ? { kernel: e.kernel } : {}),
  }).digest;
}

async function fetchVek(o: AttestOptions, report: Buffer): Promise<{ vek?: Uint8Array; vekSource?: string }> {
  if (o.vek) return { vek: o.vek, vekSource: 'the given VCEK' };
  if (!o.kds) return {};
  let parsed;
  try {
    parsed = parseReport(report, o.policy?.product ? { layout: tcbLayoutOf(o.policy.product) } : {});
  } catch {
    return {}; // the verifier names the format failure
  }
  const product = reportProduct(parsed) ?? o.policy?.product;
  if (!product || parsed.keyInfo.signingKey !== 'VCEK') return {};
  const r = await o.kds.vcek(product, parsed.chipId, parsed.reportedTcb);
  return { vek: r.der, vekSource: r.source === 'cache' ? `the KDS cache (${r.url})` : r.url };
}

/**
 * Connect and verify; the returned connection has carried no application byte.
 * Throws AttestRefusedError (a failed check; diagnosis on a measurement
 * mismatch), AttestTransportError, SnpKdsError (no VCEK), LaunchInputError /
 * OvmfError (the owner's own files are unusable, before connecting).
 */
export async function attestAgent(o: AttestOptions): Promise<AttestedAgent> {
  const expected = expectedMeasurement(o.expected);
  const { host, port } = parseAgentUrl(o.url);
  const d = deadline(o.deadlineMs ?? 60_000);
  const { socket, certificateDer } = await connectTls(host, port, d);
  try {
    let cert;
    try {
      cert = parseAttestedCertificate(certificateDer);
    } catch (e) {
      throw new AttestRefusedError(`${host}:${port}: ${(e as Error).message}`, undefined, undefined, 'ERR_ATTEST_CERTIFICATE');
    }
    const vekTimer = new Promise<never>((_r, reject) => {
      const t = setTimeout(() => reject(new AttestTransportError('no VCEK within the deadline', 'ERR_ATTEST_TIMEOUT')), d.left());
      t.unref();
    });
    const vek = await Promise.race([fetchVek(o, cert.report), vekTimer]);
    const verdict = verifySnpReport({
      report: cert.report,
      ...vek,
      ...(o.intermediate ? { intermediate: o.intermediate } : {}),
      ...(o.ark ? { ark: o.ark } : {}),
      ...(o.crl ? { crl: o.crl } : {}),
      ...(o.roots ? { roots: o.roots } : {}),
      ...(o.at ? { at: o.at } : {}),
      policy: { ...o.policy, measurements: [expected], reportData: alephKeyBoundReportData(cert.publicPoint) },
    });
    if (!verdict.ok) {
      let diagnosis: SnpDiagnosis | undefined;
      const measurementFailed = verdict.failed.some((c) => c.id === 'measurement');
      if (measurementFailed && verdict.report) diagnosis = diagnose(o, verdict.report.measurement);
      const what = verdict.failed.map((c) => `${c.id}: ${c.detail}`).join('; ');
      throw new AttestRefusedError(
        `the agent at ${host}:${port} is NOT trusted, nothing was sent (${what})${diagnosis ? `; diagnosis: ${diagnosis.summary}` : ''}`,
        verdict,
        diagnosis,
        measurementFailed ? 'ERR_ATTEST_MEASUREMENT' : 'ERR_ATTEST_REFUSED',
      );
    }
    const got = encodeGuestPolicy(verdict.report!.policy);
    if (o.expectedPolicy !== undefined && got !== o.expectedPolicy) {
      throw new AttestRefusedError(
        `the agent at ${host}:${port} is NOT trusted, nothing was sent (guest policy 0x${got.toString(16)}, expected 0x${o.expectedPolicy.toString(16)})`,
        verdict,
        undefined,
        'ERR_ATTEST_POLICY',
      );
    }
    if (socket.destroyed) throw new AttestTransportError(`${host}:${port}: the agent closed the connection during verification`);
    return {
      verdict,
      measurement: verdict.report!.measurement,
      expectedMeasurement: expected,
      publicPoint: cert.publicPoint,
      keyDigest: tlsKeyDigest(cert.publicPoint),
      certificateDer,
      socket,
    };
  } catch (e) {
    socket.destroy();
    throw e;
  }
}

function diagnose(o: AttestOptions, measurement: Buffer): SnpDiagnosis | undefined {
  const e = o.expected;
  try {
    return diagnoseSnpDigest({
      measurement,
      firmwares: [{ name: e.firmwareName ?? 'the expected firmware', image: e.firmware }, ...(o.otherFirmwares ?? [])],
      kernel: e.kernel ?? null,
      expected: {
        vcpus: e.vcpus,
        ...(e.vcpuSig !== undefined ? { vcpuSig: e.vcpuSig } : {}),
        ...(e.vcpuType !== undefined || e.vcpuSig === undefined ? { vcpuType: e.vcpuType ?? 'EPYC-v4' } : {}),
        guestFeatures: e.guestFeatures ?? 1n,
        vmmType: e.vmmType ?? 'qemu',
        kernelHashes: !!e.kernel,
      },
    });
  } catch {
    return undefined; // a diagnosis that cannot run never turns a refusal into anything else
  }
}

/**
 * attestAgent, then the owner-signed envelope over the verified connection.
 * Throws what attestAgent throws, AttestInjectError (the agent said no),
 * AttestTransportError; InjectEnvelopeError for bad secrets (before connecting).
 */
export async function attestAndInject(o: AttestOptions & { wallet: Wallet; secrets: Record<string, string> }): Promise<AttestResult> {
  // Check the secrets and the wallet before a connection exists.
  signInjectEnvelope(o.wallet, { secrets: o.secrets, tlsKeyDigest: Buffer.alloc(48) });
  const d = deadline(o.deadlineMs ?? 60_000);
  const a = await attestAgent({ ...o, deadlineMs: d.left() });
  const envelope = signInjectEnvelope(o.wallet, { secrets: o.secrets, tlsKeyDigest: a.keyDigest });
  const body = Buffer.from(JSON.stringify(envelope), 'utf8');
  const { host, port } = parseAgentUrl(o.url);
  try {
    const r = await postOn(a.socket, `${host.includes(':') ? `[${host}]` : host}:${port}`, body, d);
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.body.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    if (r.status !== 200) {
      const reason = (parsed as { error?: unknown } | undefined)?.error;
      throw new AttestInjectError(r.status, `the agent refused the secrets: HTTP ${r.status}${typeof reason === 'string' ? `: ${reason.slice(0, 200)}` : ''}`);
    }
    const injected = (parsed as { injected?: unknown } | undefined)?.injected;
    if (!Array.isArray(injected) || !injected.every((x) => typeof x === 'string'))
      throw new AttestInjectError(r.status, 'the agent answered 200 without the list of injected secrets');
    return { verdict: a.verdict, measurement: a.measurement, keyDigest: a.keyDigest, injected: injected as string[] };
  } finally {
    body.fill(0);
    a.socket.destroy();
  }
}

/** POST the envelope on the verified socket; bounded answer, within the deadline. */
function postOn(socket: tls.TLSSocket, hostHeader: string, body: Buffer, d: Deadline): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      method: 'POST',
      path: '/confidential/inject-secret',
      headers: { Host: hostHeader, 'Content-Type': 'application/json', 'Content-Length': body.length, Connection: 'close' },
      createConnection: () => socket,
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new AttestTransportError('the agent did not answer the inject request within the deadline', 'ERR_ATTEST_TIMEOUT'));
    }, d.left());
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new AttestTransportError(`inject request: ${e.code ?? e.message}`, 'ERR_ATTEST_TRANSPORT', { cause: e }));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 64 * 1024) {
          req.destroy();
          clearTimeout(timer);
          reject(new AttestTransportError('the agent answered with more than 64 KiB'));
          return;
        }
        chunks.push(c);
      });
      res.on('error', () => undefined);
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
      });
    });
    req.end(body);
  });
}
