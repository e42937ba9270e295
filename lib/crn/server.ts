/**
 * Mounts the CRN handler on a node:http server. `sevkit crn serve` and the
 * demo use this; embedders can mount `CrnService.handler` on their own server.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CrnService, type CrnServiceOptions } from './service.js';
import { InputError } from '../errors.js';

/** A running CRN HTTP server: the service, the node:http server and the bound URL. */
export interface CrnServer {
  service: CrnService;
  server: http.Server;
  /** http://HOST:PORT with the port actually bound. */
  url: string;
  /** Stops accepting requests, stops every VM, closes idle connections. */
  close(): Promise<void>;
}

/** `HOST:PORT` or `[IPv6]:PORT` → its parts; InputError for anything else (port above 65535 included). */
export function parseListen(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(spec.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new InputError(`a listen address must be HOST:PORT, got '${spec}'`, 'ERR_LISTEN_ADDRESS');
  return { host: (m[1] ?? m[2])!, port };
}

/** Starts a CrnService on a node:http server listening on host:port (port 0: any free one); rejects with the listen error (EADDRINUSE, ...). */
export async function startCrnServer(opts: CrnServiceOptions & { host: string; port: number }): Promise<CrnServer> {
  const service = new CrnService(opts);
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000, maxHeaderSize: 32 * 1024 }, service.handler);
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    service,
    server,
    url: `http://${host}:${addr.port}`,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        await service.close();
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}
