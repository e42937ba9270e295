/**
 * query-sev as the simulator's QEMU wrapper answers it, per QEMU version played: 7.2's flat SevInfo
 * (no `sev-type`), and QEMU >= 9.1's union tagged by `sev-type` — "sev" for SEV and SEV-ES guests
 * (QAPI SevGuestType has only sev and sev-snp) and for a VM with no SEV guest, "sev-snp" with
 * `snp-policy` — keys in QEMU's QDict order; and lib/qmp reading each.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { VECTORS } from '../helpers/cli.js';
import { Supervisor } from '../../lib/vm/index.js';
import { parseSevInfo } from '../../lib/qmp/sev-info.js';
import { qemuHasSnp } from '../../lib/sim/qemu/argv.js';
import { filesUnder, processesMentioning, tmpRunRoot } from '../vm/helpers.js';
import { makeSimEnv, type SimEnv } from '../vm/simenv.js';

const AMDSEV = path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin');
const SEV_KEYS_72 = ['enabled', 'api-minor', 'handle', 'state', 'api-major', 'build-id', 'policy'];
const SEV_KEYS_91 = ['enabled', 'api-minor', 'handle', 'state', 'api-major', 'sev-type', 'build-id', 'policy'];
const SNP_KEYS = ['enabled', 'api-minor', 'state', 'api-major', 'snp-policy', 'sev-type', 'build-id'];

describe('query-sev sev-type per QEMU version played', () => {
  let sim: SimEnv;
  let root: string;
  let snpFirmware: string;
  const run = crypto.randomBytes(3).toString('hex');
  let n = 0;

  beforeAll(async () => {
    sim = await makeSimEnv({ realQemu: 'none', private: true });
    root = tmpRunRoot('sevtype');
    snpFirmware = path.join(root, 'OVMF.snp.fd');
    fs.writeFileSync(snpFirmware, Buffer.concat([Buffer.alloc(60 * 1024), fs.readFileSync(AMDSEV)]));
  });
  afterAll(() => {
    expect(processesMentioning(root)).toEqual([]);
    fs.rmSync(snpFirmware, { force: true });
    expect(filesUnder(root)).toEqual([]);
    fs.rmSync(root, { recursive: true, force: true });
    sim?.cleanup();
  });

  /** The raw query-sev answer (the client's querySev fills in a missing sev-type). */
  async function querySev(version: string | undefined, spec: { sev?: { policy: number }; snp?: object }, vcpus = 1): Promise<Record<string, unknown>> {
    const sup = new Supervisor({ qemu: sim.qemu, env: { ...sim.env, SEVKIT_SIM_QEMU_VERSION: version ?? '' }, runRoot: root });
    const vm = await sup.launch({ name: `st${++n}-${run}`, firmware: spec.snp ? snpFirmware : AMDSEV, vcpus, ...spec });
    try {
      return (await vm.qmpClient!.execute('query-sev')) as Record<string, unknown>;
    } finally {
      await vm.stop({ timeoutMs: 30_000 });
    }
  }

  it('QEMU 7.2 (the default): flat, no sev-type, for SEV and SEV-ES guests', async () => {
    for (const policy of [0x1, 0x5]) {
      const q = await querySev(undefined, { sev: { policy } }, 2);
      expect(Object.keys(q)).toEqual(SEV_KEYS_72);
      expect(q).toMatchObject({ enabled: true, policy });
      expect(parseSevInfo(q)).toMatchObject({ sevType: 'sev', policy });
    }
  }, 240_000);

  it('QEMU 9.2: sev-type "sev" for SEV and SEV-ES guests (there is no "sev-es"), "sev-snp" for SNP; each read back', async () => {
    for (const policy of [0x1, 0x5]) {
      const q = await querySev('9.2.0', { sev: { policy } }, 2);
      expect(Object.keys(q)).toEqual(SEV_KEYS_91);
      expect(q).toMatchObject({ enabled: true, 'sev-type': 'sev', policy });
      expect(parseSevInfo(q)).toMatchObject({ sevType: 'sev', policy, enabled: true });
    }
    const snp = await querySev('9.2.0', { snp: { policy: 0x30000 } });
    expect(Object.keys(snp)).toEqual(SNP_KEYS);
    expect(snp).toMatchObject({ 'sev-type': 'sev-snp', 'snp-policy': 0x30000, state: 'running' });
    expect(parseSevInfo(snp)).toMatchObject({ sevType: 'sev-snp', snpPolicy: 0x30000n });
  }, 240_000);

  it('no SEV guest: 9.2 answers the zeroed union (sev-type "sev"), 7.2 the flat struct', async () => {
    const off91 = await querySev('9.2.0', {});
    expect(off91).toEqual({ enabled: false, 'api-minor': 0, handle: 0, state: 'uninit', 'api-major': 0, 'sev-type': 'sev', 'build-id': 0, policy: 0 });
    expect(Object.keys(off91)).toEqual(SEV_KEYS_91);
    const off72 = await querySev(undefined, {});
    expect(Object.keys(off72)).toEqual(SEV_KEYS_72);
    expect(off72.enabled).toBe(false);
  }, 240_000);

  it('the version rule: 9.1 and later have the union, 9.0 and 7.2 do not', () => {
    expect([undefined, '7.2.0', '9.0.2', '9.1.0', '9.2.0', '10.0.0'].map(qemuHasSnp)).toEqual([false, false, false, true, true, true]);
  });
});
