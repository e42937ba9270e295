import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { HOST_PATHS, HostFs, MSR_SYSCFG } from '../../lib/host/fs.js';
import { GENOA_SYSCFG } from '../../lib/sim/host-fixture.js';
import { parseLimits, RLIM_INFINITY } from '../../lib/host/probes.js';
import { cleanup, fixture } from '../host/helpers.js';

afterAll(cleanup);

describe('host fixture = the layout documented in lib/host/fs.ts (the simulator writes it too)', () => {
  it('writes every documented path with the documented contents', () => {
    const fx = fixture();
    const hfs = new HostFs(fx.root);
    for (const p of [
      HOST_PATHS.kvmAmdModule,
      HOST_PATHS.kvmAmdSev,
      HOST_PATHS.kvmAmdSevEs,
      HOST_PATHS.kvmAmdSevSnp,
      HOST_PATHS.devSev,
      HOST_PATHS.devKvm,
      HOST_PATHS.msrCpu0,
      HOST_PATHS.limits,
      HOST_PATHS.cmdline,
      HOST_PATHS.osrelease,
    ]) {
      expect(hfs.exists(p), p).toBe(true);
    }
    expect(fs.readFileSync(hfs.resolve(HOST_PATHS.kvmAmdSev), 'utf8')).toBe('Y\n');
    expect(fs.statSync(hfs.resolve(HOST_PATHS.devSev)).mode & 0o777).toBe(0o660);
    const msr = hfs.readAt(HOST_PATHS.msrCpu0, MSR_SYSCFG, 8);
    expect(msr.ok && msr.value.readBigUInt64LE(0)).toBe(GENOA_SYSCFG);
    const lim = hfs.readText(HOST_PATHS.limits);
    expect(lim.ok && parseLimits(lim.value)).toEqual({ soft: RLIM_INFINITY, hard: RLIM_INFINITY });
    expect(fs.readFileSync(hfs.resolve(HOST_PATHS.cmdline), 'utf8')).toMatch(/mem_encrypt=on kvm_amd\.sev=1 kvm_amd\.sev_es=1/);
    const cpuid = JSON.parse(fs.readFileSync(fx.cpuidFile, 'utf8'));
    expect(cpuid['0x8000001f:0']).toEqual([0x0001fdff, 0x4073, 1006, 100]);
    expect(cpuid['0x0:0']).toEqual([0x10, 0x68747541, 0x444d4163, 0x69746e65]);
  });

  it('HostFs prefixes only under a root; "/" and "" are the real host', () => {
    expect(new HostFs('/').resolve('/dev/sev')).toBe('/dev/sev');
    expect(new HostFs('').isFake).toBe(false);
    expect(new HostFs('/tmp/x/').resolve('/dev/sev')).toBe(path.join('/tmp/x', 'dev/sev'));
  });

  it('parses real /proc/self/limits numbers and rejects a file without the line', () => {
    expect(parseLimits('Max locked memory         8388608              unlimited            bytes\n')).toEqual({ soft: 8388608n, hard: RLIM_INFINITY });
    expect(parseLimits('Max open files 1024 1024 files\n')).toBeNull();
  });
});
