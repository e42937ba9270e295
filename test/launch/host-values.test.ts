/**
 * Host-reported values that cannot be true are refused before anything is done with them: API major, minor
 * and build are one byte each in the firmware's answer (the MAC covers only those bytes, so masking would
 * accept 1.311 as 1.55), the policy is 32 bits, the measurement exactly 48 bytes of strict base64.
 */
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkHostReport, HostValueError, launchMeasure, verifyMeasurement } from '../../lib/launch/index.js';
import { runCli } from '../helpers/cli.js';

const ok = { apiMajor: 1, apiMinor: 55, buildId: 24, policy: 1 };
const tik = crypto.randomBytes(16);
const digest = crypto.randomBytes(32);

describe('checkHostReport', () => {
  it.each([
    [{ ...ok, apiMinor: 311 }, /API minor 311 \(the firmware reports it in one byte, 0\.\.255\)/],
    [{ ...ok, apiMajor: 256 }, /API major 256/],
    [{ ...ok, buildId: 277 }, /build 277/],
    [{ ...ok, apiMinor: 1.5 }, /API minor 1\.5/],
    [{ ...ok, apiMinor: -1 }, /API minor -1/],
    [{ ...ok, policy: 2 ** 32 }, /policy 4294967296 \(a guest policy is a 32-bit unsigned integer\)/],
    [{ ...ok, policy: 0.5 }, /policy 0\.5/],
    [{ ...ok, apiMajor: '1' as unknown as number }, /API major "1"/],
  ])('refuses %o', (info, why) => {
    expect(() => checkHostReport(info)).toThrow(HostValueError);
    expect(() => checkHostReport(info)).toThrow(why);
    expect(() => checkHostReport(info)).toThrow(/^the host reported an impossible value: /);
  });

  it('accepts the edges, and checks the measurement text strictly', () => {
    expect(() => checkHostReport({ apiMajor: 255, apiMinor: 0, buildId: 255, policy: 0xffffffff })).not.toThrow();
    const b64 = crypto.randomBytes(48).toString('base64');
    expect(() => checkHostReport(ok, b64)).not.toThrow();
    expect(() => checkHostReport(ok, ` ${b64}`)).toThrow(/whitespace/);
    expect(() => checkHostReport(ok, b64.replace(/=*$/, ''))).not.toThrow(); // 48 bytes need no padding
    expect(() => checkHostReport(ok, crypto.randomBytes(47).toString('base64'))).toThrow(/measurement of 47 bytes/);
    expect(() => checkHostReport(ok, `${b64.slice(0, -4)}A-_A`)).toThrow(/not strict base64/);
  });
});

describe('verifyMeasurement refuses before any MAC', () => {
  it('a blob MACed over the low bytes of 1.311 build 277 matches 1.55 build 21, and is refused when reported as 1.311', () => {
    const blob = launchMeasure({ digest, tik, apiMajor: 1, apiMinor: 311 & 0xff, build: 277 & 0xff, policy: 1 });
    const honest = verifyMeasurement({
      measurement: blob,
      sevInfo: { apiMajor: 1, apiMinor: 55, buildId: 21, policy: 1 },
      expected: { policy: 1, tik, digest },
    });
    expect(honest.match).toBe(true);
    expect(() =>
      verifyMeasurement({ measurement: blob, sevInfo: { apiMajor: 1, apiMinor: 311, buildId: 277, policy: 1 }, expected: { policy: 1, tik, digest } }),
    ).toThrow(HostValueError);
  });
});

describe('sevkit measurement verify', () => {
  it('--api-minor 311 is refused with one line saying the host reported an impossible value', async () => {
    const blob = launchMeasure({ digest, tik, apiMajor: 1, apiMinor: 55, build: 21, policy: 1 });
    const r = await runCli([
      'measurement',
      'verify',
      '--measurement',
      blob.toString('base64'),
      '--tik',
      tik.toString('base64'),
      '--launch-digest',
      digest.toString('base64'),
      '--policy',
      '1',
      '--api-major',
      '1',
      '--api-minor',
      '311',
      '--build-id',
      '21',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['sevkit: the host reported an impossible value: API minor 311 (the firmware reports it in one byte, 0..255)']);
  });
});

describe('diagnoseMeasurement refuses the same values', () => {
  it('API minor 311 is refused before the search', async () => {
    const { diagnoseMeasurement } = await import('../../lib/launch/index.js');
    const blob = launchMeasure({ digest, tik, apiMajor: 1, apiMinor: 55, build: 21, policy: 1 });
    expect(() =>
      diagnoseMeasurement({
        measurement: blob,
        sevInfo: { ...ok, apiMinor: 311 },
        tik,
        firmwares: [{ name: 'fw', image: Buffer.alloc(4096) }],
        expected: { policy: 1, firmware: 'fw' },
      } as Parameters<typeof diagnoseMeasurement>[0]),
    ).toThrow(HostValueError);
  });
});
