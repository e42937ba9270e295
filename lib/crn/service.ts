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
 *
 * Each VM's record (machines/<ref>.json: ref, owner, allocation, state) is
 * rewritten durably at every state change, so a CRN that crashed or was
 * restarted on the same run dir serves the VMs still running: on start the
 * launcher adopts them (VmLauncher.adopt) and the records of dead ones become
 * 'stopped' with their files removed. close() stops every VM and leaves the run
 * dir empty; close({ keepVms }) leaves them running for the next start.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthError, SignedPubKeyCache, verifyAuthHeadersAsync, type VerifiedCaller } from '../aleph/auth.js';
import { EthRecoverWorker } from '../aleph/recover-worker.js';
import type { AdoptedVm, CertificateSource, CrnVm, CrnPlatformCerts, VmLauncher } from './backend.js';
import { decodeStrictBase64 } from '../util/base64.js';
import { SEV_CERT_SIZE } from '../certs/constants.js';
import { SESSION_SIZE } from '../launch/session-crypto.js';
import { SECRET_PACKET_HEADER_SIZE } from '../launch/secret.js';
import { DEFAULT_BODY_TIMEOUT_MS, errorJson, hostError, HttpError, readJsonBody, sendError, sendJson, sendText } from './http.js';
import { DEFAULT_MULTIPART_LIMITS, readMultipart, type MultipartLimits } from './multipart.js';
import { isEthAddress, isSolAddress } from '../aleph/wallet.js';
import { DurableFileQueue, ensurePrivateDir, writeFileAtomicAsync } from '../util/fs.js';
import { modeResponses, sendModeJson, type CrnMode, type ModeResponses } from './aleph-mode.js';
import { exactOwner, type Authorizer } from './authorize.js';
import type { CrnExtension, CrnRoute } from './routes.js';
import { PortForwarder, type PortForwarderOptions } from './forward.js';

/** A VM's state as the CRN tracks it, from allocation to running, failed or stopped. */
export type CrnVmState = 'allocated' | 'starting' | 'awaiting-secret' | 'injecting' | 'running' | 'failed' | 'stopped';

/** The confidential mode of a VM: SEV/SEV-ES (host-injected secret, the default) or SEV-SNP (the guest attests itself). */
export type CrnTeeMode = 'sev' | 'sev_snp';

/**
 * A VM the CRN is asked to host: its 64-hex ref, owner wallet, firmware, policy, vCPUs, memory (MiB) and disk;
 * `tee: 'sev_snp'` (aleph's `trusted_execution.mode`) makes an SEV-SNP instance, started at allocation with
 * optional measured direct boot (kernel, initrd, append).
 */
export interface AllocationRequest {
  ref: string;
  owner: string;
  firmware: string;
  policy: number;
  vcpus: number;
  memory_mb: number;
  disk?: string;
  tee?: CrnTeeMode;
  kernel?: string;
  initrd?: string;
  append?: string;
}

/** The guest agent port aleph's SNP instances serve attested TLS on (published as mapped_ports). */
export const SNP_AGENT_PORT = 8443;

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
  /** SEV-SNP agent port forwarding: host address (default 127.0.0.1) and per-VM limits (forward.ts). */
  forward?: Omit<PortForwarderOptions, 'target' | 'listenPort' | 'log'>;
}

interface VmRecord {
  ref: string;
  owner: string;
  firmware: string;
  policy: number;
  vcpus: number;
  memoryMb: number;
  disk?: string;
  tee: CrnTeeMode;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** SNP: the host port forwarded to the guest agent (kept across restarts: rebound when free). */
  port?: number;
  forwarder?: PortForwarder;
  state: CrnVmState;
  vm?: CrnVm;
  /** Why the last launch failed or the VM stopped (no secrets in it). */
  reason?: string;
  /** Increments on each initialize so a stale launch cannot overwrite a newer one. */
  generation: number;
  /** Measurement requests held open (?wait=S) until the VM leaves 'starting'. */
  waiters?: Set<() => void>;
}

/** Longest `?wait=` a measurement request may ask for (PROTOCOL: 1..120 s). */
export const MAX_MEASUREMENT_WAIT_S = 120;
/** Measurement requests one VM may hold open at once; more are answered at once. */
const MAX_WAITERS_PER_VM = 16;

/** What a CrnService found in its run dir on start (restored()). */
export interface CrnRestoreReport {
  /** Refs whose VM was still running and is served again (awaiting-secret ones can still be measured and injected). */
  adopted: string[];
  /** Refs whose VM had died with the earlier process: 'stopped', files removed, the owner may initialize again. */
  stopped: string[];
  /** Allocations without a VM, restored as they were. */
  allocated: string[];
  /** Time from the constructor to the end of adoption. */
  ms: number;
}

/** One VM as the CRN reports it: ref, owner, state, policy and the last failure reason. */
export interface CrnVmSummary {
  ref: string;
  owner: string;
  state: CrnVmState;
  policy: number;
  /**
   * The vCPU count and -cpu model the VM is launched with, published so an SEV-ES owner can predict the
   * VMSAs (an input only: the measurement still decides). cpu is absent when QEMU's default applies.
   */
  vcpus?: number;
  cpu?: string;
  reason?: string;
  /** Present for SEV-SNP instances. */
  tee?: 'sev_snp';
  /** SNP: the host port that reaches the guest's attestation agent (while it runs). */
  port?: number;
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
  readonly #restoring: Promise<CrnRestoreReport>;
  readonly #m: ModeResponses;
  readonly #routes = new Map<string, CrnRoute<CrnService>[]>();
  /** Verified wallet-signed keys: a request then costs one P-256 verify, not a secp256k1 recovery. */
  readonly #keys = new SignedPubKeyCache();
  // A new owner's wallet signature (pure-JS secp256k1, ~2 ms) is checked on a worker thread.
  readonly #recoverer = new EthRecoverWorker();
  readonly #records = new DurableFileQueue();
  readonly #pendingFiles = new Set<Promise<unknown>>();

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
      forward: {},
      ...opts,
    };
    this.#m = modeResponses(this.#o.mode);
    for (const r of this.#o.extensions.flatMap((x) => x.routes)) this.#routes.set(r.path, [...(this.#routes.get(r.path) ?? []), r]);
    // Session blobs and the records go here: refuse a directory another user could swap them in (UnsafeDirError).
    ensurePrivateDir(this.#o.runDir);
    fs.mkdirSync(path.join(this.#o.runDir, 'sessions'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(this.#o.runDir, 'machines'), { recursive: true, mode: 0o700 });
    this.#restoring = this.#restore();
    this.#restoring.catch(() => undefined);
    this.handler = (req, res) => {
      void this.#handle(req, res);
    };
  }

  /**
   * Settles once the records an earlier process left in the run dir are
   * restored and their still-running VMs adopted; requests wait for it. Rejects
   * when the launcher cannot adopt (e.g. another CRN holds the run dir).
   */
  restored(): Promise<CrnRestoreReport> {
    return this.#restoring;
  }

  async #restore(): Promise<CrnRestoreReport> {
    const t0 = performance.now();
    const report: CrnRestoreReport = { adopted: [], stopped: [], allocated: [], ms: 0 };
    const dir = path.join(this.#o.runDir, 'machines');
    const recs: VmRecord[] = [];
    const junk: string[] = [];
    for (const f of fs.readdirSync(dir)) {
      const file = path.join(dir, f);
      const rec = /^[0-9a-f]{64}\.json$/.test(f) ? readMachineRecord(file) : undefined;
      if (!rec || `${rec.ref}.json` !== f) junk.push(file);
      else recs.push(rec);
    }
    const live = recs.filter((r) => r.state === 'starting' || r.state === 'awaiting-secret' || r.state === 'injecting' || r.state === 'running');
    // The launcher takes the run dir's lock here (a CRN still running on it refuses this one): only then is
    // anything removed — temp files of an interrupted write, anything that is not a record of ours.
    const adopted: Map<string, AdoptedVm> = (await this.#o.launcher.adopt?.(live.map((r) => r.ref))) ?? new Map<string, AdoptedVm>();
    for (const f of junk) fs.rmSync(f, { force: true, recursive: true });
    for (const rec of recs) {
      this.#vms.set(rec.ref, rec);
      const a = adopted.get(rec.ref);
      if (a) {
        rec.state = a.state;
        rec.vm = a.vm;
        this.#watch(rec, a.vm);
        report.adopted.push(rec.ref);
        if (rec.tee === 'sev_snp') await this.#forwardAgent(rec, a.vm);
      } else if (live.includes(rec)) {
        rec.state = 'stopped';
        rec.reason = 'QEMU was no longer running when the CRN restarted';
        await this.#removeVmFiles(rec.ref).catch(() => undefined);
        report.stopped.push(rec.ref);
      } else report.allocated.push(rec.ref);
      this.#saveQuietly(rec);
    }
    report.ms = performance.now() - t0;
    return report;
  }

  /**
   * Writes machines/<ref>.json (temp + fsync + rename, 0600) off the event loop, in order per VM (a
   * burst of state changes costs one write). Rejects with the fs error (ENOSPC → 507 in #handle).
   */
  #save(rec: VmRecord): Promise<void> {
    const data: MachineRecordFile = {
      version: 1,
      ref: rec.ref,
      owner: rec.owner,
      firmware: rec.firmware,
      policy: rec.policy,
      vcpus: rec.vcpus,
      memoryMb: rec.memoryMb,
      ...(rec.disk ? { disk: rec.disk } : {}),
      ...(rec.tee === 'sev_snp' ? { tee: rec.tee } : {}),
      ...(rec.kernel ? { kernel: rec.kernel } : {}),
      ...(rec.initrd ? { initrd: rec.initrd } : {}),
      ...(rec.append !== undefined ? { append: rec.append } : {}),
      ...(rec.port ? { port: rec.port } : {}),
      state: rec.state,
      ...(rec.reason ? { reason: rec.reason } : {}),
    };
    return this.#records.write(this.#recordFile(rec.ref), `${JSON.stringify(data)}\n`, 0o600);
  }

  #recordFile(ref: string): string {
    return path.join(this.#o.runDir, 'machines', `${ref}.json`);
  }

  /** For state changes off the request path: a full disk costs the record's freshness, not the VM. */
  #saveQuietly(rec: VmRecord): void {
    if (this.#closing) return;
    this.#save(rec).catch((e: unknown) =>
      this.#o.log?.(`warning: cannot write the record of VM ${rec.ref}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`),
    );
  }

  /** The session blobs and work dir of a VM that is gone (or whose launch is over). */
  #removeVmFiles(ref: string): Promise<void> {
    const done = Promise.all(['sessions', 'vms'].map((d) => fs.promises.rm(path.join(this.#o.runDir, d, ref), { recursive: true, force: true }))).then(
      () => undefined,
    );
    done.catch((e: unknown) => this.#o.log?.(`warning: cannot remove the files of VM ${ref}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`));
    return this.#fileWork(done);
  }

  /** Off-loop work on the run dir's files; close() waits until none is left before it tidies up. */
  #fileWork<T>(p: Promise<T>): Promise<T> {
    this.#pendingFiles.add(p);
    p.catch(() => undefined).finally(() => this.#pendingFiles.delete(p));
    return p;
  }

  /** Follows a VM that may go away on its own (QEMU exit, crash): state, record and files. */
  #watch(rec: VmRecord, vm: CrnVm): void {
    vm.onExit?.((reason) => {
      if (rec.vm !== vm || this.#closing) return;
      rec.vm = undefined;
      this.#unforward(rec);
      rec.state = rec.state === 'running' ? 'stopped' : 'failed';
      rec.reason = reason;
      wake(rec);
      void this.#removeVmFiles(rec.ref);
      this.#saveQuietly(rec);
    });
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
    return [...this.#vms.values()].map((r) => ({
      ref: r.ref,
      owner: r.owner,
      state: r.state,
      policy: r.policy,
      ...(r.reason ? { reason: r.reason } : {}),
      ...snpSummary(r),
    }));
  }

  /** The host port forwarded to an SNP VM's agent (undefined until it runs, or for SEV VMs). */
  agentPort(ref: string): number | undefined {
    return this.#vms.get(ref)?.forwarder?.port;
  }

  state(ref: string): CrnVmState | undefined {
    return this.#vms.get(ref)?.state;
  }

  /**
   * Registers a VM (what POST /control/allocate does after checking the token). Resolves once its
   * record is on disk; if it cannot be written the VM is not registered and the fs error is thrown.
   */
  async allocate(a: AllocationRequest): Promise<CrnVmSummary> {
    const spec = validateAllocation(a);
    // Off the event loop (a slow disk must not hold other owners' requests); the checks below follow it.
    const st = await fs.promises.stat(spec.firmware).catch(() => undefined);
    if (!st?.isFile()) throw errorJson(400, `firmware ${spec.firmware} is not a readable file`);
    if (this.#closing) throw errorJson(503, 'Service shutting down');
    if (spec.tee === 'sev_snp' && !this.#o.launcher.launchSnp)
      throw errorJson(400, 'This CRN cannot launch SEV-SNP instances (its VM launcher has no SNP support)');
    if (spec.tee === 'sev_snp' && this.#o.launcher.snpUnavailable) throw errorJson(400, this.#o.launcher.snpUnavailable);
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
      tee: spec.tee ?? 'sev',
      ...(spec.kernel ? { kernel: spec.kernel } : {}),
      ...(spec.initrd ? { initrd: spec.initrd } : {}),
      ...(spec.append !== undefined ? { append: spec.append } : {}),
      state: rec0State(spec),
      generation: 0,
    };
    // Registered before the write, so a second allocation of the ref meanwhile gets its 409.
    this.#vms.set(spec.ref, rec);
    try {
      await this.#save(rec);
    } catch (e) {
      if (this.#vms.get(spec.ref) === rec) this.#vms.delete(spec.ref);
      throw e;
    }
    if (this.#closing) throw errorJson(503, 'Service shutting down');
    // SNP: no pre-launch step, so nothing waits for the owner (aleph #1131: boots at once).
    if (rec.tee === 'sev_snp') this.#startSnpVm(rec, ++rec.generation);
    return {
      ref: rec.ref,
      owner: rec.owner,
      state: rec.state,
      policy: rec.policy,
      vcpus: rec.vcpus,
      ...(this.#o.launcher.cpu ? { cpu: this.#o.launcher.cpu } : {}),
      ...snpSummary(rec),
    };
  }

  /**
   * Refuses new work and stops every VM, then removes every record and file
   * this service put in the run dir. With `keepVms`, the VMs keep running and
   * the records stay, for the next CrnService on this run dir to adopt.
   * Safe to call twice (and concurrently: the second call waits for the first).
   */
  close(opts: { keepVms?: boolean } = {}): Promise<void> {
    this.#closingDone ??= this.#close(opts);
    return this.#closingDone;
  }

  #closingDone: Promise<void> | undefined;

  async #close(opts: { keepVms?: boolean }): Promise<void> {
    this.#closing = true;
    await this.#recoverer.close();
    await this.#restoring.catch(() => undefined);
    if (opts.keepVms) {
      for (const r of this.#vms.values()) {
        r.vm = undefined;
        this.#unforward(r);
      }
      await this.#records.flush();
      await this.#o.launcher.detach?.();
      return;
    }
    for (const r of this.#vms.values()) this.#unforward(r);
    const stops = [...this.#vms.values()].map(async (r) => {
      const vm = r.vm;
      r.vm = undefined;
      r.state = 'stopped';
      wake(r);
      if (vm) await vm.stop().catch(() => undefined);
      await Promise.all([this.#removeVmFiles(r.ref).catch(() => undefined), this.#records.remove(this.#recordFile(r.ref))]);
    });
    await Promise.all(stops);
    await this.#records.flush();
    // Work that was under way when close() began may queue more (a refused initialize removes its files).
    while (this.#pendingFiles.size) await Promise.allSettled([...this.#pendingFiles]);
    for (const d of ['sessions', 'machines', 'vms']) {
      try {
        fs.rmdirSync(path.join(this.#o.runDir, d));
      } catch {
        /* not empty (another owner's files, the supervisor's root) or absent */
      }
    }
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
      await this.#restoring.catch(() => {
        throw errorJson(503, 'The CRN could not take over the VMs of its run directory; see its log', { 'Retry-After': '5' });
      });
      await this.#route(req, res, urlPath);
    } catch (e) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const he =
        e instanceof HttpError
          ? e
          : e instanceof AuthError
            ? new HttpError(e.status, { error: e.reason })
            : this.#m.mode === 'sevkit'
              ? hostError(e, { runDir: this.#o.runDir })
              : this.#m.internalError(e);
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
    for (const r of this.#vms.values()) {
      if (r.tee === 'sev_snp') {
        // aleph's v2 list shape: guest port → {host, tcp, udp}; the owner attests through the host port.
        const port = r.forwarder?.port;
        out[r.ref] = {
          awaiting_confidential_init: false,
          state: r.state,
          tee: 'sev_snp',
          mapped_ports: port ? { [String(SNP_AGENT_PORT)]: { host: port, tcp: true, udp: false } } : {},
        };
      } else out[r.ref] = { awaiting_confidential_init: r.state === 'allocated' || r.state === 'failed' || r.state === 'stopped', state: r.state };
    }
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
    const summary = await this.allocate(parsed as AllocationRequest);
    sendJson(res, 200, { success: true, ...summary });
  }

  // ------------------------------------------------------------ owner endpoints

  async #machine(req: IncomingMessage, res: ServerResponse, urlPath: string, ref: string, op: 'initialize' | 'measurement' | 'inject_secret'): Promise<void> {
    // aleph's order: authenticate, then the ref, then the pool, then the owner.
    const caller: VerifiedCaller = await verifyAuthHeadersAsync(
      { method: req.method ?? 'GET', path: urlPath, headers: req.headers },
      { domain: this.#o.domain, now: this.#o.now(), cache: this.#keys, recoverEth: (m, s) => this.#recoverer.recover(m, s) },
    );
    if (!REF_RE.test(ref)) throw errorJson(400, `Invalid ref: '${ref.slice(0, 80)}'`);
    let rec = this.#vms.get(ref);
    if (!rec) {
      // The allocation may still be registering (aleph #985: initialize raced VM creation).
      await Promise.all(this.#o.extensions.map((x) => x.pending?.(ref) ?? Promise.resolve()));
      rec = this.#vms.get(ref);
    }
    if (!rec) throw errorJson(404, `No virtual machine with ref ${ref}`);
    if (!(await this.#authorized(caller, rec))) throw new HttpError(403, 'Unauthorized sender', true);
    if (rec.tee === 'sev_snp') {
      // There is no host-side launch step for SNP: no session, no launch measurement, no injected secret.
      const port = rec.forwarder?.port;
      throw errorJson(
        409,
        `SNP: attest the guest directly. VM ${rec.ref} is an SEV-SNP instance: the host has no ${op === 'measurement' ? 'launch measurement' : op === 'initialize' ? 'launch session' : 'secret channel'}; its attestation agent is ${port ? `on port ${port} of this host` : `not reachable yet (state ${rec.state})`}`,
      );
    }
    if (op === 'initialize') return this.#initialize(req, res, rec);
    if (op === 'measurement') return this.#measurement(req, res, rec);
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
    if (decodeStrictBase64(sessionText)?.length !== SESSION_SIZE) {
      throw new HttpError(400, { code: 'field_invalid', description: `session must be the base64 of a ${SESSION_SIZE}-byte launch session blob` });
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
    try {
      await this.#save(rec);
    } catch (e) {
      rec.state = 'failed';
      rec.reason = 'could not store the VM record';
      throw e;
    }
    // close() may have come in during the write; it stops this VM, so do not start it.
    if (this.#closing) throw errorJson(503, 'Service shutting down');
    const dir = path.join(this.#o.runDir, 'sessions', rec.ref);
    const workDir = path.join(this.#o.runDir, 'vms', rec.ref);
    try {
      await this.#fileWork(
        (async () => {
          await Promise.all([fs.promises.mkdir(dir, { recursive: true, mode: 0o700 }), fs.promises.mkdir(workDir, { recursive: true, mode: 0o700 })]);
          await Promise.all([
            writeFileAtomicAsync(path.join(dir, 'vm_session.b64'), sessionText, 0o600),
            writeFileAtomicAsync(path.join(dir, 'vm_godh.b64'), godhText, 0o600),
          ]);
        })(),
      );
    } catch (e) {
      rec.state = 'failed';
      rec.reason = 'could not store the session files';
      await this.#removeVmFiles(rec.ref).catch(() => undefined);
      this.#saveQuietly(rec);
      throw e;
    }
    if (this.#closing) {
      // close() may have tidied this VM's dirs before the files landed.
      await this.#removeVmFiles(rec.ref).catch(() => undefined);
      throw errorJson(503, 'Service shutting down');
    }
    this.#startVm(rec, generation, path.join(dir, 'vm_session.b64'), path.join(dir, 'vm_godh.b64'), workDir);
    sendText(res, 200, `Started VM with ref ${rec.ref}`);
  }

  #startVm(rec: VmRecord, generation: number, sessionFile: string, godhFile: string, workDir: string): void {
    this.#runLaunch(rec, generation, {
      launch: () =>
        this.#o.launcher.launch({
          ref: rec.ref,
          firmware: rec.firmware,
          policy: rec.policy,
          vcpus: rec.vcpus,
          memoryMb: rec.memoryMb,
          ...(rec.disk ? { disk: rec.disk } : {}),
          sessionFile,
          godhFile,
          workDir,
        }),
      ready: async (_vm, current) => {
        // QEMU has done LAUNCH_START with the blobs: the owner's copies are not needed any more.
        await fs.promises.rm(path.dirname(sessionFile), { recursive: true, force: true }).catch(() => undefined);
        if (current()) {
          if (rec.state === 'starting') {
            rec.state = 'awaiting-secret';
            this.#saveQuietly(rec);
          }
          wake(rec);
        }
      },
      failed: () => {
        wake(rec);
        // A session made for a stale PDH fails here; re-export the chain next time.
        this.invalidateCertificates();
      },
    });
  }

  /** Starts an SNP VM (running at once), then forwards a host port to its agent. */
  #startSnpVm(rec: VmRecord, generation: number): void {
    const workDir = path.join(this.#o.runDir, 'vms', rec.ref);
    rec.state = 'starting';
    this.#runLaunch(rec, generation, {
      launch: () => {
        fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
        return this.#o.launcher.launchSnp!({
          ref: rec.ref,
          firmware: rec.firmware,
          policy: rec.policy,
          vcpus: rec.vcpus,
          memoryMb: rec.memoryMb,
          ...(rec.disk ? { disk: rec.disk } : {}),
          ...(rec.kernel ? { kernel: rec.kernel } : {}),
          ...(rec.initrd ? { initrd: rec.initrd } : {}),
          ...(rec.append !== undefined ? { append: rec.append } : {}),
          owner: rec.owner,
          workDir,
        });
      },
      ready: async (vm, current) => {
        if (!current()) return;
        await this.#forwardAgent(rec, vm, true);
        if (!current() || rec.vm !== vm) return;
        rec.state = 'running';
        this.#saveQuietly(rec);
      },
      failed: () => this.#unforward(rec),
    });
  }

  /**
   * The one launch path of a VM record (SEV and SNP), off the request: `launch` starts the VM; one that a
   * newer launch or close() overtook meanwhile is stopped again; from then on the VM is watched; once it is
   * ready, `ready` moves the record on (it checks `current` itself). Any failure of a current launch runs
   * `failed`, marks the record failed, stops the VM and removes its files.
   */
  #runLaunch(
    rec: VmRecord,
    generation: number,
    steps: { launch: () => Promise<CrnVm>; ready: (vm: CrnVm, current: () => boolean) => Promise<void>; failed: () => void },
  ): void {
    const current = (): boolean => rec.generation === generation && !this.#closing;
    void (async () => {
      let vm: CrnVm | undefined;
      try {
        vm = await steps.launch();
        if (!current()) {
          await vm.stop().catch(() => undefined);
          return;
        }
        rec.vm = vm;
        this.#watch(rec, vm);
        await vm.ready;
        await steps.ready(vm, current);
      } catch (e) {
        if (!current()) return;
        steps.failed();
        rec.state = 'failed';
        rec.reason = `VM launch failed: ${(e as Error)?.message ?? String(e)}`;
        if (vm) {
          rec.vm = undefined;
          await vm.stop().catch(() => undefined);
        }
        void this.#removeVmFiles(rec.ref);
        this.#saveQuietly(rec);
      }
    })();
  }

  /**
   * Forwards a host port (the recorded one when it is free, else any) to the VM's agent. With `strict`
   * a failure throws (a fresh launch fails); an adopted VM keeps running without a port and says why.
   */
  async #forwardAgent(rec: VmRecord, vm: CrnVm, strict = false): Promise<void> {
    try {
      if (!vm.agentAddress) throw new Error('the launcher reports no agent address for SNP guests');
      const target = await vm.agentAddress();
      const opts = { ...this.#o.forward, target, log: (l: string) => this.#o.log?.(`VM ${rec.ref}: ${l}`) };
      let f: PortForwarder;
      try {
        f = await PortForwarder.listen({ ...opts, listenPort: rec.port ?? 0 });
      } catch (e) {
        if (!rec.port) throw e;
        f = await PortForwarder.listen({ ...opts, listenPort: 0 });
      }
      if (rec.vm !== vm || this.#closing) {
        await f.close();
        return;
      }
      rec.forwarder = f;
      rec.port = f.port;
    } catch (e) {
      if (strict) throw e;
      rec.reason = `agent port not forwarded: ${(e as Error)?.message ?? String(e)}`;
      this.#o.log?.(`warning: VM ${rec.ref}: ${rec.reason}`);
    }
  }

  #unforward(rec: VmRecord): void {
    const f = rec.forwarder;
    rec.forwarder = undefined;
    if (f) void f.close();
  }

  async #measurement(req: IncomingMessage, res: ServerResponse, rec: VmRecord): Promise<void> {
    const waitS = this.#o.mode === 'aleph' ? undefined : measurementWait(req.url);
    if (rec.state === 'starting' && waitS !== undefined) await this.#untilSettled(rec, waitS * 1000, res);
    if (rec.state === 'starting') throw this.#m.qemuNotReady();
    if (rec.state === 'allocated' || rec.state === 'failed' || rec.state === 'stopped' || !rec.vm)
      throw this.#m.measurementNotRunning(rec.state, rec.reason, rec.ref);
    const m = await rec.vm.measurement();
    sendModeJson(this.#m, res, 200, { sev_info: m.sevInfo, launch_measure: m.launchMeasure });
  }

  /** Resolves when `rec` leaves 'starting', after `ms`, or when the client goes away. */
  #untilSettled(rec: VmRecord, ms: number, res: ServerResponse): Promise<void> {
    const waiters = (rec.waiters ??= new Set());
    if (waiters.size >= MAX_WAITERS_PER_VM || this.#closing) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(done);
        res.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
      res.once('close', done);
    });
  }

  async #injectSecret(req: IncomingMessage, res: ServerResponse, rec: VmRecord): Promise<void> {
    const parsed = await readJsonBody(req, { limit: this.#o.jsonBodyLimit, timeoutMs: this.#o.bodyTimeoutMs });
    const p = parsed as { packet_header?: unknown; secret?: unknown };
    if (!p || typeof p !== 'object' || typeof p.packet_header !== 'string' || typeof p.secret !== 'string') {
      throw errorJson(400, 'Body must be {"packet_header": <base64>, "secret": <base64>}');
    }
    const header = decodeStrictBase64(p.packet_header);
    if (!header || header.length !== SECRET_PACKET_HEADER_SIZE) throw errorJson(400, `packet_header must be the base64 of ${SECRET_PACKET_HEADER_SIZE} bytes`);
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
      if (rec.vm === vm) {
        rec.state = 'running';
        this.#saveQuietly(rec);
      }
      const status = this.#m.runStatus(await vm.queryStatus());
      sendModeJson(this.#m, res, 200, { status });
    } catch (e) {
      if (rec.vm === vm && rec.state === 'injecting') {
        rec.state = 'failed';
        rec.reason = 'VM failed to resume after the secret was injected';
        this.#saveQuietly(rec);
      }
      throw e;
    }
  }
}

/** Releases every measurement request waiting on `rec`. */
function wake(rec: VmRecord): void {
  if (!rec.waiters) return;
  for (const w of [...rec.waiters]) w();
}

/**
 * `?wait=S` of a measurement request: undefined when absent, else S (an integer
 * 1..MAX_MEASUREMENT_WAIT_S); anything else is a 400.
 */
export function measurementWait(url: string | undefined): number | undefined {
  const q = url?.indexOf('?') ?? -1;
  if (q < 0) return undefined;
  const values = new URLSearchParams(url!.slice(q + 1)).getAll('wait');
  if (values.length === 0) return undefined;
  const v = values[0]!;
  const n = /^[0-9]{1,3}$/.test(v) ? Number(v) : Number.NaN;
  if (values.length > 1 || !(n >= 1 && n <= MAX_MEASUREMENT_WAIT_S)) {
    throw errorJson(400, `wait must be one integer number of seconds in [1, ${MAX_MEASUREMENT_WAIT_S}], got '${clipPath(values.join(','))}'`);
  }
  return n;
}

/** machines/<ref>.json, version 1: what a restarted CRN needs to serve the VM's owner again. */
interface MachineRecordFile {
  version: 1;
  ref: string;
  owner: string;
  firmware: string;
  policy: number;
  vcpus: number;
  memoryMb: number;
  disk?: string;
  /** Absent: 'sev' (records written before SNP). */
  tee?: 'sev_snp';
  kernel?: string;
  initrd?: string;
  append?: string;
  port?: number;
  state: CrnVmState;
  reason?: string;
}

const STATES: readonly CrnVmState[] = ['allocated', 'starting', 'awaiting-secret', 'injecting', 'running', 'failed', 'stopped'];

/** A record as a VmRecord, or undefined when it is not one (read as untrusted input: shapes and ranges checked). */
function readMachineRecord(file: string): VmRecord | undefined {
  let r: Partial<MachineRecordFile>;
  try {
    if (!fs.lstatSync(file).isFile()) return undefined;
    r = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<MachineRecordFile>;
  } catch {
    return undefined;
  }
  const int = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
  if (!r || r.version !== 1 || typeof r.ref !== 'string' || !REF_RE.test(r.ref)) return undefined;
  if (typeof r.owner !== 'string' || !(isEthAddress(r.owner) || isSolAddress(r.owner))) return undefined;
  if (typeof r.firmware !== 'string' || !path.isAbsolute(r.firmware) || (r.disk !== undefined && (typeof r.disk !== 'string' || !path.isAbsolute(r.disk))))
    return undefined;
  if (!int(r.policy, 0, 0xffffffff) || !int(r.vcpus, 1, 512) || !int(r.memoryMb, 16, 4 * 1024 * 1024)) return undefined;
  if (!STATES.includes(r.state as CrnVmState)) return undefined;
  if (r.tee !== undefined && r.tee !== 'sev_snp') return undefined;
  for (const f of [r.kernel, r.initrd]) if (f !== undefined && (typeof f !== 'string' || !path.isAbsolute(f))) return undefined;
  if (r.append !== undefined && (typeof r.append !== 'string' || r.append.length > 4096)) return undefined;
  if (r.port !== undefined && !int(r.port, 1, 65535)) return undefined;
  return {
    ref: r.ref,
    owner: r.owner,
    firmware: r.firmware,
    policy: r.policy,
    vcpus: r.vcpus,
    memoryMb: r.memoryMb,
    ...(r.disk ? { disk: r.disk } : {}),
    tee: r.tee ?? 'sev',
    ...(r.kernel ? { kernel: r.kernel } : {}),
    ...(r.initrd ? { initrd: r.initrd } : {}),
    ...(r.append !== undefined ? { append: r.append } : {}),
    ...(r.port ? { port: r.port } : {}),
    state: r.state as CrnVmState,
    ...(typeof r.reason === 'string' ? { reason: r.reason.slice(0, 500) } : {}),
    generation: 0,
  };
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
  const int = (k: string, min: number, max: number): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`${k} must be an integer in [${min}, ${max}]`);
    return v as number;
  };
  const policy = int('policy', 0, 0xffffffff);
  const vcpus = int('vcpus', 1, 512);
  const memory = int('memory_mb', 16, 4 * 1024 * 1024);
  if (o.disk !== undefined && (typeof o.disk !== 'string' || !path.isAbsolute(o.disk))) bad('disk must be an absolute path');
  if (o.tee !== undefined && o.tee !== 'sev' && o.tee !== 'sev_snp') bad("tee must be 'sev' or 'sev_snp'");
  const snp = o.tee === 'sev_snp';
  for (const k of ['kernel', 'initrd'] as const) {
    if (o[k] !== undefined && (!snp || typeof o[k] !== 'string' || !path.isAbsolute(o[k]))) bad(`${k} must be an absolute path, for tee 'sev_snp' only`);
  }
  if (o.append !== undefined && (!snp || typeof o.append !== 'string' || o.append.length > 4096 || !o.kernel))
    bad("append must be a kernel command line (at most 4096 characters) with a kernel, for tee 'sev_snp' only");
  // SNP policy as the firmware reads it: reserved bit 17 set, nothing above bit 25 (lib/vm checks it again).
  if (snp && ((policy & 0x20000) === 0 || policy >= 1 << 26)) bad('an SEV-SNP policy needs bit 17 set and no bit above 25 (e.g. 0x30000)');
  return {
    ref: o.ref as string,
    owner: o.owner as string,
    firmware: o.firmware as string,
    policy,
    vcpus,
    memory_mb: memory,
    ...(typeof o.disk === 'string' ? { disk: o.disk } : {}),
    ...(snp ? { tee: 'sev_snp' as const } : {}),
    ...(typeof o.kernel === 'string' ? { kernel: o.kernel } : {}),
    ...(typeof o.initrd === 'string' ? { initrd: o.initrd } : {}),
    ...(typeof o.append === 'string' ? { append: o.append } : {}),
  };
}

/** The state an allocation starts in: SNP instances are started at once. */
function rec0State(a: AllocationRequest): CrnVmState {
  return a.tee === 'sev_snp' ? 'starting' : 'allocated';
}

/** What list() and allocate() add for an SNP VM. */
function snpSummary(r: VmRecord): Pick<CrnVmSummary, 'tee' | 'port'> {
  if (r.tee !== 'sev_snp') return {};
  const port = r.forwarder?.port;
  return { tee: 'sev_snp', ...(port ? { port } : {}) };
}

/** One log line per request, whatever the path holds: control characters never reach the log. */
export function clipPath(p: string): string {
  const printable = p.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 200 ? `${printable.slice(0, 200)}…` : printable;
}
