import { describe, expect, it } from 'vitest';
import { parseListen } from '../../lib/crn/server.js';
import { clipPath, tokenEquals } from '../../lib/crn/service.js';
import { toAlephSevInfo } from '../../lib/aleph/sev-info.js';
import { decodeStrictBase64 } from '../../lib/util/base64.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseMeasurement, CrnHttpError, CrnClient, CrnUnreachableError } from '../../lib/owner/client.js';

describe('crn helpers', () => {
  it('parseListen takes HOST:PORT and [v6]:PORT, refuses the rest', () => {
    expect(parseListen('127.0.0.1:4020')).toEqual({ host: '127.0.0.1', port: 4020 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(() => parseListen('4020')).toThrow(/HOST:PORT/);
    expect(() => parseListen('h:70000')).toThrow(/HOST:PORT/);
  });

  it('clipPath keeps a request log line on one line, for long paths too', () => {
    const decoded = decodeURIComponent(`/${'a'.repeat(300)}%0d%0aGET /forged 200 0.1ms`);
    expect(clipPath(decoded)).not.toMatch(/[\r\n]/);
    expect(clipPath(decoded)).toBe(`/${'a'.repeat(199)}…`);
    expect(clipPath('/x\n')).toBe('/x?');
    expect(clipPath(`/${'b'.repeat(190)}\r\nGET /forged`)).toBe(`/${'b'.repeat(190)}??GET /fo…`);
  });

  it('tokenEquals compares whole tokens', () => {
    expect(tokenEquals('abc', 'abc')).toBe(true);
    expect(tokenEquals('abc', 'abd')).toBe(false);
    expect(tokenEquals('ab', 'abc')).toBe(false);
    expect(tokenEquals('', 'abc')).toBe(false);
  });

  it('maps QMP query-sev (QEMU 7.2 and 9.1 shapes) to aleph sev_info', () => {
    const q = { enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 21, policy: 1, state: 'launch-secret', handle: 3, 'sev-type': 'sev' };
    expect(toAlephSevInfo(q)).toEqual({ enabled: true, api_major: 1, api_minor: 55, build_id: 21, policy: 1, state: 'launch-secret', handle: 3 });
  });

  it('strict base64 refuses whitespace, bad padding and non-canonical tails', () => {
    expect(decodeStrictBase64('AAAA')).toEqual(Buffer.alloc(3));
    for (const bad of ['AAA', 'AA AA', 'AAAA\n', 'AB==', '@@@@', 12]) expect(decodeStrictBase64(bad), String(bad)).toBeUndefined();
  });

  it('the owner refuses malformed measurement answers', () => {
    const ok = { sev_info: { enabled: true, api_major: 1, api_minor: 55, build_id: 2, policy: 1, state: 'launch-secret', handle: 1 }, launch_measure: 'x' };
    expect(parseMeasurement(Buffer.from(JSON.stringify({ ...ok, extra: 1 }))).sev_info.handle).toBe(1);
    for (const bad of [
      'not json',
      '{}',
      JSON.stringify({ ...ok, sev_info: { ...ok.sev_info, policy: -1 } }),
      JSON.stringify({ ...ok, sev_info: { ...ok.sev_info, api_major: '1' } }),
      JSON.stringify({ ...ok, sev_info: { ...ok.sev_info, enabled: 'yes' } }),
      JSON.stringify({ ...ok, launch_measure: 5 }),
      JSON.stringify({ ...ok, sev_info: { ...ok.sev_info, state: 'launch-secret\x1b]0;owned\x07' } }),
      JSON.stringify({ ...ok, sev_info: { ...ok.sev_info, state: '' } }),
      JSON.stringify({ ...ok, sev_info: { ...ok.sev_info, state: 'x'.repeat(65) } }),
    ]) {
      expect(() => parseMeasurement(Buffer.from(bad)), bad).toThrow(CrnHttpError);
    }
  });

  it('error details: aleph JSON error, description, or printable text', () => {
    expect(CrnClient.detail(Buffer.from('{"error":"Token expired"}'))).toBe('Token expired');
    expect(CrnClient.detail(Buffer.from('{"code":"vm_running","description":"Operation not allowed"}'))).toBe('Operation not allowed');
    expect(CrnClient.detail(Buffer.from('Unauthorized sender\x1b[31m'))).toBe('Unauthorized sender[31m');
    // A hostile CRN's JSON texts reach the owner's terminal only as printable ASCII.
    expect(CrnClient.detail(Buffer.from(JSON.stringify({ error: 'Token expired\x1b[2J\nsevkit: VM is running' })))).toBe(
      'Token expired[2Jsevkit: VM is running',
    );
    expect(CrnClient.detail(Buffer.from(JSON.stringify({ description: 'a\rb' })))).toBe('ab');
  });

  it('a CRN that stalls or hangs up in the middle of a body is unreachable (typed), not an internal error', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': 8336 });
      res.write(Buffer.alloc(100));
      if (req.url === '/about/certificates') return; // stall: the rest never comes
      res.socket?.destroy();
    });
    server.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const stalled = new CrnClient({ url, timeoutMs: 300 }).getCertificates();
      await expect(stalled).rejects.toThrow(CrnUnreachableError);
      await expect(stalled).rejects.toThrow(
        /CRN certificates: http:\/\/127\.0\.0\.1:\d+: no complete answer within 300 ms \(stalled in the body \(100 body bytes received\)\)/,
      );
      const dropped = new CrnClient({ url, timeoutMs: 5000 }).statusConfig();
      await expect(dropped).rejects.toThrow(CrnUnreachableError);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('the client refuses non-http URLs', () => {
    expect(() => new CrnClient({ url: 'file:///etc/passwd' })).toThrow(/http/);
    expect(new CrnClient({ url: 'https://crn.example.org/' }).domain).toBe('crn.example.org');
  });
});
