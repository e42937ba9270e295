/**
 * JSON requests to the daemon (SimClient): guest-launch firmware commands as
 * KVM would issue them, plus control operations. Each request is
 * `{id, op, args}`; each reply `{id, ok: true, result}` or `{id, ok: false, error: {code, message, fwStatus?}}`.
 * A request may wait for its input (launchUpdateFile's file read) before its command runs; the
 * command itself runs synchronously (guests.ts guestOp).
 */
import { SevkitError } from '../errors.js';
import type { SimPlatform } from './platform.js';
import type { FaultSpec } from './faults.js';
import { guestOp, isGuestOp, prepareGuestOp, type GuestContext } from './guests.js';

/** A request as SimClient sends it (every field unchecked: the daemon validates each). */
export interface JsonRequest {
  id?: unknown;
  op?: unknown;
  args?: unknown;
  /** $SEVKIT_SIM_TAG of the client */
  tag?: unknown;
  /** pid of the client */
  pid?: unknown;
}

/** The daemon's answer to one request, carrying the request's id. */
export interface JsonReply {
  id: unknown;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string; fwStatus?: number; fwStatusName?: string };
}

/**
 * Answers one JSON request; never rejects (a refusal is a reply). `signal` withdraws it when its
 * connection closes while its input is still being gathered.
 */
export async function handleJson(platform: SimPlatform, msg: unknown, ctx?: GuestContext, signal?: AbortSignal): Promise<JsonReply> {
  const req = (msg ?? {}) as JsonRequest;
  const id = req.id ?? null;
  const args = (req.args ?? {}) as Record<string, unknown>;
  if (ctx && typeof req.tag === 'string' && req.tag) ctx.tag = req.tag;
  if (ctx && typeof req.pid === 'number' && Number.isInteger(req.pid)) ctx.pid = req.pid;
  try {
    switch (req.op) {
      case 'ping':
        return { id, ok: true, result: { simulated: true, stateDir: platform.stateDir, seed: platform.seed } };
      case 'status':
        return {
          id,
          ok: true,
          result: {
            simulated: true,
            state: platform.state,
            owner: platform.ownership,
            api: platform.api,
            guestCount: platform.guests.size,
          },
        };
      case 'injectFault':
        platform.injectFault(args as FaultSpec);
        return { id, ok: true, result: {} };
      case 'clearFaults':
        platform.faults.clear();
        return { id, ok: true, result: {} };
      default:
        if (typeof req.op === 'string' && isGuestOp(req.op)) {
          const input = await prepareGuestOp(platform, req.op, args, signal);
          return { id, ok: true, result: guestOp(platform, req.op, args, ctx, input) };
        }
        return { id, ok: false, error: { code: 'ERR_SIM_OP', message: `unknown operation ${String(req.op)}` } };
    }
  } catch (e) {
    if (e instanceof SevkitError) {
      const fwStatus = (e as { fwStatus?: number }).fwStatus;
      const fwStatusName = (e as { fwStatusName?: string }).fwStatusName;
      return {
        id,
        ok: false,
        error: { code: e.code, message: e.message, ...(fwStatus === undefined ? {} : { fwStatus }), ...(fwStatusName === undefined ? {} : { fwStatusName }) },
      };
    }
    return { id, ok: false, error: { code: 'ERR_SIM_INTERNAL', message: (e as Error).message } };
  }
}
