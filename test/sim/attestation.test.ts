/**
 * ATTESTATION (0x036) in the simulated firmware, over a private daemon and
 * SimClient as the QEMU wrapper issues it: the legacy 208-byte report carries
 * the mnonce, the launch digest closed by LAUNCH_MEASURE and the policy, and
 * verifies with the PEK the platform exports (lib/certs' report code).
 */
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SimClient } from '../../lib/sim/client.js';
import { createSession } from '../../lib/launch/session.js';
import { computeLaunchDigest, computeMeasure, parseMeasurementBlob } from '../../lib/launch/measurement.js';
import { decodeLegacyReport, verifyLegacyReport, LEGACY_REPORT_SIZE } from '../../lib/certs/report.js';
import { decodeSevCert } from '../../lib/certs/sev-cert.js';
import { Cmd, Ret, issue, privateDaemon, status } from './helpers.js';

const sim = privateDaemon();
const client = sim.client;

/** The PEK from PDH_CERT_EXPORT's chain (PEK ‖ OCA ‖ CEK), as QEMU's query-sev-capabilities gives it. */
async function exportedPek(c: SimClient) {
  const { certChain } = await c.pdhCertExport();
  return decodeSevCert(certChain.subarray(0, 0x824), { name: 'PEK' });
}

describe('ATTESTATION in the simulated firmware', () => {
  it('reports mnonce, the measured launch digest and the policy, signed with the exported PEK', async () => {
    const c = await client();
    const { pdh } = await c.pdhCertExport();
    const policy = 0x1;
    const s = createSession(pdh, policy);
    const h = await c.launchStart({ policy, godh: s.godh, session: s.session });
    const firmware = crypto.randomBytes(16 * 512);
    await c.launchUpdateData(h, firmware);
    const blob = await c.launchMeasure(h);

    const mnonce = crypto.randomBytes(16);
    const raw = await c.attestation(h, mnonce);
    expect(raw.length).toBe(LEGACY_REPORT_SIZE);
    const rep = decodeLegacyReport(raw);
    expect(rep.mnonce.equals(mnonce)).toBe(true);
    const digest = computeLaunchDigest({ firmware });
    expect(rep.launchDigest.equals(digest)).toBe(true);
    expect(rep.policy).toBe(policy);
    expect([rep.sigUsage, rep.sigAlgo, rep.reserved]).toEqual([0x1002, 0x2, 0]);
    const pek = await exportedPek(c);
    expect(verifyLegacyReport(pek, raw)).toBe(true);

    // The same digest is what the owner's TIK-keyed measurement covers.
    const api = await c.api();
    const m = parseMeasurementBlob(blob);
    expect(
      computeMeasure({ digest: rep.launchDigest, mnonce: m.mnonce, tik: s.tik, apiMajor: api.major, apiMinor: api.minor, build: api.build, policy }).equals(
        m.measure,
      ),
    ).toBe(true);

    // Any change to the signed part (mnonce, digest, policy) or to the signature breaks it.
    for (const off of [0x00, 0x1f, 0x30, 0x40, 0x88 + 10]) {
      const bad = Buffer.from(raw);
      bad[off] ^= 0x01;
      expect(verifyLegacyReport(pek, bad), `byte 0x${off.toString(16)}`).toBe(false);
    }
    await c.decommission(h);
  });

  it('is served in launch-secret and running only; the digest stays the measured one', async () => {
    const c = await client();
    const h = await c.launchStart({ policy: 0x3 });
    const firmware = crypto.randomBytes(4096);
    await c.launchUpdateData(h, firmware);
    await expect(c.attestation(h, Buffer.alloc(16))).rejects.toMatchObject({ fwStatus: Ret.INVALID_GUEST_STATE, fwStatusName: 'INVALID_GUEST_STATE' });
    await c.launchMeasure(h);
    const a = decodeLegacyReport(await c.attestation(h, Buffer.alloc(16, 0xaa)));
    await c.launchFinish(h);
    const b = decodeLegacyReport(await c.attestation(h, Buffer.alloc(16, 0xbb)));
    const want = crypto.createHash('sha256').update(firmware).digest();
    expect(a.launchDigest.equals(want) && b.launchDigest.equals(want)).toBe(true);
    expect([a.mnonce[0], b.mnonce[0], a.policy, b.policy]).toEqual([0xaa, 0xbb, 3, 3]);
    await c.decommission(h);
    await expect(c.attestation(h, Buffer.alloc(16))).rejects.toMatchObject({ fwStatus: Ret.INVALID_GUEST });
  });

  it('a LAUNCH_FINISH straight from launch-update closes the digest too', async () => {
    const c = await client();
    const h = await c.launchStart({ policy: 1 });
    const firmware = crypto.randomBytes(4096);
    await c.launchUpdateData(h, firmware);
    await c.launchFinish(h);
    const r = decodeLegacyReport(await c.attestation(h, crypto.randomBytes(16)));
    expect(r.launchDigest.equals(crypto.createHash('sha256').update(firmware).digest())).toBe(true);
    await c.decommission(h);
  });

  it('refuses an mnonce that is not 16 bytes of base64 with INVALID_PARAM', async () => {
    const c = await client();
    const h = await c.launchStart({ policy: 1 });
    await c.launchUpdateData(h, Buffer.alloc(16));
    await c.launchMeasure(h);
    for (const n of [15, 17, 0]) {
      await expect(c.attestation(h, Buffer.alloc(n))).rejects.toMatchObject({
        fwStatus: Ret.INVALID_PARAM,
        message: `ATTESTATION mnonce has ${n} bytes, expected 16`,
      });
    }
    await expect(c.request('attestation', { handle: h, mnonce: '!!not base64!!' })).rejects.toMatchObject({ fwStatus: Ret.INVALID_PARAM });
    await expect(c.request('attestation', { handle: h })).rejects.toMatchObject({ fwStatus: Ret.INVALID_PARAM });
    await c.decommission(h);
  });

  it('an ATTESTATION fault fails the command once with the chosen status', async () => {
    const c = await client();
    const h = await c.launchStart({ policy: 1 });
    await c.launchUpdateData(h, Buffer.alloc(16));
    await c.launchMeasure(h);
    await c.injectFault({ on: 'launch', cmd: 'ATTESTATION', fwStatus: 'RESOURCE_LIMIT' });
    await expect(c.attestation(h, Buffer.alloc(16))).rejects.toMatchObject({ fwStatus: Ret.RESOURCE_LIMIT, fwStatusName: 'RESOURCE_LIMIT' });
    expect((await c.attestation(h, Buffer.alloc(16))).length).toBe(LEGACY_REPORT_SIZE);
    await c.decommission(h);
  });

  it('signs with the current PEK: after PEK_GEN the old PEK no longer verifies new reports', async () => {
    const c = await client();
    const oldPek = await exportedPek(c);
    expect(status(sim.daemon().platform).guests).toBe(0);
    expect(issue(sim.daemon().platform, Cmd.PEK_GEN).errno).toBe(0);
    const newPek = await exportedPek(c);
    expect(newPek.pubkey).not.toEqual(oldPek.pubkey);
    const h = await c.launchStart({ policy: 1 });
    await c.launchUpdateData(h, Buffer.alloc(32, 1));
    await c.launchMeasure(h);
    const raw = await c.attestation(h, crypto.randomBytes(16));
    expect(verifyLegacyReport(newPek, raw)).toBe(true);
    expect(verifyLegacyReport(oldPek, raw)).toBe(false);
    await c.decommission(h);
  });
});
