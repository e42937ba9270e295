import { afterEach, describe, expect, it } from 'vitest';
import { sevkitEnv } from '../../lib/cli/env.js';
import { SevPlatform, chipIdHex, cpuid, resolveDevice } from '../../lib/platform/platform.js';
import { SevError } from '../../lib/platform/errors.js';
import { SevRet } from '../../lib/platform/constants.js';
import { setBinding } from '../../lib/binding.js';
import { FakeBinding, fakeCert, nativeError } from './fake-binding.js';

afterEach(() => {
  setBinding(null);
  delete process.env.SEVKIT_DEVICE;
});

describe('device path resolution', () => {
  it('option, else /dev/sev; the library ignores SEVKIT_DEVICE, which the CLI reads and passes', () => {
    const old = process.env.SEVKIT_DEVICE;
    try {
      expect(resolveDevice()).toBe('/dev/sev');
      process.env.SEVKIT_DEVICE = '/tmp/x-sev';
      expect(resolveDevice()).toBe('/dev/sev');
      expect(new SevPlatform().device).toBe('/dev/sev');
      expect(new SevPlatform({ device: '/dev/other' }).device).toBe('/dev/other');
      expect(resolveDevice('')).toBe('/dev/sev');
      expect(sevkitEnv({ SEVKIT_DEVICE: '/tmp/x-sev' }).device).toBe('/tmp/x-sev');
      expect(sevkitEnv({ SEVKIT_DEVICE: '' }).device).toBeUndefined();
    } finally {
      if (old === undefined) delete process.env.SEVKIT_DEVICE;
      else process.env.SEVKIT_DEVICE = old;
    }
  });
});

describe('SevPlatform with a fake binding', () => {
  it('decodes status through the binding set with setBinding', async () => {
    const fake = new FakeBinding();
    setBinding(fake);
    const s = await new SevPlatform({ device: '/dev/fake0' }).status();
    expect(s).toMatchObject({ apiMajor: 1, apiMinor: 55, build: 21, state: 'INIT', owner: 'self', esEnabled: true, guestCount: 0 });
    expect(fake.calls).toEqual(['platformStatus:/dev/fake0']);
  });

  it('splits PDH_CERT_EXPORT into pdh, pek, oca, cek', async () => {
    const fake = new FakeBinding();
    const p = new SevPlatform({ device: '/dev/fake1', binding: fake });
    const c = await p.exportCerts();
    expect(c.pdh).toEqual(fakeCert(0x10));
    expect(c.pek).toEqual(fakeCert(0x20));
    expect(c.oca).toEqual(fakeCert(0x30));
    expect(c.cek).toEqual(fakeCert(0x40));
  });

  it('refuses a chain of the wrong size', async () => {
    const fake = new FakeBinding();
    fake.chainLength = 2 * 0x824;
    const p = new SevPlatform({ device: '/dev/fake2', binding: fake });
    await expect(p.exportCerts()).rejects.toMatchObject({ code: 'EPROTO', message: expect.stringMatching(/4168-byte chain, expected 2084 and 6252/) });
  });

  it('rotate changes the exported PDH', async () => {
    const fake = new FakeBinding();
    const p = new SevPlatform({ device: '/dev/fake3', binding: fake });
    const before = (await p.exportCerts()).pdh;
    await p.pdhGen();
    expect((await p.exportCerts()).pdh.equals(before)).toBe(false);
  });

  it('maps firmware failures to SevError with the status name', async () => {
    const fake = new FakeBinding();
    fake.failNext = nativeError('EIO', 'ioctl', '/dev/fake4', 'PDH_GEN', SevRet.SEV_RET_INVALID_PLATFORM_STATE);
    const p = new SevPlatform({ device: '/dev/fake4', binding: fake });
    const err = await p.pdhGen().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SevError);
    expect(err).toMatchObject({ code: 'EIO', fwStatus: 1, fwStatusName: 'SEV_RET_INVALID_PLATFORM_STATE', path: '/dev/fake4', command: 'PDH_GEN' });
  });

  it('EBUSY on reset while WORKING', async () => {
    const fake = new FakeBinding();
    fake.state = 'WORKING';
    const p = new SevPlatform({ device: '/dev/fake5', binding: fake });
    await expect(p.factoryReset()).rejects.toMatchObject({ code: 'EBUSY', message: expect.stringMatching(/FACTORY_RESET failed: EBUSY/) });
  });

  it('validates PEK_CERT_IMPORT arguments before calling native', async () => {
    const fake = new FakeBinding();
    const p = new SevPlatform({ device: '/dev/fake6', binding: fake });
    await expect(p.pekCertImport(Buffer.alloc(0), fakeCert(1))).rejects.toThrow(/PEK certificate must be 1..16384 bytes, got 0/);
    await expect(p.pekCertImport(fakeCert(1), Buffer.alloc(0x4001))).rejects.toThrow(/OCA certificate must be 1..16384 bytes/);
    await expect(p.pekCertImport('x' as unknown as Buffer, fakeCert(1))).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(p.snpSetConfig({ reportedTcb: -1n })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(fake.calls).toEqual([]);
    await p.pekCertImport(fakeCert(1), fakeCert(2));
    expect((await p.status()).owner).toBe('external');
    await expect(p.pekCertImport(fakeCert(1), Buffer.alloc(10))).rejects.toMatchObject({ fwStatusName: 'SEV_RET_INVALID_CERTIFICATE' });
  });

  it('getId returns the bytes and chipIdHex renders them upper-case', async () => {
    const fake = new FakeBinding();
    const p = new SevPlatform({ device: '/dev/fake7', binding: fake });
    const id = await p.getId();
    expect(id.length).toBe(64);
    expect(chipIdHex(id)).toBe('00112233445566778899AABBCCDDEEFF'.repeat(4));
    expect(chipIdHex(new Uint8Array([0xab, 0x01]))).toBe('AB01');
    expect((await p.getIdInfo()).command).toBe('GET_ID2');
  });

  it('SNP status and config go through the layouts', async () => {
    const fake = new FakeBinding();
    const p = new SevPlatform({ device: '/dev/fake8', binding: fake });
    const s = await p.snpPlatformStatus();
    expect(s).toMatchObject({ state: 'INIT', rmpInitialized: true, buildId: 21, maskChipId: true, maskChipKey: false, vlekEnabled: true });
    await p.snpSetConfig({ reportedTcb: 5n, maskChipId: true });
    expect(fake.lastSnpConfig?.readBigUInt64LE(0)).toBe(5n);
    expect(fake.lastSnpConfig?.readUInt32LE(8)).toBe(1);
    await p.snpCommit();
    expect(fake.calls.at(-1)).toBe('snpCommit:/dev/fake8');
  });

  it('cpuid goes to the binding', () => {
    expect(cpuid(0x8000001f, 3, new FakeBinding())).toEqual([0x8000001f, 3, 0, 0]);
  });
});

describe('per-device queue', () => {
  it('runs one command at a time per device, in call order', async () => {
    const fake = new FakeBinding();
    fake.delayMs = 5;
    const a = new SevPlatform({ device: '/dev/q0', binding: fake });
    const b = new SevPlatform({ device: '/dev/q0', binding: fake }); // same path, other instance
    const jobs = [a.status(), b.pdhGen(), a.exportCerts(), b.status(), a.getId()];
    await Promise.all(jobs);
    expect(fake.maxInFlight).toBe(1);
    expect(fake.calls).toEqual(['platformStatus:/dev/q0', 'pdhGen:/dev/q0', 'pdhCertExport:/dev/q0', 'platformStatus:/dev/q0', 'getId:/dev/q0']);
  });

  it('lets different devices run concurrently', async () => {
    const fake = new FakeBinding();
    fake.delayMs = 20;
    await Promise.all([new SevPlatform({ device: '/dev/q1', binding: fake }).status(), new SevPlatform({ device: '/dev/q2', binding: fake }).status()]);
    expect(fake.maxInFlight).toBe(2);
  });

  it('a failed command does not stall the queue', async () => {
    const fake = new FakeBinding();
    fake.failNext = nativeError('EIO', 'ioctl', '/dev/q3', 'PLATFORM_STATUS', SevRet.SEV_RET_HWSEV_RET_PLATFORM);
    const p = new SevPlatform({ device: '/dev/q3', binding: fake });
    const [r1, r2] = await Promise.allSettled([p.status(), p.status()]);
    expect(r1.status).toBe('rejected');
    expect(r2.status).toBe('fulfilled');
  });
});
