/**
 * The daemon serves connections concurrently: while one connection's launchUpdateFile reads a new
 * firmware file, others are answered; the command re-checks its guest once the file is in; each
 * connection's replies keep their order; a connection closing mid-read leaves nothing behind.
 *
 * "Mid-read" is observed, not timed: the daemon runs in this process, so the test sees its
 * descriptor on the file in /proc/self/fd (the file is large enough to take many reads).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimClientError, type SimClient } from '../../lib/sim/client.js';
import { createSession } from '../../lib/launch/session.js';
import { computeMeasure, parseMeasurementBlob } from '../../lib/launch/measurement.js';
import { Ret } from '../../lib/sim/uapi.js';
import { privateDaemon, tmpDir } from './helpers.js';
import { fileIsOpen, until } from './fd-helpers.js';

const sim = privateDaemon();
const FILE_BYTES = 16 * 1024 * 1024;

/** A new firmware file (a version the daemon has never measured) and the SHA-256 of its bytes. */
function newFirmware(): { file: string; digest: Buffer } {
  const bytes = crypto.randomBytes(FILE_BYTES);
  const file = path.join(fs.realpathSync(tmpDir('sim-conc-')), 'fw.bin');
  fs.writeFileSync(file, bytes);
  return { file, digest: crypto.createHash('sha256').update(bytes).digest() };
}

/** Records when a promise settles, without letting a rejection go unhandled. */
function track<T>(p: Promise<T>): { p: Promise<T>; settled: () => boolean } {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return { p, settled: () => done };
}

async function launch(c: SimClient): Promise<{ handle: number; tik: Buffer }> {
  const { pdh } = await c.pdhCertExport();
  const s = createSession(pdh, 1);
  return { handle: await c.launchStart({ policy: 1, godh: s.godh, session: s.session }), tik: s.tik };
}

describe('the daemon while a new firmware file is read', () => {
  it("answers other connections first; the reader's measurement is the owner's; replies keep request order", async () => {
    const a = await sim.client();
    const b = await sim.client();
    const api = await a.api();
    const fw = newFirmware();
    const { handle, tik } = await launch(a);
    // Pipelined on A: the measure and the status must come after the update, in order.
    const order: string[] = [];
    const upd = track(a.launchUpdateFile(handle, fw.file).finally(() => order.push('update')));
    const meas = a.launchMeasure(handle).finally(() => order.push('measure'));
    const aStatus = a.status().finally(() => order.push('status'));
    await until(() => fileIsOpen(fw.file) || upd.settled(), 'the daemon is reading the file');

    const ps = await b.request<{ state: string; guests: number }>('platformStatus');
    expect(upd.settled()).toBe(false);
    expect(ps).toMatchObject({ state: 'WORKING' });
    expect(ps.guests).toBeGreaterThanOrEqual(1);
    expect((await b.status()).state).toBe('WORKING');
    expect(upd.settled()).toBe(false);

    expect(await upd.p).toEqual({ length: FILE_BYTES });
    const { measure, mnonce } = parseMeasurementBlob(await meas);
    await aStatus;
    expect(order).toEqual(['update', 'measure', 'status']);
    const expected = computeMeasure({ digest: fw.digest, mnonce, tik, apiMajor: api.major, apiMinor: api.minor, build: api.build, policy: 1 });
    expect(measure.equals(expected)).toBe(true);
    await a.decommission(handle);
  });

  it('a guest decommissioned, or measured, during the read gets the firmware error, not a success', async () => {
    const a = await sim.client();
    const b = await sim.client();
    for (const [step, status] of [
      ['decommission', Ret.INVALID_GUEST],
      ['launchMeasure', Ret.INVALID_GUEST_STATE],
    ] as const) {
      const fw = newFirmware();
      const { handle } = await launch(a);
      const upd = track(a.launchUpdateFile(handle, fw.file));
      await until(() => fileIsOpen(fw.file) || upd.settled(), 'the daemon is reading the file');
      expect(upd.settled()).toBe(false);
      await b.request(step, { handle });
      expect(upd.settled()).toBe(false);
      const err = await upd.p.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SimClientError);
      expect(err).toMatchObject({ fwStatus: status });
      if (step === 'launchMeasure') await a.decommission(handle);
    }
  });

  it('a connection closing mid-read decommissions its guest and leaves no descriptor; the file still measures', async () => {
    const platform = sim.daemon().platform;
    const before = platform.guests.size;
    const a = await sim.client();
    const fw = newFirmware();
    const { handle } = await launch(a);
    expect(platform.guests.has(handle)).toBe(true);
    const upd = track(a.launchUpdateFile(handle, fw.file));
    await until(() => fileIsOpen(fw.file) || upd.settled(), 'the daemon is reading the file');
    expect(upd.settled()).toBe(false);
    a.close();
    await expect(upd.p).rejects.toThrow(/closed/);
    await until(() => !platform.guests.has(handle), 'the guest is decommissioned');
    await until(() => !fileIsOpen(fw.file), 'the daemon has closed the file');
    expect(platform.guests.size).toBe(before);

    // The abandoned read left no half-measured version behind.
    const c = await sim.client();
    const api = await c.api();
    const g = await launch(c);
    await c.launchUpdateFile(g.handle, fw.file);
    const { measure, mnonce } = parseMeasurementBlob(await c.launchMeasure(g.handle));
    expect(
      measure.equals(computeMeasure({ digest: fw.digest, mnonce, tik: g.tik, apiMajor: api.major, apiMinor: api.minor, build: api.build, policy: 1 })),
    ).toBe(true);
    await c.decommission(g.handle);
    expect(platform.guests.size).toBe(before);
  });

  it('two connections launching on the same new file both measure it', async () => {
    const fw = newFirmware();
    const api = await (await sim.client()).api();
    const results = await Promise.all(
      [0, 1].map(async () => {
        const c = await sim.client();
        const g = await launch(c);
        await c.launchUpdateFile(g.handle, fw.file);
        const m = parseMeasurementBlob(await c.launchMeasure(g.handle));
        await c.decommission(g.handle);
        return { ...m, tik: g.tik };
      }),
    );
    for (const { measure, mnonce, tik } of results)
      expect(measure.equals(computeMeasure({ digest: fw.digest, mnonce, tik, apiMajor: api.major, apiMinor: api.minor, build: api.build, policy: 1 }))).toBe(
        true,
      );
  });

  it('a client pipelining far more requests than the queue holds gets every reply, in order', async () => {
    const c = await sim.client();
    const order: number[] = [];
    await Promise.all(Array.from({ length: 500 }, (_x, i) => c.request('ping').then(() => order.push(i))));
    expect(order).toEqual(Array.from({ length: 500 }, (_x, i) => i));
  });
});
