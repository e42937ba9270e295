/**
 * Guest launch through the daemon and SimClient, as the QEMU wrapper drives it:
 * a guest owner's session opened with the platform's PDH, measurement that the
 * owner verifies, a launch secret whose MAC the firmware checks.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimClient, SimClientError } from '../../lib/sim/client.js';
import { createSession } from '../../lib/launch/session.js';
import { computeMeasure, parseMeasurementBlob } from '../../lib/launch/measurement.js';
import { buildSecret } from '../../lib/launch/secret.js';
import { Ret } from '../../lib/sim/uapi.js';
import { freshPlatform, privateDaemon, status } from './helpers.js';

const sim = privateDaemon();
const client = sim.client;

describe('guest launch over SimClient', () => {
  it('session → update → measure → secret → finish, verified on the owner side', async () => {
    const c = await client();
    const { pdh } = await c.pdhCertExport();
    const policy = 0x1;
    const s = createSession(pdh, policy);
    const handle = await c.launchStart({ policy, godh: s.godh, session: s.session });
    expect((await c.status()).state).toBe('WORKING');
    expect(status(sim.daemon().platform)).toMatchObject({ state: 2, guests: 1 });

    const firmware = crypto.randomBytes(8192);
    await c.launchUpdateData(handle, firmware);
    const blob = await c.launchMeasure(handle);
    expect(blob.length).toBe(48);
    const { measure, mnonce } = parseMeasurementBlob(blob);
    const api = await c.api();
    const digest = crypto.createHash('sha256').update(firmware).digest();
    const expected = computeMeasure({ digest, mnonce, tik: s.tik, apiMajor: api.major, apiMinor: api.minor, build: api.build, policy });
    expect(measure.equals(expected)).toBe(true);

    const secret = Buffer.from('correct horse battery staple');
    const pkt = buildSecret({ tek: s.tek, tik: s.tik, measurement: blob, plaintext: secret });
    const plain = await c.launchSecret(handle, pkt.header, pkt.payload, 0x810000);
    expect(plain.equals(secret)).toBe(true);

    // A secret MACed against another measurement is refused with BAD_MEASUREMENT.
    const wrong = buildSecret({ tek: s.tek, tik: s.tik, measurement: crypto.randomBytes(48), plaintext: secret });
    await expect(c.launchSecret(handle, wrong.header, wrong.payload, 0x810000)).rejects.toMatchObject({
      fwStatus: Ret.BAD_MEASUREMENT,
      fwStatusName: 'BAD_MEASUREMENT',
    });

    await c.launchFinish(handle);
    await expect(c.launchFinish(handle)).rejects.toMatchObject({ fwStatus: Ret.INVALID_GUEST_STATE });
    await c.decommission(handle);
    expect(status(sim.daemon().platform)).toMatchObject({ state: 1, guests: 0 });
  });

  it('two measurements of one launch digest differ only through a fresh mnonce', async () => {
    const c = await client();
    const tiks: Buffer[] = [];
    const blobs: Buffer[] = [];
    const { pdh } = await c.pdhCertExport();
    for (let i = 0; i < 2; i++) {
      const s = createSession(pdh, 1);
      tiks.push(s.tik);
      const h = await c.launchStart({ policy: 1, godh: s.godh, session: s.session });
      await c.launchUpdateData(h, Buffer.alloc(4096, 7));
      blobs.push(await c.launchMeasure(h));
      await c.decommission(h);
    }
    expect(blobs[0]!.subarray(32).equals(blobs[1]!.subarray(32))).toBe(false);
  });

  it('a session for another PDH or a tampered session fails LAUNCH_START; no guest is left', async () => {
    const c = await client();
    const other = freshPlatform({ seed: '1' });
    // Same seed, but rotate so that its PDH differs from the daemon's.
    other.ioctl({ cmd: 4, writable: true, dataNull: true, struct: Buffer.alloc(0), blobs: [] });
    other.ioctl({ cmd: 4, writable: true, dataNull: true, struct: Buffer.alloc(0), blobs: [] });
    const foreign = createSession(other.certificate('pdh'), 1);
    const err = await c.launchStart({ policy: 1, godh: foreign.godh, session: foreign.session }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimClientError);
    expect((err as SimClientError).fwStatus).toBeGreaterThan(0);
    const { pdh } = await c.pdhCertExport();
    const s = createSession(pdh, 1);
    const tampered = Buffer.from(s.session);
    tampered[0x45] ^= 1; // inside wrap_mac
    await expect(c.launchStart({ policy: 1, godh: s.godh, session: tampered })).rejects.toBeInstanceOf(SimClientError);
    // The policy is under the MAC: another policy number fails too.
    await expect(c.launchStart({ policy: 3, godh: s.godh, session: s.session })).rejects.toBeInstanceOf(SimClientError);
    expect(status(sim.daemon().platform).guests).toBe(0);
  });

  it('SEV-ES VMSA updates need an ES policy and a 4096-byte page; order is enforced', async () => {
    const c = await client();
    const h = await c.launchStart({ policy: 1 });
    await expect(c.launchUpdateVmsa(h, Buffer.alloc(4096))).rejects.toMatchObject({ fwStatus: Ret.POLICY_FAILURE });
    const es = await c.launchStart({ policy: 5 });
    await expect(c.launchUpdateVmsa(es, Buffer.alloc(100))).rejects.toMatchObject({ fwStatus: Ret.INVALID_LEN });
    await c.launchUpdateVmsa(es, Buffer.alloc(4096));
    await c.launchMeasure(es);
    await expect(c.launchUpdateData(es, Buffer.alloc(16))).rejects.toMatchObject({ fwStatus: Ret.INVALID_GUEST_STATE });
    await expect(c.launchMeasure(999)).rejects.toMatchObject({ fwStatus: Ret.INVALID_GUEST });
    await c.decommission(h);
    await c.decommission(es);
  });

  it('closing the client decommissions its guests, like KVM closing the VM', async () => {
    const c = await client();
    await c.launchStart({ policy: 1 });
    await c.launchStart({ policy: 1 });
    expect(status(sim.daemon().platform).guests).toBe(2);
    c.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(status(sim.daemon().platform)).toMatchObject({ state: 1, guests: 0 });
  });

  it('launch faults make the chosen command fail with the chosen status', async () => {
    const c = await client();
    await c.injectFault({ on: 'launch', cmd: 'LAUNCH_START', fwStatus: 'RESOURCE_LIMIT' });
    await expect(c.launchStart({ policy: 1 })).rejects.toMatchObject({ fwStatus: Ret.RESOURCE_LIMIT, fwStatusName: 'RESOURCE_LIMIT' });
    const h = await c.launchStart({ policy: 1 });
    await c.decommission(h);
  });

  it('SimClient without a socket or with a dead one fails with one clear error', async () => {
    await expect(SimClient.connect('')).rejects.toThrow(/SEVKIT_SIM_SOCKET is not set/);
    await expect(SimClient.connect('/nonexistent/sev.sock')).rejects.toThrow(/cannot reach the simulator daemon: ENOENT/);
  });
});

describe('LAUNCH_UPDATE_DATA of a file the daemon reads (launchUpdateFile)', () => {
  it('measures the same digest as sending the bytes, follows a rewritten file, refuses what is not a file', async () => {
    const c = await client();
    const { pdh } = await c.pdhCertExport();
    const api = await c.api();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-upd-file-'));
    const file = path.join(dir, 'fw.bin');
    const measureOf = async (feed: (h: number) => Promise<unknown>) => {
      const s = createSession(pdh, 1);
      const h = await c.launchStart({ policy: 1, godh: s.godh, session: s.session });
      await feed(h);
      const { measure, mnonce } = parseMeasurementBlob(await c.launchMeasure(h));
      await c.decommission(h);
      return { measure, mnonce, tik: s.tik };
    };
    const expectDigest = (m: { measure: Buffer; mnonce: Buffer; tik: Buffer }, digest: Buffer) =>
      expect(
        m.measure.equals(computeMeasure({ digest, mnonce: m.mnonce, tik: m.tik, apiMajor: api.major, apiMinor: api.minor, build: api.build, policy: 1 })),
      ).toBe(true);
    try {
      const a = crypto.randomBytes(8192);
      fs.writeFileSync(file, a);
      expect(await c.launchUpdateFile(0, file).catch((e) => e)).toBeInstanceOf(SimClientError);
      for (let i = 0; i < 2; i++) {
        expectDigest(await measureOf((h) => c.launchUpdateFile(h, file)), crypto.createHash('sha256').update(a).digest());
      }
      // File then more data: both measured, in order.
      const extra = crypto.randomBytes(32);
      expectDigest(
        await measureOf(async (h) => (await c.launchUpdateFile(h, file), await c.launchUpdateData(h, extra))),
        crypto.createHash('sha256').update(a).update(extra).digest(),
      );
      // Data then the file: the cached digest cannot start it, the bytes are appended.
      expectDigest(
        await measureOf(async (h) => (await c.launchUpdateData(h, extra), await c.launchUpdateFile(h, file))),
        crypto.createHash('sha256').update(extra).update(a).digest(),
      );
      // Rewritten in place (same size): the new content is measured.
      const b = crypto.randomBytes(8192);
      fs.writeFileSync(file, b);
      expectDigest(await measureOf((h) => c.launchUpdateFile(h, file)), crypto.createHash('sha256').update(b).digest());
      const s = createSession(pdh, 1);
      const h = await c.launchStart({ policy: 1, godh: s.godh, session: s.session });
      for (const bad of ['fw.bin', dir, path.join(dir, 'absent')]) {
        await expect(c.launchUpdateFile(h, bad)).rejects.toMatchObject({ fwStatusName: expect.stringMatching(/INVALID_PARAM|INVALID_LEN/) });
      }
      fs.writeFileSync(file, Buffer.alloc(17));
      await expect(c.launchUpdateFile(h, file)).rejects.toMatchObject({ fwStatus: Ret.INVALID_LEN });
      await c.decommission(h);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
