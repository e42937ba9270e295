/**
 * Who may act on a VM, once the caller's wallet is authenticated (auth.ts).
 *
 * The service asks an `Authorizer` (owner, caller → allowed). The default is
 * the exact owner. aleph-vm (views/operator.py `is_sender_authorized`) also
 * lets the owner delegate: its "security" aggregate on the aleph network lists
 * `authorizations[]`, each `{address, types?}`; an entry whose address is the
 * caller and whose `types` is empty or contains "INSTANCE" allows it.
 * `alephSecurityAggregateAuthorizer` is that rule, over a fetcher an embedder
 * injects (`httpAggregateFetcher` reads aleph's API server), with aleph's
 * 120 s cache.
 */
import { SevkitError } from '../errors.js';
import { isOwner, type VerifiedCaller } from '../aleph/auth.js';

/** What an authorizer is asked: may `caller` act on the VM `ref` that `owner` allocated? */
export interface AuthorizeRequest {
  /** The VM's owner address (the instance message's `content.address`). */
  owner: string;
  caller: VerifiedCaller;
  ref: string;
}

/** Decides whether an authenticated caller may act on a VM. A throw counts as "no". */
export type Authorizer = (r: AuthorizeRequest) => boolean | Promise<boolean>;

/** The default rule: only the owner itself (ETH addresses compared case-insensitively, SOL exactly). */
export const exactOwner: Authorizer = ({ owner, caller }) => isOwner(caller, owner);

/** Fetches the owner's "security" aggregate value (`data.security` of aleph's answer); undefined when it has none. */
export type AggregateFetcher = (owner: string) => Promise<unknown>;

/** aleph's CACHE_TTL_SECURITY_AGGREGATE. */
export const SECURITY_AGGREGATE_TTL_MS = 120_000;
/** Bound on one aggregate fetch and its body. */
export const AGGREGATE_TIMEOUT_MS = 10_000;
/** Largest security aggregate response read from the aleph API (1 MiB). */
export const AGGREGATE_MAX_BYTES = 1 << 20;

/** aleph's API server could not be reached, or did not answer with what aleph serves (an aggregate, a message). */
export class AlephApiError extends SevkitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CRN_ALEPH_API', message, options);
  }
}

function sameAddress(caller: VerifiedCaller, address: string): boolean {
  return caller.chain === 'ETH' ? address.toLowerCase() === caller.address.toLowerCase() : address === caller.address;
}

/**
 * Whether a security aggregate value delegates INSTANCE operations to `caller`
 * (aleph's rule; malformed entries are skipped, never trusted).
 */
export function securityAggregateAllows(security: unknown, caller: VerifiedCaller): boolean {
  if (!security || typeof security !== 'object') return false;
  const list = (security as { authorizations?: unknown }).authorizations;
  if (!Array.isArray(list)) return false;
  for (const entry of list as unknown[]) {
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) continue;
    const e = entry as { address?: unknown; types?: unknown };
    if (typeof e.address !== 'string' || !sameAddress(caller, e.address)) continue;
    const types = e.types ?? [];
    if (!Array.isArray(types)) continue;
    if (types.length === 0 || types.includes('INSTANCE')) return true;
  }
  return false;
}

/**
 * Options of alephSecurityAggregateAuthorizer: the aggregate fetcher, cache lifetime (ms) and size, and an error
 * hook.
 */
export interface AggregateAuthorizerOptions {
  fetchAggregate: AggregateFetcher;
  /** How long a fetched aggregate is reused (default aleph's 120 s). Failures are not cached. */
  ttlMs?: number;
  now?: () => number;
  /** Told when a fetch fails (the caller is then refused). */
  onError?: (owner: string, e: unknown) => void;
  /** Largest number of owners kept in the cache (oldest dropped first). */
  maxEntries?: number;
}

/**
 * The exact owner, or a delegate named in the owner's aleph security
 * aggregate. A failed fetch refuses the delegate (as aleph does) but never the owner.
 */
export function alephSecurityAggregateAuthorizer(o: AggregateAuthorizerOptions): Authorizer {
  const ttl = o.ttlMs ?? SECURITY_AGGREGATE_TTL_MS;
  const now = o.now ?? Date.now;
  const max = o.maxEntries ?? 4096;
  const cache = new Map<string, { at: number; value: Promise<unknown> }>();
  return async ({ owner, caller }) => {
    if (isOwner(caller, owner)) return true;
    const key = owner.startsWith('0x') ? owner.toLowerCase() : owner;
    let hit = cache.get(key);
    if (!hit || now() - hit.at >= ttl) {
      // Concurrent requests for one owner share one fetch.
      const entry = { at: now(), value: o.fetchAggregate(owner) };
      cache.delete(key);
      cache.set(key, entry);
      if (cache.size > max) cache.delete(cache.keys().next().value!);
      entry.value.catch(() => {
        if (cache.get(key) === entry) cache.delete(key);
      });
      hit = entry;
    }
    try {
      return securityAggregateAllows(await hit.value, caller);
    } catch (e) {
      o.onError?.(owner, e);
      return false;
    }
  };
}

/**
 * Reads `GET {apiServer}/api/v0/aggregates/{owner}.json?keys=security` (aleph's
 * API) and returns `data.security`. No redirects; bounded in time and size.
 */
export function httpAggregateFetcher(apiServer: string, opts: { timeoutMs?: number; maxBytes?: number } = {}): AggregateFetcher {
  const base = apiServer.replace(/\/+$/, '');
  return async (owner) => {
    const body = await fetchJsonBounded(`${base}/api/v0/aggregates/${encodeURIComponent(owner)}.json?keys=security`, opts, 'security aggregate');
    if (body === undefined) return undefined; // 404: the owner has no aggregate
    const data = (body as { data?: unknown } | null)?.data;
    return data && typeof data === 'object' ? (data as { security?: unknown }).security : undefined;
  };
}

/**
 * GET a JSON document with a deadline over connect, headers and body, and a size
 * bound. Resolves undefined on 404; throws AlephApiError on anything else
 * that is not a 200 with JSON.
 */
export async function fetchJsonBounded(url: string, opts: { timeoutMs?: number; maxBytes?: number }, what: string): Promise<unknown> {
  const max = opts.maxBytes ?? AGGREGATE_MAX_BYTES;
  let res: Response;
  const signal = AbortSignal.timeout(opts.timeoutMs ?? AGGREGATE_TIMEOUT_MS);
  try {
    res = await fetch(url, { redirect: 'error', signal });
  } catch (e) {
    throw new AlephApiError(`${what}: cannot reach ${url}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
  if (res.status === 404) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new AlephApiError(`${what}: ${url} answered HTTP ${res.status}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      size += c.length;
      if (size > max) throw new AlephApiError(`${what}: ${url} sent more than ${max} bytes`);
      chunks.push(Buffer.from(c));
    }
  } catch (e) {
    if (e instanceof AlephApiError) throw e;
    throw new AlephApiError(`${what}: reading ${url}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new AlephApiError(`${what}: ${url} did not send JSON`);
  }
}
