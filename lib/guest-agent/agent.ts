/**
 * The SEV-SNP guest agent (runs inside the VM), aleph-compatible and safer
 * (shared/specs/snp-launch.md §4.3):
 *
 * - at start a fresh P-384 TLS key, one report whose REPORT_DATA binds it with
 *   aleph's scheme, a self-signed certificate carrying the report (snp/ratls.ts);
 * - `GET /.well-known/attestation?nonce=HEX` (1..64 bytes): a fresh report
 *   binding the served key and the nonce, as aleph's JSON;
 * - `POST /confidential/inject-secret`: ONLY an envelope signed by the VM's
 *   owner for this TLS key (aleph/snp-inject.ts), fresh and never seen before
 *   in this run; each secret written 0600 atomically into the secrets directory.
 *
 * Unlike aleph's dev snapshot there is no unauthenticated one-shot slot a host
 * could squat, and no reverse proxy of other paths (404). Every request has a
 * deadline (TLS handshake, headers, whole body) and a bounded body; secrets are
 * never logged (events carry names and statuses only).
 */
import crypto from 'node:crypto';
import https from 'node:https';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { SevkitError } from '../errors.js';
import { ensurePrivateDir, writeFileAtomic } from '../util/fs.js';
import { errorJson, HttpError, readJsonBody, sendError, sendJson } from '../util/http-body.js';
import { InjectEnvelopeError, MAX_INJECT_BODY_BYTES, INJECT_WINDOW_MS, verifyInjectEnvelope } from '../aleph/snp-inject.js';
import { isEthAddress } from '../aleph/wallet.js';
import { requestReport } from '../snp/guest.js';
import { alephFreshReportData, alephKeyBoundReportData, buildAttestedCertificate, encodeAttestationJson, p384PublicPoint, tlsKeyDigest } from '../snp/ratls.js';
import { REPORT_SIZE } from '../snp/report.js';

/** aleph's agent port. */
export const GUEST_AGENT_PORT = 8443;
/** Longest nonce a fresh report binds, bytes. */
export const MAX_NONCE_BYTES = 64;

/** Asks the platform for a report over 64 bytes of REPORT_DATA; returns the 1184-byte report. */
export type ReportSource = (reportData: Buffer) => Promise<Buffer>;

/** Something the agent did, for a log (no secret values, ever). */
export interface GuestAgentEvent {
  kind: 'started' | 'attestation' | 'inject' | 'refused' | 'error';
  /** HTTP status answered, when there was a request. */
  status?: number;
  /** One line: what happened (secret names at most). */
  detail: string;
}

/** Options of GuestAgent.start. */
export interface GuestAgentOptions {
  /** The VM owner's Ethereum address; only envelopes it signed are accepted. */
  owner: string;
  /** Directory the secrets go to (created 0700; must be this user's and private). */
  secretsDir: string;
  /** Listen address (default 0.0.0.0). */
  host?: string;
  /** Port (default 8443; 0 = any free one). */
  port?: number;
  /** Where reports come from (default: /dev/sev-guest or configfs-tsm via snp/guest.ts requestReport). */
  reportSource?: ReportSource;
  /** Guest device for the default source (default /dev/sev-guest). */
  device?: string;
  /** configfs-tsm report directory for the default source. */
  tsmRoot?: string;
  /** Deadline for the TLS handshake, ms (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Deadline for a request's headers, ms (default 10 s). */
  headersTimeoutMs?: number;
  /** Deadline for a whole request body, ms (default 20 s). */
  bodyTimeoutMs?: number;
  /** Deadline for one report from the platform, ms (default 30 s). */
  reportTimeoutMs?: number;
  /** Envelope freshness window, ms (default 5 minutes). */
  windowMs?: number;
  /** Clock, ms (tests). */
  now?: () => number;
  /** Event sink (default none). */
  onEvent?: (e: GuestAgentEvent) => void;
}

/** The agent could not start (bad options, no report, port in use). */
export class GuestAgentError extends SevkitError {
  constructor(message: string, code = 'ERR_GUEST_AGENT', options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Counters for operators and tests. */
export interface GuestAgentStats {
  /** POSTs to the inject endpoint that reached the handler (any outcome). */
  injectRequests: number;
  /** Envelopes accepted and written. */
  injected: number;
  /** Fresh reports served. */
  attestations: number;
}

const MAX_IN_FLIGHT_REPORTS = 4;

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>(
        (_r, reject) => (t = setTimeout(() => reject(new GuestAgentError(`${what} did not finish within ${ms} ms`, 'ERR_GUEST_AGENT_TIMEOUT')), ms)),
      ),
    ]);
  } finally {
    clearTimeout(t);
  }
}

/** A running agent. */
export class GuestAgent {
  /** The certificate served (DER), carrying the boot report. */
  readonly certificateDer: Buffer;
  /** The boot report (REPORT_DATA = aleph's key binding). */
  readonly report: Buffer;
  /** The TLS key's 97-byte point. */
  readonly publicPoint: Buffer;
  /** SHA-384 of the point: what an owner's envelope names. */
  readonly keyDigest: Buffer;
  /** Counters. */
  readonly stats: GuestAgentStats = { injectRequests: 0, injected: 0, attestations: 0 };
  private readonly seen = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private inFlight = 0;
  private closed = false;

  private constructor(
    private readonly server: https.Server,
    private readonly o: Required<Pick<GuestAgentOptions, 'owner' | 'secretsDir'>> & GuestAgentOptions,
    private readonly source: ReportSource,
    cert: Buffer,
    report: Buffer,
    point: Buffer,
  ) {
    this.certificateDer = cert;
    this.report = report;
    this.publicPoint = point;
    this.keyDigest = tlsKeyDigest(point);
  }

  /**
   * Make the key, get the boot report, build the certificate and listen.
   * Throws GuestAgentError (bad owner, report source failure, listen error)
   * or the report source's own error (SnpGuestError).
   */
  static async start(opts: GuestAgentOptions): Promise<GuestAgent> {
    if (!isEthAddress(opts.owner))
      throw new GuestAgentError(`owner must be an Ethereum address (0x and 40 hex digits), got '${String(opts.owner).slice(0, 60)}'`, 'ERR_GUEST_AGENT_OWNER');
    ensurePrivateDir(opts.secretsDir, 'the secrets directory');
    const source: ReportSource =
      opts.reportSource ??
      (async (rd) =>
        (await requestReport({ reportData: rd }, { ...(opts.device ? { device: opts.device } : {}), ...(opts.tsmRoot ? { tsm: { root: opts.tsmRoot } } : {}) }))
          .report);
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const point = p384PublicPoint(privateKey);
    const report = await withDeadline(source(alephKeyBoundReportData(point)), opts.reportTimeoutMs ?? 30_000, 'the boot attestation report');
    if (report.length !== REPORT_SIZE) throw new GuestAgentError(`the report source gave ${report.length} bytes, not a ${REPORT_SIZE}-byte report`);
    const cert = buildAttestedCertificate({ privateKey, report });
    const server = https.createServer({
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      cert: cert.pem,
      minVersion: 'TLSv1.3',
      handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
      headersTimeout: opts.headersTimeoutMs ?? 10_000,
      requestTimeout: (opts.headersTimeoutMs ?? 10_000) + (opts.bodyTimeoutMs ?? 20_000),
      keepAliveTimeout: 5_000,
    });
    const agent = new GuestAgent(server, opts, source, cert.der, report, point);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      agent.handle(req, res).catch((e: unknown) => agent.internal(res, e));
    });
    server.on('connection', (s: Socket) => {
      agent.sockets.add(s);
      s.on('close', () => agent.sockets.delete(s));
    });
    // A client that fails the handshake, or garbles HTTP, loses its connection and nothing else.
    server.on('tlsClientError', (_e, s) => s.destroy());
    server.on('clientError', (_e, s) => s.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(
          new GuestAgentError(
            `cannot listen on ${opts.host ?? '0.0.0.0'}:${opts.port ?? GUEST_AGENT_PORT}: ${(e as NodeJS.ErrnoException).code ?? e.message}`,
            'ERR_GUEST_AGENT_LISTEN',
            { cause: e },
          ),
        ),
      );
      server.listen(opts.port ?? GUEST_AGENT_PORT, opts.host ?? '0.0.0.0', () => resolve());
    });
    server.on('error', (e) => agent.event({ kind: 'error', detail: `server: ${e.message}` }));
    agent.event({
      kind: 'started',
      detail: `listening on ${agent.address().host}:${agent.address().port}, TLS key sha384 ${agent.keyDigest.toString('hex').slice(0, 16)}…, owner ${opts.owner}`,
    });
    return agent;
  }

  /** Where it listens. */
  address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Stop listening and drop every connection (pending requests end). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await done;
  }

  private event(e: GuestAgentEvent): void {
    try {
      this.o.onEvent?.(e);
    } catch {
      // a failing log sink must not take the agent down
    }
  }

  private internal(res: ServerResponse, e: unknown): void {
    this.event({ kind: 'error', status: 500, detail: e instanceof SevkitError ? e.message : 'internal error' });
    if (!res.headersSent) sendError(res, errorJson(500, e instanceof SevkitError ? e.message : 'internal error', { Connection: 'close' }));
    else res.destroy();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.on('error', () => res.destroy());
    const url = new URL(req.url ?? '/', 'https://agent.invalid');
    try {
      if (url.pathname === '/.well-known/attestation') {
        if (req.method !== 'GET') throw errorJson(405, 'only GET', { Allow: 'GET' });
        req.resume();
        await this.attestation(url, res);
        return;
      }
      if (url.pathname === '/confidential/inject-secret') {
        if (req.method !== 'POST') {
          req.resume();
          throw errorJson(405, 'only POST', { Allow: 'POST' });
        }
        await this.inject(req, res);
        return;
      }
      req.resume();
      throw errorJson(404, 'not found');
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      const msg = (e.body as { error?: string } | undefined)?.error ?? '';
      this.event({ kind: 'refused', status: e.status, detail: `${req.method ?? '?'} ${url.pathname}: ${msg}` });
      sendError(res, e);
    }
  }

  private async attestation(url: URL, res: ServerResponse): Promise<void> {
    const n = url.searchParams.getAll('nonce');
    if (n.length !== 1 || !/^(?:[0-9a-fA-F]{2}){1,64}$/.test(n[0]!)) throw errorJson(400, `nonce must be 1..${MAX_NONCE_BYTES} bytes of hex`);
    if (this.inFlight >= MAX_IN_FLIGHT_REPORTS) throw errorJson(503, 'too many attestation requests at once', { 'Retry-After': '1' });
    this.inFlight++;
    let report: Buffer;
    try {
      report = await withDeadline(
        this.source(alephFreshReportData(this.publicPoint, Buffer.from(n[0]!, 'hex'))),
        this.o.reportTimeoutMs ?? 30_000,
        'a fresh report',
      );
    } catch (e) {
      throw errorJson(500, `no report: ${e instanceof SevkitError ? e.message : 'the platform failed'}`);
    } finally {
      this.inFlight--;
    }
    this.stats.attestations++;
    const body = encodeAttestationJson(report);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
    this.event({ kind: 'attestation', status: 200, detail: 'fresh report served' });
  }

  private async inject(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.injectRequests++;
    const body = await readJsonBody(req, { limit: MAX_INJECT_BODY_BYTES, timeoutMs: this.o.bodyTimeoutMs ?? 20_000 });
    const now = (this.o.now ?? Date.now)();
    const window = this.o.windowMs ?? INJECT_WINDOW_MS;
    let v;
    try {
      v = verifyInjectEnvelope(body, { owner: this.o.owner, tlsKeyDigest: this.keyDigest, now, windowMs: window });
    } catch (e) {
      if (e instanceof InjectEnvelopeError) throw errorJson(e.status, e.message);
      throw e;
    }
    // Ids older than twice the window can no longer pass the freshness check: forget them.
    for (const [id, at] of this.seen) if (now - at > 2 * window) this.seen.delete(id);
    if (this.seen.has(v.id)) throw errorJson(409, 'this envelope was already used (replay)');
    this.seen.set(v.id, now);
    const names = Object.keys(v.secrets).sort();
    try {
      for (const name of names) writeFileAtomic(path.join(this.o.secretsDir, name), v.secrets[name]!, 0o600);
    } catch (e) {
      throw errorJson(500, `cannot write the secrets: ${(e as NodeJS.ErrnoException).code ?? 'I/O error'}`);
    }
    this.stats.injected++;
    sendJson(res, 200, { injected: names });
    this.event({ kind: 'inject', status: 200, detail: `wrote ${names.join(', ')} (signed by ${v.signer})` });
  }
}
