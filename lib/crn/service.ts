/**
 * The reference CRN (compute resource node) service: aleph-vm's confidential
 * endpoints as one `(req, res) => void` handler any node:http server can mount.
 *
 *   GET  /about/certificates                                  PDH‖PEK‖OCA‖CEK (public)
 *   GET  /status/config                                       settings, confidential on/off (public)
 *   POST /control/allocate                                    X-Auth-Signature token (sevkit's stand-in for aleph's scheduler)
 *   POST /control/machine/{ref}/confidential/initialize       multipart `session`, `godh`        (owner)
 *   GET  /control/machine/{ref}/confidential/measurement      {"sev_info", "launch_measure"}     (owner)
 *   POST /control/machine/{ref}/confidential/inject_secret    {"packet_header", "secret"} → cont (owner)
 *
 * Status codes and bodies follow aleph-vm (shared/specs/aleph.md §A.1) where
 * aleph defines them; where aleph answers a wrong step with a 500 from QMP,
 * this service says 409 (wrong step) or 503 (QEMU not ready yet) instead.
 * `mode: 'aleph'` gives aleph's answers byte for byte (aleph-mode.ts has the
 * table); `extensions` mount more routes (allocations.ts: aleph's
 * /control/allocations and /control/allocation/notify); `authorize` decides
 * who besides the owner may act on a VM (authorize.ts).
 *
 * Per-VM lifecycle:  allocated → starting → awaiting-secret → injecting → running
 *                                  ↘ failed / stopped (initialize again)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthError, verifyAuthHeaders, type VerifiedCaller } from '../aleph/auth.js';
import type { CertificateSource, CrnVm, CrnPlatformCerts, VmLauncher } from './backend.js';
import { decodeStrictBase64 } from '../util/base64.js';
import { DEFAULT_BODY_TIMEOUT_MS, errorJson, HttpError, readJsonBody, sendError, sendJson, sendText } from './http.js';
import { DEFAULT_MULTIPART_LIMITS, readMultipart, type MultipartLimits } from './multipart.js';
import { isEthAddress, isSolAddress } from '../aleph/wallet.js';
import { writeFileAtomic } from '../util/fs.js';
import { modeResponses, sendModeJson, type CrnMode, type ModeResponses } from './aleph-mode.js';
import { exactOwner, type Authorizer } from './authorize.js';
import type { CrnExtension, CrnRoute } from './routes.js';

export const SEV_CERT_SIZE = 0x824;
export const CERT_CHAIN_SIZE = 4 * SEV_CERT_SIZE;
/** `sevctl session` output sizes, decoded: session blob and GODH certificate. */
export const SESSION_BLOB_SIZE = 128;
export const PACKET_HEADER_SIZE = 52;

/** A VM's state as the CRN tracks it, from allocation to running, failed or stopped. */
export type CrnVmState = 'allocated' | 'starting' | 'awaiting-secret' | 'injecting' | 'running' | 'failed' | 'stopped';

/** A VM the CRN is asked to host: its 64-hex ref, owner wallet, firmware, policy, vCPUs, memory (MiB) and disk. */
export interface AllocationRequest {
  ref: string;
  owner: string;
  firmware: string;
  policy: number;
  vcpus: number;
  memory_mb: number;
  disk?: string;
}

/**
 * Configuration of a CrnService: the signed domain, platform certificates, VM launcher, run directory,
 * authorization, limits (bytes, ms) and aleph compatibility mode.
 */
export interface CrnServiceOptions {
  /** Must equal the `domain` clients sign (aleph: DOMAIN_NAME). */
  domain: string;
  /** Platform certificates; null disables confidential computing (503 on /about/certificates). */
  certs: CertificateSource | null;
  launcher: VmLauncher;
  /** Holds sessions/<ref>/vm_session.b64, vm_godh.b64 and per-VM work dirs. */
  runDir: string;
  /** Token for POST /control/allocate; allocation is disabled without one. */
  allocationToken?: string;
  /** The certificate chain is re-exported after this long (and after invalidateCertificates()). */
  certTtlMs?: number;
  /** Replace the exported CEK (e.g. the ASK-signed one from AMD KDS, as sevctl does). */
  cekOverride?: Buffer;
  /** One line per request: method, path, status, time. Never headers or bodies. */
  log?: (line: string) => void;
  now?: () => Date;
  version?: string;
  /** Shown in /status/config so nobody mistakes a simulated platform for hardware. */
  platformKind?: 'hardware' | 'simulated';
  maxVms?: number;
  jsonBodyLimit?: number;
  multipartLimits?: MultipartLimits;
  /** 'sevkit' (default) or 'aleph': aleph-vm's exact status codes and bodies where they differ (aleph-mode.ts). */
  mode?: CrnMode;
  /** Who may act on a VM once authenticated; default the exact owner (authorize.ts also has aleph's delegation rule). */
  authorize?: Authorizer;
  /** Extra routes, e.g. aleph's allocation endpoints (allocations.ts). */
  extensions?: CrnExtension<CrnService>[];
  /** Every request body must arrive whole within this many ms (408 after). Default 20 s. */
  bodyTimeoutMs?: number;
}

interface VmRecord {
  ref: string;
  owner: string;
  firmware: string;
  policy: number;
  vcpus: number;
  memoryMb: number;
  disk?: string;
  state: CrnVmState;
  vm?: CrnVm;
  /** Why the last launch failed or the VM stopped (no secrets in it). */
  reason?: string;
  /** Increments on each initialize so a stale launch cannot overwrite a newer one. */
  generation: number;
}

/** One VM as the CRN reports it: ref, owner, state, policy and the last failure reason. */
export interface CrnVmSummary {
  ref: string;
  owner: string;
  state: CrnVmState;
  policy: number;
  reason?: string;
}

const REF_RE = /^[0-9a-f]{64}$/;
const MACHINE_RE = /^\/control\/machine\/([^/]*)\/confidential\/(initialize|measurement|inject_secret)$/;

/**
 * aleph's confidential-VM HTTP API as a node:http handler (mount `handler` on any server): certificates,
 * allocation (token), and initialize, measurement, inject_secret for the VM's owner (or whom `authorize` admits), authenticated by aleph's
 * signed headers.
 */
export class CrnService {
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  readonly #o: Required<Omit<CrnServiceOptions, 'allocationToken' | 'cekOverride' | 'log'>> &
    Pick<CrnServiceOptions, 'allocationToken' | 'cekOverride' | 'log'>;
  readonly #vms = new Map<string, VmRecord>();
  #certs?: { at: number; body: Promise<Buffer> };
  #closing = false;
  readonly #m: ModeResponses;
  readonly #routes = new Map<string, CrnRoute<CrnService>[]>();

  constructor(opts: CrnServiceOptions) {
    this.#o = {
      certTtlMs: 60_000,
      now: () => new Date(),
      version: '0.1.0',
      platformKind: 'hardware',
      maxVms: 256,
      jsonBodyLimit: 64 * 1024,
      multipartLimits: DEFAULT_MULTIPART_LIMITS,
      mode: 'sevkit',
      authorize: exactOwner,
      extensions: [],
      bodyTimeoutMs: DEFAULT_BODY_TIMEOUT_MS,
      ...opts,
    };
    this.#m = modeResponses(this.#o.mode);
    for (const r of this.#o.extensions.flatMap((x) => x.routes)) this.#routes.set(r.path, [...(this.#routes.get(r.path) ?? []), r]);
    fs.mkdirSync(path.join(this.#o.runDir, 'sessions'), { recursive: true, mode: 0o700 });
    this.handler = (req, res) => {
      void this.#handle(req, res);
    };
  }

  get domain(): string {
    return this.#o.domain;
  }

  /** Forget the cached chain (after `sevkit rotate`, `pek-gen`, `pdh-gen`, reset). */
  invalidateCertificates(): void {
    this.#certs = undefined;
  }

  /** The chain /about/certificates serves (cached); rejects when the platform cannot export it. */
  certificates(): Promise<Buffer> {
    if (!this.#o.certs) return Promise.reject(new Error('confidential computing is disabled'));
    return this.#certificateChain();
  }

  list(): CrnVmSummary[] {
    return [...this.#vms.values()].map((r) => ({ ref: r.ref, owner: r.owner, state: r.state, policy: r.policy, ...(r.reason ? { reason: r.reason } : {}) }));
  }

  state(ref: string): CrnVmState | undefined {
    return this.#vms.get(ref)?.state;
  }

  /** Registers a VM (what POST /control/allocate does after checking the token). */
  allocate(a: AllocationRequest): CrnVmSummary {
    const spec = validateAllocation(a);
    if (this.#closing) throw errorJson(503, 'Service shutting down');
    if (this.#vms.has(spec.ref)) throw errorJson(409, `VM ${spec.ref} is already allocated`);
    if (this.#vms.size >= this.#o.maxVms) throw errorJson(503, 'No capacity left on this CRN');
    const rec: VmRecord = {
      ref: spec.ref,
      owner: spec.owner,
      firmware: spec.firmware,
      policy: spec.policy,
      vcpus: spec.vcpus,
      memoryMb: spec.memory_mb,
      ...(spec.disk ? { disk: spec.disk } : {}),
      state: 'allocated',
      generation: 0,
    };
    this.#vms.set(spec.ref, rec);
    return { ref: rec.ref, owner: rec.owner, state: rec.state, policy: rec.policy };
  }

  /** Stops every VM and refuses new work. Safe to call twice. */
  async close(): Promise<void> {
    this.#closing = true;
    const stops = [...this.#vms.values()].map(async (r) => {
      const vm = r.vm;
      r.vm = undefined;
      r.state = 'stopped';
      if (vm) await vm.stop().catch(() => undefined);
    });
    await Promise.all(stops);
  }

  // ------------------------------------------------------------ dispatch

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const rawPath = (req.url ?? '/').split('?')[0]!;
    let urlPath: string;
    try {
      urlPath = decodeURIComponent(rawPath);
    } catch {
      urlPath = rawPath;
    }
    res.setHeader('Server', `sevkit-crn/${this.#o.version}`);
    res.setHeader('Access-Control-Allow-Origin', req.headers.origin ?? '*');
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // Path only: refs are public identifiers; bodies and auth headers are never logged.
      this.#o.log?.(`${req.method} ${clipPath(urlPath)} ${res.statusCode} ${ms.toFixed(1)}ms`);
    });
    try {
      await this.#route(req, res, urlPath);
    } catch (e) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const he = e instanceof HttpError ? e : e instanceof AuthError ? new HttpError(e.status, { error: e.reason }) : this.#m.internalError(e);
      if (he.text) sendError(res, he);
      else sendModeJson(this.#m, res, he.status, he.body, he.headers);
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse, p: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': req.headers['access-control-request-headers'] ?? '*',
        'Content-Length': 0,
      });
      res.end();
      return;
    }
    if (p === '/about/certificates') return this.#only(method, 'GET', () => this.#getCertificates(req, res));
    if (p === '/status/config') return this.#only(method, 'GET', () => this.#statusConfig(res));
    if (p === '/control/allocate') return this.#only(method, 'POST', () => this.#postAllocate(req, res));
    if (p === '/about/executions/list') return this.#only(method, 'GET', () => this.#executions(res));
    const m = MACHINE_RE.exec(p);
    if (m) {
      const op = m[2] as 'initialize' | 'measurement' | 'inject_secret';
      const want = op === 'measurement' ? 'GET' : 'POST';
      return this.#only(method, want, () => this.#machine(req, res, p, m[1]!, op));
    }
    const extra = this.#routes.get(p);
    if (extra) {
      const r = extra.find((x) => x.method === method) ?? extra[0]!;
      return this.#only(method, r.method, () => r.handle(req, res, { service: this, json: (s, b, h) => sendModeJson(this.#m, res, s, b, h) }));
    }
    throw this.#m.notFound();
  }

  async #only(method: string, want: string, fn: () => Promise<void>): Promise<void> {
    if (method !== want && !(want === 'GET' && method === 'HEAD')) throw this.#m.wrongMethod(want);
    await fn();
  }

  // ------------------------------------------------------------ public endpoints

  #certificateChain(): Promise<Buffer> {
    const now = Date.now();
    if (this.#certs && now - this.#certs.at < this.#o.certTtlMs) return this.#certs.body;
    const source = this.#o.certs!;
    // One export in flight at a time: concurrent first requests share it.
    const body = source.exportCerts().then((c: CrnPlatformCerts) => {
      const parts = [c.pdh, c.pek, c.oca, this.#o.cekOverride ?? c.cek];
      for (const [i, b] of parts.entries()) {
        if (!Buffer.isBuffer(b) || b.length !== SEV_CERT_SIZE) {
          throw new Error(`platform exported a ${['PDH', 'PEK', 'OCA', 'CEK'][i]} of ${b?.length ?? 0} bytes, expected ${SEV_CERT_SIZE}`);
        }
      }
      return Buffer.concat(parts);
    });
    const entry = { at: now, body };
    this.#certs = entry;
    body.catch(() => {
      if (this.#certs === entry) this.#certs = undefined;
    });
    return body;
  }

  async #getCertificates(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#o.certs) throw errorJson(503, 'Confidential computing setting not enabled on that server');
    const chain = await this.#certificateChain();
    const etag = `"${crypto.createHash('sha256').update(chain).digest('hex').slice(0, 32)}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { ETag: etag });
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': chain.length, ETag: etag, 'Cache-Control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : chain);
  }

  async #statusConfig(res: ServerResponse): Promise<void> {
    sendJson(res, 200, {
      DOMAIN_NAME: this.#o.domain,
      version: `sevkit-crn/${this.#o.version}`,
      computing: {
        ENABLE_QEMU_SUPPORT: true,
        INSTANCE_DEFAULT_HYPERVISOR: 'qemu',
        ENABLE_CONFIDENTIAL_COMPUTING: this.#o.certs !== null,
        ENABLE_GPU_SUPPORT: false,
      },
      sevkit: { platform: this.#o.platformKind, vm_launcher: this.#o.launcher.kind ?? 'qemu' },
    });
  }

  async #executions(res: ServerResponse): Promise<void> {
    const out: Record<string, unknown> = {};
    for (const r of this.#vms.values()) out[r.ref] = { awaiting_confidential_init: r.state === 'allocated' || r.state === 'failed' || r.state === 'stopped', state: r.state };
    sendModeJson(this.#m, res, 200, out);
  }

  async #postAllocate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const expected = this.#o.allocationToken;
    if (!expected) throw errorJson(403, 'Allocation disabled: no allocation token configured (SEVKIT_ALLOCATION_TOKEN)');
    const given = req.headers['x-auth-signature'];
    if (typeof given !== 'string' || !tokenEquals(given, expected)) {
      throw new HttpError(401, 'Authentication token received is invalid', true);
    }
    const parsed = await readJsonBody(req, { limit: 16 * 1024, timeoutMs: this.#o.bodyTimeoutMs });
    const summary = this.allocate(parsed as AllocationRequest);
    sendJson(res, 200, { success: true, ...summary });
  }

  // ------------------------------------------------------------ owner endpoints

  async #machine(req: IncomingMessage, res: ServerResponse, urlPath: string, ref: string, op: 'initialize' | 'measurement' | 'inject_secret'): Promise<void> {
    // aleph's order: authenticate, then the ref, then the pool, then the owner.
    const caller: VerifiedCaller = verifyAuthHeaders({ method: req.method ?? 'GET', path: urlPath, headers: req.headers }, { domain: this.#o.domain, now: this.#o.now() });
    if (!REF_RE.test(ref)) throw errorJson(400, `Invalid ref: '${ref.slice(0, 80)}'`);
    let rec = this.#vms.get(ref);
    if (!rec) {
      // The allocation may still be registering (aleph #985: initialize raced VM creation).
      await Promise.all(this.#o.extensions.map((x) => x.pending?.(ref) ?? Promise.resolve()));
      rec = this.#vms.get(ref);
    }
    if (!rec) throw errorJson(404, `No virtual machine with ref ${ref}`);
    if (!(await this.#authorized(caller, rec))) throw new HttpError(403, 'Unauthorized sender', true);
    if (op === 'initialize') return this.#initialize(req, res, rec);
    if (op === 'measurement') return this.#measurement(res, rec);
    return this.#injectSecret(req, res, rec);
  }

  /** The configured Authorizer; one that throws refuses. */
  async #authorized(caller: VerifiedCaller, rec: VmRecord): Promise<boolean> {
    try {
      return (await this.#o.authorize({ owner: rec.owner, caller, ref: rec.ref })) === true;
    } catch {
      return false;
    }
  }

  async #initialize(req: IncomingMessage, res: ServerResponse, rec: VmRecord): Promise<void> {
    if (this.#closing) throw errorJson(503, 'Service shutting down');
    if (rec.state !== 'allocated' && rec.state !== 'failed' && rec.state !== 'stopped') {
      // aleph: 400 vm_running; a wrong step here is a conflict with the VM's state (sevkit: 409).
      throw this.#m.alreadyInitialized();
    }
    const parts = await readMultipart(req, this.#o.multipartLimits, { timeoutMs: this.#o.bodyTimeoutMs });
    // Validate both before writing anything (aleph writes the session before checking godh).
    const session = parts.get('session');
    if (!session) throw new HttpError(400, { code: 'field_missing', description: 'Session field is missing' });
    const godh = parts.get('godh');
    if (!godh) throw new HttpError(400, { code: 'field_missing', description: 'godh field is missing. Please provide a GODH file' });
    const sessionText = session.toString('latin1').trimEnd();
    const godhText = godh.toString('latin1').trimEnd();
    if (decodeStrictBase64(sessionText)?.length !== SESSION_BLOB_SIZE) {
      throw new HttpError(400, { code: 'field_invalid', description: `session must be the base64 of a ${SESSION_BLOB_SIZE}-byte launch session blob` });
    }
    if (decodeStrictBase64(godhText)?.length !== SEV_CERT_SIZE) {
      throw new HttpError(400, { code: 'field_invalid', description: `godh must be the base64 of a ${SEV_CERT_SIZE}-byte SEV certificate` });
    }
    // Re-check: the upload was awaited and another initialize may have won the race.
    if (rec.state !== 'allocated' && rec.state !== 'failed' && rec.state !== 'stopped') {
      throw this.#m.alreadyInitialized();
    }
    rec.state = 'starting';
    rec.reason = undefined;
    const generation = ++rec.generation;
    const dir = path.join(this.#o.runDir, 'sessions', rec.ref);
    const workDir = path.join(this.#o.runDir, 'vms', rec.ref);
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
      writeFileAtomic(path.join(dir, 'vm_session.b64'), sessionText, 0o600);
      writeFileAtomic(path.join(dir, 'vm_godh.b64'), godhText, 0o600);
    } catch (e) {
      rec.state = 'failed';
      rec.reason = 'could not store the session files';
      throw e;
    }
    this.#startVm(rec, generation, path.join(dir, 'vm_session.b64'), path.join(dir, 'vm_godh.b64'), workDir);
    sendText(res, 200, `Started VM with ref ${rec.ref}`);
  }

  #startVm(rec: VmRecord, generation: number, sessionFile: string, godhFile: string, workDir: string): void {
    const current = (): boolean => rec.generation === generation && !this.#closing;
    void (async () => {
      let vm: CrnVm | undefined;
      try {
        vm = await this.#o.launcher.launch({
          ref: rec.ref,
          firmware: rec.firmware,
          policy: rec.policy,
          vcpus: rec.vcpus,
          memoryMb: rec.memoryMb,
          ...(rec.disk ? { disk: rec.disk } : {}),
          sessionFile,
          godhFile,
          workDir,
        });
        if (!current()) {
          await vm.stop().catch(() => undefined);
          return;
        }
        rec.vm = vm;
        vm.onExit?.((reason) => {
          if (rec.vm !== vm) return;
          rec.vm = undefined;
          rec.state = rec.state === 'running' ? 'stopped' : 'failed';
          rec.reason = reason;
        });
        await vm.ready;
        if (current() && rec.state === 'starting') rec.state = 'awaiting-secret';
      } catch (e) {
        if (!current()) return;
        rec.state = 'failed';
        rec.reason = `VM launch failed: ${(e as Error)?.message ?? String(e)}`;
        // A session made for a stale PDH fails here; re-export the chain next time.
        this.invalidateCertificates();
        if (vm) {
          rec.vm = undefined;
          await vm.stop().catch(() => undefined);
        }
      }
    })();
  }

  async #measurement(res: ServerResponse, rec: VmRecord): Promise<void> {
    if (rec.state === 'starting') throw this.#m.qemuNotReady();
    if (rec.state === 'allocated' || rec.state === 'failed' || rec.state === 'stopped' || !rec.vm) throw this.#m.measurementNotRunning(rec.state, rec.reason, rec.ref);
    const m = await rec.vm.measurement();
    sendModeJson(this.#m, res, 200, { sev_info: m.sevInfo, launch_measure: m.launchMeasure });
  }

  async #injectSecret(req: IncomingMessage, res: ServerResponse, rec: VmRecord): Promise<void> {
    const parsed = await readJsonBody(req, { limit: this.#o.jsonBodyLimit, timeoutMs: this.#o.bodyTimeoutMs });
    const p = parsed as { packet_header?: unknown; secret?: unknown };
    if (!p || typeof p !== 'object' || typeof p.packet_header !== 'string' || typeof p.secret !== 'string') {
      throw errorJson(400, 'Body must be {"packet_header": <base64>, "secret": <base64>}');
    }
    const header = decodeStrictBase64(p.packet_header);
    if (!header || header.length !== PACKET_HEADER_SIZE) throw errorJson(400, `packet_header must be the base64 of ${PACKET_HEADER_SIZE} bytes`);
    const secret = decodeStrictBase64(p.secret);
    // Any length: the firmware decides, as on aleph-vm (aleph's SDK sizes its table by characters, not bytes).
    if (!secret || secret.length === 0) throw errorJson(400, 'secret must be the base64 of a non-empty encrypted secret table');
    header.fill(0);
    secret.fill(0);

    if (rec.state === 'starting') throw this.#m.qemuNotReady();
    if (rec.state !== 'awaiting-secret' || !rec.vm) throw this.#m.injectNotAwaiting(rec.state, rec.ref);
    const vm = rec.vm;
    rec.state = 'injecting';
    try {
      await vm.injectSecret({ packetHeader: p.packet_header, secret: p.secret });
    } catch (e) {
      // The guest has not run: the owner may retry with a correct packet (aleph #668).
      if (rec.vm === vm && rec.state === 'injecting') {
        rec.state = 'awaiting-secret';
        throw this.#m.secretRefused(e, rec.ref);
      }
      throw e;
    }
    try {
      await vm.cont();
      if (rec.vm === vm) rec.state = 'running';
      const status = this.#m.runStatus(await vm.queryStatus());
      sendModeJson(this.#m, res, 200, { status });
    } catch (e) {
      if (rec.vm === vm && rec.state === 'injecting') {
        rec.state = 'failed';
        rec.reason = 'VM failed to resume after the secret was injected';
      }
      throw e;
    }
  }
}

/** Constant-time token comparison; hashing first hides the length too. */
export function tokenEquals(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given, 'utf8').digest();
  const b = crypto.createHash('sha256').update(expected, 'utf8').digest();
  return crypto.timingSafeEqual(a, b);
}

function validateAllocation(a: unknown): AllocationRequest {
  const bad = (m: string): never => {
    throw errorJson(400, m);
  };
  if (!a || typeof a !== 'object' || Array.isArray(a)) bad('Allocation body must be a JSON object');
  const o = a as Record<string, unknown>;
  if (typeof o.ref !== 'string' || !REF_RE.test(o.ref)) bad('ref must be 64 lower-case hex digits');
  if (typeof o.owner !== 'string' || !(isEthAddress(o.owner) || isSolAddress(o.owner))) bad('owner must be an Ethereum (0x…) or Solana (base58) address');
  if (typeof o.firmware !== 'string' || !path.isAbsolute(o.firmware)) bad('firmware must be an absolute path');
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(o.firmware as string);
  } catch {
    st = undefined;
  }
  if (!st?.isFile()) bad(`firmware ${o.firmware as string} is not a readable file`);
  const int = (k: string, min: number, max: number): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`${k} must be an integer in [${min}, ${max}]`);
    return v as number;
  };
  const policy = int('policy', 0, 0xffffffff);
  const vcpus = int('vcpus', 1, 512);
  const memory = int('memory_mb', 16, 4 * 1024 * 1024);
  if (o.disk !== undefined && (typeof o.disk !== 'string' || !path.isAbsolute(o.disk))) bad('disk must be an absolute path');
  return {
    ref: o.ref as string,
    owner: o.owner as string,
    firmware: o.firmware as string,
    policy,
    vcpus,
    memory_mb: memory,
    ...(typeof o.disk === 'string' ? { disk: o.disk } : {}),
  };
}

/** One log line per request, whatever the path holds: control characters never reach the log. */
export function clipPath(p: string): string {
  const printable = p.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 200 ? `${printable.slice(0, 200)}…` : printable;
}
