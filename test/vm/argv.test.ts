import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { VECTORS } from '../helpers/cli.js';
import { alephConfidentialArgv, buildQemuArgv, pyHex, sevGuestObject, type AlephConfidentialConfig } from '../../lib/vm/argv.js';
import { InputError } from '../../lib/errors.js';

const DIR = path.join(VECTORS, 'aleph/aleph-vm/rust/crates/supervisor-controller/tests/conformance/controller_argv_confidential');
const fixtures = fs.readdirSync(DIR).filter((f) => f.endsWith('.json'));

describe('aleph argv conformance fixtures', () => {
  it('has all eight fixtures', () => {
    expect(fixtures.sort()).toEqual([
      'distinct_sev_host_info.json',
      'gpu.json',
      'host_volume.json',
      'minimal.json',
      'sev_es_policy.json',
      'sev_policy_zero.json',
      'with_cloud_init.json',
      'with_nic.json',
    ]);
  });
  for (const f of fixtures) {
    it(`${f}: byte-exact`, () => {
      const fx = JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')) as {
        config_json: AlephConfidentialConfig;
        expected_argv: string[];
        sev_host_info: { cbitpos: number; reduced_phys_bits: number };
      };
      const argv = alephConfidentialArgv(fx.config_json, { cbitpos: fx.sev_host_info.cbitpos, reducedPhysBits: fx.sev_host_info.reduced_phys_bits });
      expect(argv).toEqual(fx.expected_argv);
      expect(Buffer.from(JSON.stringify(argv))).toEqual(Buffer.from(JSON.stringify(fx.expected_argv)));
    });
  }
});

describe('argv builder', () => {
  it('prints the policy like Python hex()', () => {
    expect([0, 1, 5, 0x30000, 0xffffffff].map(pyHex)).toEqual(['0x0', '0x1', '0x5', '0x30000', '0xffffffff']);
  });
  it('refuses values QEMU would refuse or mis-split', () => {
    expect(() => sevGuestObject({ policy: 1, cbitpos: 51, reducedPhysBits: 0 })).toThrow(/reduced-phys-bits must be 1..63/);
    expect(() => sevGuestObject({ policy: -1, cbitpos: 51, reducedPhysBits: 1 })).toThrow(InputError);
    expect(() => sevGuestObject({ policy: 1, cbitpos: 0, reducedPhysBits: 1 })).toThrow(/cbitpos/);
    expect(() => sevGuestObject({ policy: 1, cbitpos: 51, reducedPhysBits: 1, dhCertFile: '/a,b/godh.b64' })).toThrow(/comma/);
  });
  it('adds kernel-hashes, TCG, -name and direct boot after the aleph layout', () => {
    const a = buildQemuArgv({
      qemu: 'q',
      accel: 'tcg',
      memMb: 64,
      vcpus: 1,
      firmware: '/fw',
      qmpSocket: '/r/qmp.sock',
      cpu: 'EPYC-v4',
      name: 'vm1',
      sev: { policy: 5, cbitpos: 51, reducedPhysBits: 1, dhCertFile: '/r/godh.b64', sessionFile: '/r/session.b64', kernelHashes: true },
      kernel: '/k',
      append: '',
    });
    expect(a.slice(0, 3)).toEqual(['q', '-accel', 'tcg']);
    expect(a).toContain('sev-guest,id=sev0,policy=0x5,cbitpos=51,reduced-phys-bits=1,dh-cert-file=/r/godh.b64,session-file=/r/session.b64,kernel-hashes=on');
    expect(a.slice(-6)).toEqual(['-name', 'vm1', '-kernel', '/k', '-append', '']);
    expect(a).not.toContain('-monitor');
  });
});
