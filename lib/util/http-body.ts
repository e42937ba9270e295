/**
 * Small HTTP server helpers shared by every sevkit HTTP service (the CRN, the
 * SNP guest agent): JSON/text responses, typed HTTP errors and the one bounded
 * body reader. Bodies are never logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An answer a handler throws: status, body (JSON unless `text`) and extra headers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    /** Plain-text bodies are sent as is (aleph's 403 "Unauthorized sender"). */
    readonly text = false,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof body === 'string' ? body : JSON.stringify(body));
  }
}

/** `{"error": reason}` with a status, as aleph's error middleware produces. */
export function errorJson(status: number, reason: string, headers: Record<string, string> = {}): HttpError {
  return new HttpError(status, { error: reason }, false, headers);
}

/** Send `body` as JSON with its length. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length });
  res.end(data);
}

/** Send plain text with its length. */
export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const data = Buffer.from(text, 'utf8');
  res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': data.length });
  res.end(data);
}

/** Send an HttpError as its status and body. */
export function sendError(res: ServerResponse, e: HttpError): void {
  if (e.text) sendText(res, e.status, String(e.body), e.headers);
  else sendJson(res, e.status, e.body, e.headers);
}

/** 413 for a body over `limit`; the connection closes so the rest is not parsed. */
export function bodyTooLarge(limit: number): HttpError {
  return errorJson(413, `Request body larger than ${limit} bytes`, { Connection: 'close' });
}

/** Whether the client announced (Content-Length) a body over `limit`: refused before reading a byte. */
export function declaresMoreThan(req: IncomingMessage, limit: number): boolean {
  const declared = Number(req.headers['content-length'] ?? '0');
  return Number.isFinite(declared) && declared > limit;
}

/** Deadline and size of one request body. */
export interface BodyOptions {
  /** Whole body, bytes: over it is a 413 (refused before reading when Content-Length says so). */
  limit: number;
  /** The whole body must arrive within this many ms of the first read (408 after). Default 20 s. */
  timeoutMs?: number;
}

/** Default deadline for a whole request body, ms. */
export const DEFAULT_BODY_TIMEOUT_MS = 20_000;

/**
 * The one place a request body is read: every request stream error, abort,
 * early close, size overrun and missed deadline ends here as an HttpError
 * (400 aborted, 408 too slow, 413 too large), never as an 'error' event nobody
 * listens to. The stream is drained (or destroyed) afterwards so a refused body
 * is not parsed further; refusals carry `Connection: close`.
 */
export function readBody(req: IncomingMessage, limitOrOpts: number | BodyOptions): Promise<Buffer> {
  const o: BodyOptions = typeof limitOrOpts === 'number' ? { limit: limitOrOpts } : limitOrOpts;
  const limit = o.limit;
  const timeoutMs = o.timeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    if (declaresMoreThan(req, limit)) {
      req.resume();
      reject(bodyTooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const cleanup = (): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      // onError stays attached for good (fail() is a no-op once settled): a late error on a refused stream must not be unhandled.
    };
    const fail = (e: HttpError): void => {
      if (done) return;
      done = true;
      cleanup();
      // Discard what is still coming; the response closes the connection.
      req.resume();
      reject(e);
    };
    const onData = (c: Buffer): void => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        fail(bodyTooLarge(limit));
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => {
      if (done) return;
      done = true;
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (): void => fail(errorJson(400, 'Request body aborted', { Connection: 'close' }));
    // 'close' before 'end' is a client that hung up mid-body.
    const onClose = (): void => fail(errorJson(400, 'Request body aborted', { Connection: 'close' }));
    const timer = setTimeout(() => fail(errorJson(408, `Request body not received within ${timeoutMs} ms`, { Connection: 'close' })), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** Reads a JSON body through readBody; 400 when it is not JSON. */
export async function readJsonBody(req: IncomingMessage, opts: BodyOptions): Promise<unknown> {
  const body = await readBody(req, opts);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw errorJson(400, 'Body is not valid JSON');
  }
}
