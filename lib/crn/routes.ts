/**
 * Extra routes an embedder (or another sevkit module, e.g. aleph's allocation
 * endpoints in allocations.ts) mounts on the CRN service without touching its
 * dispatcher.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * What a route handler gets besides the request: the service and the mode's JSON writer. `S` is the
 * service's type (CrnService), a parameter so that this module need not import the service.
 */
export interface CrnRouteContext<S = unknown> {
  service: S;
  /** Sends `body` as JSON the way the service's mode serialises it. */
  json(status: number, body: unknown, headers?: Record<string, string>): void;
}

/** One exact path and method. A handler may throw an HttpError (sent as is) or anything else (a 500). */
export interface CrnRoute<S = unknown> {
  method: 'GET' | 'POST';
  path: string;
  handle(req: IncomingMessage, res: ServerResponse, ctx: CrnRouteContext<S>): Promise<void>;
}

/** A bundle of routes, plus (optionally) allocations still being registered that owner requests should wait for. */
export interface CrnExtension<S = unknown> {
  routes: CrnRoute<S>[];
  /** A promise that settles once `ref`'s allocation in progress is done; undefined when none is. */
  pending?(ref: string): Promise<unknown> | undefined;
}
