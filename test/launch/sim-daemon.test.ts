/**
 * Property tests through the simulator's firmware model (the daemon the test
 * global setup starts): its LAUNCH_START opens sessions made here with the
 * platform's PDH key, its LAUNCH_MEASURE agrees with what this code predicts,
 * and its LAUNCH_SECRET accepts what this code builds and refuses tampering.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import crypto from 'node:crypto';
import path from 'node:path';
import { SNP_MEASURE, read } from './helpers.js';
import { createSession, verifyMeasurement, buildSecret, parseSecretTable, secretEntryText, buildEsVmsas, computeLaunchDigest } from '../../lib/launch/index.js';
import { parseOvmf } from '../../lib/firmware/index.js';

const socket = process.env.SEVKIT_SIM_SOCKET;

describe.skipIf(!socket)('launch through the simulated firmware', { timeout: 60_000 }, () => {
  let client: import('../../lib/sim/client.js').SimClient;
  let pdh: Buffer;
  beforeAll(async () => {
    const { SimClient } = await import('../../lib/sim/client.js');
    client = await SimClient.connect(socket);
    pdh = (await client.pdhCertExport()).pdh;
  });
  afterAll(() => client?.close());

  const firmware = read(path.join(SNP_MEASURE, 'ovmf_AmdSev_suffix.bin'));

  for (const [policy, cpus] of [
    [1, 1],
    [3, 2],
    [5, 1],
    [7, 4],
  ] as const) {
    it(`policy 0x${policy.toString(16)}, ${cpus} vCPU: measurement matches the prediction and the secret is accepted`, async () => {
      const s = createSession(pdh, policy);
      const handle = await client.launchStart({ policy, godh: s.godh, session: s.session });
      try {
        await client.launchUpdateData(handle, firmware);
        const es = (policy & 4) !== 0;
        if (es) {
          const v = buildEsVmsas(firmware, { numCpus: cpus, vcpuType: 'EPYC-Genoa' });
          await client.launchUpdateVmsa(handle, v.bsp);
          for (let i = 1; i < cpus; i++) await client.launchUpdateVmsa(handle, v.ap!);
        }
        const blob = await client.launchMeasure(handle);
        const api = await client.api();
        const sevInfo = { apiMajor: api.major, apiMinor: api.minor, buildId: api.build, policy };
        const launch = { firmware, ...(es ? { es: { numCpus: cpus, vcpuType: 'EPYC-Genoa' } } : {}) };
        expect(verifyMeasurement({ measurement: blob, sevInfo, expected: { policy, tik: s.tik, launch } }).match).toBe(true);
        // a wrong vCPU count (SEV-ES) or wrong firmware must not match
        const wrong = es ? { firmware, es: { numCpus: cpus + 1, vcpuType: 'EPYC-Genoa' } } : { firmware: Buffer.concat([firmware, Buffer.of(0)]) };
        expect(verifyMeasurement({ measurement: blob, sevInfo, expected: { policy, tik: s.tik, launch: wrong } }).match).toBe(false);

        const pkt = buildSecret({ tek: s.tek, tik: s.tik, measurement: blob, entries: [{ guid: 'disk-password', data: Buffer.from(`pw-${policy}`) }] });
        const bad = Buffer.from(pkt.payload);
        bad[bad.length - 1]! ^= 1;
        await expect(client.launchSecret(handle, pkt.header, bad, parseOvmf(firmware).secretArea!.base)).rejects.toMatchObject({
          fwStatusName: expect.stringMatching(/BAD_MEASUREMENT/),
        });
        const plain = await client.launchSecret(handle, pkt.header, pkt.payload, parseOvmf(firmware).secretArea!.base);
        expect(secretEntryText(parseSecretTable(plain).entries[0]!.data)).toBe(`pw-${policy}`);
        await client.launchFinish(handle);
      } finally {
        await client.decommission(handle).catch(() => undefined);
      }
    });
  }

  it('LAUNCH_START refuses a session for another policy, another platform, or a tampered blob', async () => {
    const s = createSession(pdh, 1);
    await expect(client.launchStart({ policy: 3, godh: s.godh, session: s.session })).rejects.toMatchObject({
      fwStatusName: expect.stringMatching(/POLICY_FAILURE/),
    });
    const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const { createSevCert, encodeSevCert, Usage, Algo } = await import('../../lib/certs/index.js');
    const other = createSession(encodeSevCert(createSevCert({ usage: Usage.PDH, algo: Algo.ECDH_SHA256, publicKey })), 1);
    await expect(client.launchStart({ policy: 1, godh: other.godh, session: other.session })).rejects.toMatchObject({
      fwStatusName: expect.stringMatching(/BAD_MEASUREMENT/),
    });
    const t = Buffer.from(s.session);
    t[0x20]! ^= 1;
    await expect(client.launchStart({ policy: 1, godh: s.godh, session: t })).rejects.toMatchObject({ fwStatusName: expect.stringMatching(/BAD_MEASUREMENT/) });
  });

  it('a plain SEV digest is just the firmware hash (sanity for the sim path)', () => {
    expect(computeLaunchDigest({ firmware }).equals(crypto.createHash('sha256').update(firmware).digest())).toBe(true);
  });
});
