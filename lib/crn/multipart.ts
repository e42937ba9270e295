/**
 * Bounded multipart/form-data parsing (busboy) for the initialize upload:
 * named parts only, a few of them, each small. aleph's clients send `session`
 * and `godh` as file parts; plain text fields with the same names are accepted
 * too (aleph itself crashes with a 500 on those).
 *
 * The body is read whole (≤ maxBodyBytes) by http.ts's readBody, the one place
 * request streams are consumed, and only then parsed from memory: a body cut
 * off or aborted mid-part is readBody's 400, a malformed one is this parser's
 * 400, and no parser stream outlives the call or emits an unheard 'error'.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { errorJson, HttpError, readBody } from './http.js';

export interface MultipartLimits {
  /** Whole body, bytes (aleph/aiohttp default: 1 MiB). */
  maxBodyBytes: number;
  /** Per part, bytes. */
  maxPartBytes: number;
  /** Number of parts (files + fields). */
  maxParts: number;
}

export const DEFAULT_MULTIPART_LIMITS: MultipartLimits = { maxBodyBytes: 1 << 20, maxPartBytes: 16 * 1024, maxParts: 4 };

/**
 * Reads and parses the body into a map name → bytes. Rejects with HttpError:
 * 400 (not multipart, malformed, duplicate part, aborted), 408 (body deadline,
 * `timeoutMs`, default http.ts's), 413 (body, part or part count over the limits).
 */
export async function readMultipart(
  req: IncomingMessage,
  limits: MultipartLimits = DEFAULT_MULTIPART_LIMITS,
  opts: { timeoutMs?: number } = {},
): Promise<Map<string, Buffer>> {
  if (!/^multipart\/form-data\s*;/i.test(req.headers['content-type'] ?? '')) {
    req.resume();
    throw errorJson(400, 'Body is not multipart/form-data', { Connection: 'close' });
  }
  const body = await readBody(req, { limit: limits.maxBodyBytes, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
  return parseMultipart(req.headers, body, limits);
}

/** Parses a complete multipart body held in memory. Rejects with HttpError 400/413, nothing else. */
export function parseMultipart(headers: IncomingHttpHeaders, body: Buffer, limits: MultipartLimits = DEFAULT_MULTIPART_LIMITS): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers,
        limits: {
          fileSize: limits.maxPartBytes,
          fieldSize: limits.maxPartBytes,
          parts: limits.maxParts,
          files: limits.maxParts,
          fields: limits.maxParts,
          headerPairs: 16,
        },
      });
    } catch {
      reject(errorJson(400, 'Body is not multipart/form-data'));
      return;
    }
    const parts = new Map<string, Buffer>();
    let settled = false;
    const fail = (e: HttpError): void => {
      if (settled) return;
      settled = true;
      reject(e);
    };
    const malformed = (): void => fail(errorJson(400, 'Malformed multipart body'));
    const partTooLarge = (name: string): HttpError =>
      errorJson(413, `Part '${name.slice(0, 40)}' larger than ${limits.maxPartBytes} bytes`, { Connection: 'close' });
    const put = (name: string, data: Buffer): void => {
      if (parts.has(name)) fail(errorJson(400, `Duplicate part '${name.slice(0, 40)}'`));
      else parts.set(name, data);
    };
    bb.on('file', (name, stream) => {
      const chunks: Buffer[] = [];
      let truncated = false;
      // busboy errors the part stream on a body that ends inside it: heard here, answered as malformed.
      stream.on('error', malformed);
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => {
        truncated = true;
        fail(partTooLarge(name));
      });
      stream.on('end', () => {
        if (!truncated) put(name, Buffer.concat(chunks));
      });
    });
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(partTooLarge(name));
      else put(name, Buffer.from(value, 'utf8'));
    });
    const tooManyParts = (): void => fail(errorJson(413, `More than ${limits.maxParts} parts`, { Connection: 'close' }));
    bb.on('partsLimit', tooManyParts);
    bb.on('filesLimit', tooManyParts);
    bb.on('fieldsLimit', tooManyParts);
    bb.on('error', malformed);
    bb.on('close', () => {
      if (settled) return;
      settled = true;
      resolve(parts);
    });
    try {
      bb.end(body);
    } catch {
      malformed();
    }
  });
}
