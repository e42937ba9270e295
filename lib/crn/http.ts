/**
 * Small HTTP helpers for the CRN handler: aleph-style responses and bounded
 * body reading. Bodies are never logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

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

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length });
  res.end(data);
}

export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const data = Buffer.from(text, 'utf8');
  res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': data.length });
  res.end(data);
}

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

/**
 * Reads a request body up to `limit` bytes. Refuses early on a declared
 * Content-Length above the limit and stops reading as soon as the limit is
 * crossed (413, connection closed so the rest is not parsed).
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (declaresMoreThan(req, limit)) {
      reject(bodyTooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        req.pause();
        reject(bodyTooLarge(limit));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (done) return;
      done = true;
      reject(err);
    });
  });
}

/** Strict standard base64 (padded, no whitespace), as aleph's clients send. */
export function decodeStrictBase64(s: unknown): Buffer | undefined {
  if (typeof s !== 'string' || s.length === 0 || s.length % 4 !== 0) return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  // Reject non-canonical encodings (stray bits in the last character).
  return b.toString('base64') === s ? b : undefined;
}
