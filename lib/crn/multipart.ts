/**
 * Bounded multipart/form-data parsing (busboy) for the initialize upload:
 * named parts only, a few of them, each small. aleph's clients send `session`
 * and `godh` as file parts; plain text fields with the same names are accepted
 * too (aleph itself crashes with a 500 on those).
 */
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { bodyTooLarge, declaresMoreThan, errorJson, HttpError } from './http.js';

export interface MultipartLimits {
  /** Whole body, bytes (aleph/aiohttp default: 1 MiB). */
  maxBodyBytes: number;
  /** Per part, bytes. */
  maxPartBytes: number;
  /** Number of parts (files + fields). */
  maxParts: number;
}

export const DEFAULT_MULTIPART_LIMITS: MultipartLimits = { maxBodyBytes: 1 << 20, maxPartBytes: 16 * 1024, maxParts: 4 };

/** Parses the body into a map name → bytes. Rejects with HttpError (400/413). */
export function readMultipart(req: IncomingMessage, limits: MultipartLimits = DEFAULT_MULTIPART_LIMITS): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    if (declaresMoreThan(req, limits.maxBodyBytes)) {
      reject(bodyTooLarge(limits.maxBodyBytes));
      return;
    }
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
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
    let failed: HttpError | undefined;
    let total = 0;
    const fail = (e: HttpError): void => {
      if (failed) return;
      failed = e;
      req.unpipe(bb);
      req.resume();
      reject(e);
    };
    const partTooLarge = (name: string): HttpError => errorJson(413, `Part '${name.slice(0, 40)}' larger than ${limits.maxPartBytes} bytes`, { Connection: 'close' });
    const put = (name: string, data: Buffer): void => {
      if (parts.has(name)) fail(errorJson(400, `Duplicate part '${name.slice(0, 40)}'`));
      else parts.set(name, data);
    };
    bb.on('file', (name, stream) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(partTooLarge(name)));
      stream.on('close', () => {
        if (!failed) put(name, Buffer.concat(chunks));
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
    bb.on('error', () => fail(errorJson(400, 'Malformed multipart body')));
    bb.on('close', () => {
      if (!failed) resolve(parts);
    });
    req.on('data', (c: Buffer) => {
      total += c.length;
      if (total > limits.maxBodyBytes) fail(bodyTooLarge(limits.maxBodyBytes));
    });
    req.on('error', () => fail(errorJson(400, 'Request body aborted')));
    req.pipe(bb);
  });
}
