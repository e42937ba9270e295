/**
 * Mounts the CRN handler on a node:http server. `sevkit crn serve` and the
 * demo use this; embedders can mount `CrnService.handler` on their own server.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CrnService, type CrnServiceOptions } from './service.js';
import { InputError, SevkitError } from '../errors.js';

/** The address cannot be listened on (busy, privileged port, no such address): one line naming it and what to do. */
export class ListenError extends SevkitError {
  constructor(
    readonly address: string,
    readonly errno: string,
    message: string,
  ) {
    super('ERR_LISTEN', message);
  }
}

/** The operator's line for a listen() failure on `address`. */
export function listenError(e: unknown, host: string, port: number): ListenError {
  const code = (e as NodeJS.ErrnoException)?.code ?? '';
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const why: Record<string, string> = {
    EADDRINUSE: 'the address is already in use (another crn serve or service holds it); stop that one or choose another port',
    EACCES: `permission denied${port < 1024 ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : ''}; choose a port of 1024 or more`,
    EADDRNOTAVAIL: 'no network interface of this host has that address; listen on one it has (e.g. 127.0.0.1 or 0.0.0.0)',
    ENOTFOUND: 'the host name does not resolve; give an IP address',
  };
  return new ListenError(address, code, `cannot listen on ${address}: ${why[code] ?? (code || (e as Error)?.message || String(e))}`);
}

/** A running CRN HTTP server: the service, the node:http server and the bound URL. */
export interface CrnServer {
  service: CrnService;
  server: http.Server;
  /** http://HOST:PORT with the port actually bound. */
  url: string;
  /** Stops accepting requests, stops every VM (or, with keepVms, leaves them for the next start), closes connections. */
  close(opts?: { keepVms?: boolean }): Promise<void>;
}

/** `HOST:PORT` or `[IPv6]:PORT` → its parts; InputError for anything else (port above 65535 included). */
export function parseListen(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(spec.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new InputError(`a listen address must be HOST:PORT, got '${spec}'`, 'ERR_LISTEN_ADDRESS');
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * Starts the service (adopting the VMs an earlier process on the same run dir
 * left running), then listens. A listen failure is a ListenError, and the
 * adopted VMs are left running for the next attempt.
 */
export async function startCrnServer(opts: CrnServiceOptions & { host: string; port: number }): Promise<CrnServer> {
  const service = new CrnService(opts);
  try {
    await service.restored();
  } catch (e) {
    await service.close({ keepVms: true });
    throw e;
  }
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000, maxHeaderSize: 32 * 1024 }, service.handler);
  server.keepAliveTimeout = 5_000;
  // A client may half-close (FIN) right after its request (`nc -N`, scripts): by default node:http then ends
  // the socket at once, dropping every answer not ready at that moment (the first certificate export, any
  // launch step). With this, pending answers are sent and the socket ends after the last one.
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    await service.close({ keepVms: true });
    throw listenError(e, opts.host, opts.port);
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    service,
    server,
    url: `http://${host}:${addr.port}`,
    close(o: { keepVms?: boolean } = {}) {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        await service.close(o);
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}
