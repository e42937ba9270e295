/**
 * aleph's allocation endpoints, so aleph's scheduler and aleph-client drive the
 * reference CRN unchanged (shared/specs/aleph.md §A.1.5, §A.5, §C):
 *
 *   POST /control/allocations        {"persistent_vms": [...], "instances": [...]}   X-Auth-Signature (scheduler)
 *   POST /control/allocation/notify  {"instance": "<item hash>"}                      no auth (the owner, after publishing)
 *
 * Both fetch the INSTANCE message by item hash (an injected MessageFetcher;
 * `httpMessageFetcher` reads aleph's API server) and register the VM from its
 * `content`: owner = `address`, `environment.trusted_execution {policy,
 * firmware, mode}` (mode "sev_snp": an SEV-SNP instance, started at once) (firmware = the item hash of a STORE message holding the OVMF
 * file, resolved to a host file by the embedder), `resources {vcpus, memory}`,
 * optionally `rootfs.parent.ref` as the disk.
 *
 * Token: aleph compares sha256(X-Auth-Signature) with its ALLOCATION_TOKEN_HASH;
 * so does this module (constant time). aleph's newer `Authorization:
 * Aleph-EIP191-V1` scheme is not implemented: such a header is refused, as
 * aleph does when no signer is configured.
 *
 * What aleph's users hit, and what happens here instead:
 *  - #966: a confidential VM awaiting its owner was destroyed and recreated by
 *    every allocation push. Here a push never stops or re-creates a VM that is
 *    already registered, listed or not (aleph `main` also spares confidential VMs).
 *  - #985: initialize raced VM creation. An owner request for a VM whose
 *    allocation is still being registered waits for it (`pending`).
 * Payment checks (hold balance, streams, credits) are aleph's network's; this
 * module has none (an embedder can refuse in `admit`).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { IncomingMessage } from 'node:http';
import { SevkitError } from '../errors.js';
import { HttpError, readBody } from './http.js';
import { fetchJsonBounded } from './authorize.js';
import type { AllocationRequest, CrnService } from './service.js';
import type { CrnExtension, CrnRoute, CrnRouteContext } from './routes.js';

/** Fetches an aleph message by item hash: the message object, or undefined when the network has none. */
export type MessageFetcher = (itemHash: string) => Promise<unknown>;

/**
 * Options of AlephAllocations: how to fetch aleph messages and resolve firmware and rootfs refs, the scheduler's
 * token hash, and admission.
 */
export interface AlephAllocationOptions {
  fetchMessage: MessageFetcher;
  /** Host path of the OVMF image for a firmware item hash (undefined: not available here). */
  resolveFirmware(firmwareRef: string): string | undefined;
  /** Firmware used when trusted_execution.firmware is null (aleph: the SDK's default firmware hash). */
  defaultFirmware?: string;
  /** Host path of the rootfs for `rootfs.parent.ref`, when this CRN has it; otherwise the VM has no disk. */
  resolveRootfs?(ref: string): string | undefined;
  /** sha256 (hex) of the scheduler's token (aleph ALLOCATION_TOKEN_HASH); without it /control/allocations refuses everyone. */
  tokenHash?: string;
  /** This CRN's node hash; a message with `requirements.node.node_hash` must name it. */
  nodeHash?: string;
  /** Last word on an allocation (payment, capacity): throw an HttpError to refuse. */
  admit?(a: AllocationRequest, message: AlephInstanceMessage): void | Promise<void>;
  /** Bound on how long an owner request waits for an allocation in progress (#985). */
  pendingWaitMs?: number;
  /** Largest allocation body. */
  bodyLimit?: number;
}

/** The parts of an aleph INSTANCE message the CRN reads (aleph-message 1.1 InstanceContent). */
export interface AlephInstanceMessage {
  type: string;
  item_hash?: string;
  sender?: string;
  content: {
    address: string;
    environment?: { hypervisor?: string | null; trusted_execution?: { firmware?: string | null; policy?: number; mode?: string | null } | null };
    resources?: { vcpus?: number; memory?: number };
    rootfs?: { parent?: { ref?: string } };
    requirements?: { node?: { node_hash?: string | null } | null } | null;
  };
}

const REF_RE = /^[0-9a-f]{64}$/;
// Item hashes are 64 hex (aleph storage) or IPFS CIDs: either way, safe as a file name.
const ITEM_HASH_RE = /^(?:[0-9a-f]{64}|Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58,})$/;

/** 400/404/500 in aleph's error_middleware shape: {"error": text}. */
function alephError(status: number, text: string, extra: Record<string, string> = {}): HttpError {
  return new HttpError(status, { error: text, ...extra });
}

/** Python's repr() of an exception carrying one message (aleph puts repr(error) in "errors"). */
function pyRepr(e: unknown): string {
  const name = (e as { name?: string })?.name ?? 'Exception';
  const msg = (e as { message?: string })?.message ?? String(e);
  const quoted = msg.includes("'") && !msg.includes('"') ? `"${msg}"` : `'${msg.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return `${name}(${quoted})`;
}

/** A message that cannot become a confidential VM here. */
export class AllocationMessageError extends SevkitError {
  constructor(message: string) {
    super('ERR_CRN_ALLOCATION_MESSAGE', message);
  }
}

/** The API server has no message of that item hash. */
export class MessageNotFoundError extends SevkitError {
  constructor(readonly itemHash: string) {
    super('ERR_CRN_MESSAGE_NOT_FOUND', `No message found for hash ${itemHash}`);
  }
}

/**
 * Reads an INSTANCE message into the service's allocation request. Throws
 * AllocationMessageError naming what is missing or not supported.
 */
export function instanceToAllocation(
  ref: string,
  message: unknown,
  o: Pick<AlephAllocationOptions, 'resolveFirmware' | 'resolveRootfs' | 'defaultFirmware'>,
): AllocationRequest {
  const bad = (m: string): never => {
    throw new AllocationMessageError(m);
  };
  const m = message as Partial<AlephInstanceMessage> | null;
  if (!m || typeof m !== 'object' || !m.content || typeof m.content !== 'object') bad(`message ${ref} has no content`);
  if (m!.type !== 'INSTANCE') bad('Message is not an instance');
  // The API server answers for the hash asked; a message of another hash is not this VM.
  if (m!.item_hash !== undefined && m!.item_hash !== ref) bad(`message served for ${ref} has item_hash ${String(m!.item_hash).slice(0, 80)}`);
  const c = m!.content!;
  if (typeof c.address !== 'string') bad(`message ${ref} has no content.address`);
  const te = c.environment?.trusted_execution;
  if (!te || typeof te !== 'object') bad('Instance is not a confidential instance');
  // aleph-message: a trusted execution environment requires hypervisor "qemu", explicitly.
  if (c.environment?.hypervisor !== 'qemu') bad('Trusted Execution Environment is only supported for QEmu');
  // aleph-message 1.4 / aleph-vm #1131: mode "sev_snp" is an SNP instance (no mode: the legacy SEV flow).
  const mode = te!.mode ?? null;
  if (mode !== null && mode !== 'sev' && mode !== 'sev_es' && mode !== 'sev_snp')
    bad(`trusted_execution.mode ${JSON.stringify(String(mode).slice(0, 40))} is not supported here (sev, sev_es, sev_snp)`);
  const snp = mode === 'sev_snp';
  const policy = te!.policy ?? (snp ? 0x30000 : 0x1); // SNP: QEMU's default; SEV: AMDSEVPolicy.NO_DBG, the schema default
  if (typeof policy !== 'number' || !Number.isInteger(policy) || policy < 0 || policy > 0xffffffff)
    bad('trusted_execution.policy must be a 32-bit unsigned integer');
  const fwRef = te!.firmware ?? o.defaultFirmware;
  if (typeof fwRef !== 'string' || !ITEM_HASH_RE.test(fwRef)) bad('trusted_execution.firmware must be an item hash');
  const firmware = o.resolveFirmware(fwRef!);
  if (!firmware || !path.isAbsolute(firmware)) bad(`firmware ${fwRef!} is not available on this CRN`);
  const vcpus = c.resources?.vcpus ?? 1;
  const memory = c.resources?.memory ?? 2048;
  const rootRef = c.rootfs?.parent?.ref;
  const disk = typeof rootRef === 'string' && ITEM_HASH_RE.test(rootRef) ? o.resolveRootfs?.(rootRef) : undefined;
  return {
    ref,
    owner: c.address,
    firmware: firmware!,
    policy: policy as number,
    vcpus,
    memory_mb: memory,
    ...(disk ? { disk } : {}),
    ...(snp ? { tee: 'sev_snp' as const } : {}),
  };
}

/**
 * aleph's endpoints as a service extension. `pending(ref)` lets owner requests
 * for a VM still being registered wait for it instead of answering 404.
 */
export class AlephAllocations implements CrnExtension<CrnService> {
  readonly routes: CrnRoute<CrnService>[];
  readonly #o: AlephAllocationOptions;
  readonly #pending = new Map<string, Promise<unknown>>();
  #lock: Promise<unknown> = Promise.resolve();

  constructor(o: AlephAllocationOptions) {
    if (o.tokenHash !== undefined && !/^[0-9a-f]{64}$/i.test(o.tokenHash)) throw new TypeError('tokenHash must be a sha256 in hex');
    this.#o = o;
    this.routes = [
      { method: 'POST', path: '/control/allocations', handle: (req, _res, ctx) => this.#allocations(req, ctx) },
      { method: 'POST', path: '/control/allocation/notify', handle: (req, _res, ctx) => this.#notify(req, ctx) },
    ];
  }

  pending(ref: string): Promise<unknown> | undefined {
    const p = this.#pending.get(ref);
    if (!p) return undefined;
    const ms = this.#o.pendingWaitMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise((r) => {
      timer = setTimeout(r, ms);
    });
    return Promise.race([p.catch(() => undefined), deadline]).finally(() => clearTimeout(timer));
  }

  /** Whether `given` is the scheduler token: sha256(given) against the configured hash, in constant time. */
  tokenMatches(given: string | undefined): boolean {
    if (!this.#o.tokenHash || !given) return false;
    const a = crypto.createHash('sha256').update(given, 'utf8').digest();
    const b = Buffer.from(this.#o.tokenHash, 'hex');
    return crypto.timingSafeEqual(a, b);
  }

  async #readJson(req: IncomingMessage): Promise<unknown> {
    const body = await readBody(req, this.#o.bodyLimit ?? 1 << 20);
    try {
      return JSON.parse(body.toString('utf8')) as unknown;
    } catch {
      throw alephError(400, 'Body is not valid JSON');
    }
  }

  /** Registers `ref` from its message unless it is registered already; one registration per ref at a time. */
  async #register(service: CrnService, ref: string): Promise<void> {
    if (service.state(ref) !== undefined) return;
    const inFlight = this.#pending.get(ref);
    if (inFlight) {
      await inFlight;
      return;
    }
    const work = (async () => {
      const message = await this.#o.fetchMessage(ref);
      if (message === undefined) throw new MessageNotFoundError(ref);
      const a = instanceToAllocation(ref, message, this.#o);
      const node = (message as AlephInstanceMessage).content.requirements?.node?.node_hash;
      if (node) {
        if (!this.#o.nodeHash) throw new HttpError(503, { error: '503: Node hash not yet discovered, cannot accept targeted allocations' });
        if (node !== this.#o.nodeHash) throw new HttpError(400, { error: '400: Instance is allocated to a different node' });
      }
      await this.#o.admit?.(a, message as AlephInstanceMessage);
      if (service.state(ref) === undefined) await service.allocate(a);
    })();
    this.#pending.set(ref, work);
    try {
      await work;
    } finally {
      this.#pending.delete(ref);
    }
  }

  async #allocations(req: IncomingMessage, ctx: CrnRouteContext<CrnService>): Promise<void> {
    const sig = req.headers['x-auth-signature'];
    const ok = req.headers.authorization === undefined && this.tokenMatches(Array.isArray(sig) ? sig[0] : sig);
    if (!ok) throw alephError(401, 'Authentication token received is invalid');
    const data = await this.#readJson(req);
    const sets = parseAllocation(data);
    // One allocation round at a time, as aleph's allocation_lock.
    const run = this.#lock.then(async () => {
      const all = [...new Set([...sets.persistent_vms, ...sets.instances])];
      const errors: Record<string, string> = {};
      for (const ref of all) {
        try {
          await this.#register(ctx.service, ref);
        } catch (e) {
          errors[ref] = pyRepr(e instanceof HttpError ? new Error(String((e.body as { error?: string }).error ?? e.message)) : e);
        }
      }
      const failing = Object.keys(errors);
      const successful = all.filter((r) => !(r in errors));
      // Nothing is stopped: every VM here is confidential (aleph spares those, #966).
      return { failing, successful, errors };
    });
    this.#lock = run.catch(() => undefined);
    const { failing, successful, errors } = await run;
    const status = failing.length === 0 ? 200 : successful.length === 0 ? 503 : 207;
    ctx.json(status, { success: failing.length === 0, successful, failing, stopped: [], errors });
  }

  async #notify(req: IncomingMessage, ctx: CrnRouteContext<CrnService>): Promise<void> {
    const data = await this.#readJson(req);
    const instance = (data as { instance?: unknown } | null)?.instance;
    if (!data || typeof data !== 'object' || Array.isArray(data) || typeof instance !== 'string' || !REF_RE.test(instance)) {
      throw alephError(400, 'instance must be the 64 hex digits of an instance item hash');
    }
    try {
      await this.#register(ctx.service, instance);
    } catch (e) {
      if (e instanceof HttpError) throw e;
      if (e instanceof AllocationMessageError) {
        if (e.message === 'Instance is not a confidential instance') throw new HttpError(400, { code: 'not_confidential', description: e.message });
        throw alephError(400, `400: ${e.message}`);
      }
      if (e instanceof MessageNotFoundError) throw alephError(404, e.message);
      // A VM the service refuses (capacity, bad owner): aleph reports the failed start with 503.
      ctx.json(503, { success: false, successful: false, failing: [instance], errors: { [instance]: pyRepr(e) } });
      return;
    }
    ctx.json(200, { success: true, successful: true, failing: [], errors: {} });
  }
}

function parseAllocation(d: unknown): { persistent_vms: string[]; instances: string[] } {
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw alephError(400, 'Allocation body must be a JSON object');
  const o = d as Record<string, unknown>;
  const list = (k: string): string[] => {
    const v = o[k];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !REF_RE.test(x))) throw alephError(400, `${k} must be a list of 64-hex-digit item hashes`);
    return v as string[];
  };
  list('on_demand_vms');
  list('jobs');
  return { persistent_vms: list('persistent_vms'), instances: list('instances') };
}

/**
 * Reads messages from aleph's API server (`GET {api}/api/v0/messages.json?hashes=<h>`,
 * as aleph-vm does): the first message, or undefined when there is none.
 * Bounded in time and size; no redirects.
 */
export function httpMessageFetcher(apiServer: string, opts: { timeoutMs?: number; maxBytes?: number } = {}): MessageFetcher {
  const base = apiServer.replace(/\/+$/, '');
  return async (itemHash) => {
    const body = await fetchJsonBounded(`${base}/api/v0/messages.json?hashes=${encodeURIComponent(itemHash)}`, opts, 'aleph message');
    const list = (body as { messages?: unknown } | undefined)?.messages;
    return Array.isArray(list) && list.length > 0 ? (list[0] as unknown) : undefined;
  };
}

/** sha256 (hex) of a scheduler token, the form aleph configures (ALLOCATION_TOKEN_HASH). */
export function allocationTokenHash(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}
