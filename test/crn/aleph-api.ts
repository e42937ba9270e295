/**
 * A fake aleph API server (pyaleph) on a local port, for the CRN's aleph
 * endpoints: INSTANCE messages by item hash (`/api/v0/messages.json?hashes=`)
 * and owners' "security" aggregates (`/api/v0/aggregates/{addr}.json?keys=security`).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeAlephApi {
  url: string;
  messages: Map<string, unknown>;
  /** owner address → value of its "security" aggregate key. */
  security: Map<string, unknown>;
  /** Every path+query asked, in order. */
  requests: string[];
  /** While set, message requests wait for it before answering (a slow API server). */
  hold?: Promise<void>;
  close(): Promise<void>;
}

/** An aleph INSTANCE message for a confidential VM (aleph-message 1.1 shape). */
export function instanceMessage(o: { ref: string; owner: string; firmware: string; policy?: number; nodeHash?: string; confidential?: boolean }): unknown {
  return {
    type: 'INSTANCE',
    item_hash: o.ref,
    sender: o.owner,
    chain: o.owner.startsWith('0x') ? 'ETH' : 'SOL',
    content: {
      address: o.owner,
      time: 1_760_000_000.5,
      allow_amend: false,
      environment: {
        internet: true,
        aleph_api: true,
        hypervisor: 'qemu',
        ...(o.confidential === false ? {} : { trusted_execution: { firmware: o.firmware, policy: o.policy ?? 1 } }),
      },
      resources: { vcpus: 1, memory: 512, seconds: 30 },
      rootfs: { parent: { ref: 'e'.repeat(64), use_latest: true }, persistence: 'host', size_mib: 20480 },
      payment: { chain: 'ETH', type: 'hold' },
      requirements: o.nodeHash ? { node: { node_hash: o.nodeHash } } : null,
    },
  };
}

export async function startFakeAlephApi(): Promise<FakeAlephApi> {
  const api = { messages: new Map(), security: new Map(), requests: [] as string[] } as unknown as FakeAlephApi;
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    api.requests.push(`${u.pathname}${u.search}`);
    const send = (status: number, body: unknown) => {
      const b = Buffer.from(JSON.stringify(body));
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': b.length });
      res.end(b);
    };
    if (u.pathname === '/api/v0/messages.json') {
      const h = u.searchParams.get('hashes') ?? '';
      void Promise.resolve(api.hold).then(() => {
        const m = api.messages.get(h);
        send(200, { messages: m ? [m] : [], pagination_page: 1, pagination_total: m ? 1 : 0, pagination_per_page: 20, pagination_item: 'messages' });
      });
      return;
    }
    const agg = /^\/api\/v0\/aggregates\/([^/]+)\.json$/.exec(u.pathname);
    if (agg && u.searchParams.get('keys') === 'security') {
      const addr = decodeURIComponent(agg[1]!);
      const sec = api.security.get(addr);
      if (sec === undefined) return send(404, { error: 'Aggregate not found' });
      return send(200, { address: addr, data: { security: sec }, info: {} });
    }
    send(404, { error: 'not found' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  api.close = async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return api;
}
