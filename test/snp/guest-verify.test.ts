/**
 * The whole path on the simulator: `sevkit snp report` inside the (simulated)
 * guest issues SNP_GET_EXT_REPORT through the addon and the shim; the verifier
 * (lib/snp/verify.ts) fetches the VCEK, cert_chain and CRL from the loopback KDS
 * stand-in with the real KDS client, and accepts the report under the
 * simulator's TEST roots — and only under them: AMD's built-in roots refuse it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownSimSkipReason, runCli } from '../helpers/cli.js';
import { startSim, type SimSession } from '../../lib/sim/session.js';
import { SimSnpGuest } from '../../lib/sim/snp/guest.js';
import { SimKdsServer } from '../../lib/sim/snp/kds-server.js';
import { writeSnpGuestConfig } from '../../lib/sim/snp/config.js';
import { KdsClient } from '../../lib/snp/kds.js';
import { parseReport } from '../../lib/snp/report.js';
import { verifySnpReport } from '../../lib/snp/verify.js';
import { certTableEntry, parseCertTable } from '../../lib/snp/certtable.js';
import type { ProductRoots } from '../../lib/snp/roots.js';
import type { SnpProduct } from '../../lib/snp/product.js';

const skip = ownSimSkipReason();

describe.skipIf(skip)('guest ioctl → KDS stand-in → verify', () => {
  let dir: string;
  let sim: SimSession;
  let guest: SimSnpGuest;
  let kds: SimKdsServer;
  let testRoots: (p: SnpProduct) => ProductRoots;
  const measurement = crypto.createHash('sha384').update('the launch this test expects').digest();

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-snp-path-'));
    sim = await startSim({ stateDir: path.join(dir, 'state'), seed: '1' });
    guest = new SimSnpGuest(sim.daemon.platform);
    kds = await SimKdsServer.start(guest);
    testRoots = (p: SnpProduct): ProductRoots => guest.testRoots(p);
  }, 240_000);

  afterAll(async () => {
    await kds?.close();
    await sim?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const product of ['Milan', 'Genoa', 'Turin'] as const) {
    it(`${product}: a report from the guest verifies with a VCEK fetched from KDS, under the TEST roots only`, async () => {
      writeSnpGuestConfig(sim.stateDir, { product, measurement: measurement.toString('hex') });
      const nonce = crypto.randomBytes(64);
      const out = path.join(dir, `${product}.bin`);
      const r = await runCli(['snp', 'report', '--report-data', nonce.toString('hex'), '--out', out], { env: sim.env, timeoutMs: 90_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const report = fs.readFileSync(out);
      const parsed = parseReport(report);

      const client = new KdsClient({ baseUrl: kds.url, cacheDir: path.join(dir, `kds-${product}`), sameRequestIntervalMs: 0 });
      const vek = await client.vcek(product, parsed.chipId, parsed.reportedTcb);
      expect(vek.source).toBe('kds');
      const chain = await client.certChain(product);
      const crl = await client.crl(product);
      const policy = { measurements: [measurement], reportData: nonce, vmpl: 0, requireCrl: true, allowSmt: true };
      const input = {
        report,
        vek: vek.der,
        intermediate: chain.value.intermediate,
        ark: chain.value.ark,
        crl: crl.der,
        policy,
        at: new Date('2027-06-01T00:00:00Z'),
      };
      const v = verifySnpReport({ ...input, roots: testRoots });
      expect(v.failed).toEqual([]);
      expect(v.ok).toBe(true);
      expect(v.product).toBe(product);
      expect(v.signer).toBe('VCEK');
      expect(kds.hits.map((h) => h.status).every((s) => s === 200)).toBe(true);

      // The same report against AMD's real roots: refused (the chain is TEST only).
      const real = verifySnpReport(input);
      expect(real.ok).toBe(false);
      // And a report whose REPORT_DATA is not the nonce the verifier expects.
      const other = verifySnpReport({ ...input, roots: testRoots, policy: { ...policy, reportData: crypto.randomBytes(64) } });
      expect(other.ok).toBe(false);
      expect(other.failed.map((c) => c.step)).toContain(14);
    }, 180_000);
  }

  it('a VLEK-signed report verifies from the certificate table alone (no network): VLEK under the ASVK', async () => {
    writeSnpGuestConfig(sim.stateDir, { product: 'Genoa', signingKey: 'VLEK', measurement: measurement.toString('hex') });
    const nonce = crypto.randomBytes(64);
    const out = path.join(dir, 'vlek.bin');
    const certs = path.join(dir, 'vlek-certs');
    const r = await runCli(['snp', 'report', '--report-data', nonce.toString('hex'), '--out', out, '--certs-out', certs], { env: sim.env, timeoutMs: 90_000 });
    expect(r.code).toBe(0);
    expect(fs.readdirSync(certs).sort()).toEqual(['ark.der', 'ask.der', 'cert-table.bin', 'vlek.der']);
    const table = parseCertTable(fs.readFileSync(path.join(certs, 'cert-table.bin')));
    const hits = kds.hits.length;
    const v = verifySnpReport({
      report: fs.readFileSync(out),
      vek: certTableEntry(table, 'VLEK')!,
      intermediate: certTableEntry(table, 'ASK')!,
      ark: certTableEntry(table, 'ARK')!,
      policy: { measurements: [measurement], reportData: nonce, allowSmt: true },
      roots: testRoots, // at: now — the TEST VLEK is valid for years
    });
    expect(v.failed).toEqual([]);
    expect(v.signer).toBe('VLEK');
    expect(kds.hits.length).toBe(hits);
    writeSnpGuestConfig(sim.stateDir, {});
  }, 240_000);
});
