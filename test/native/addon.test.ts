/**
 * The real addon without SEV hardware: errno mapping through ordinary paths,
 * open modes per command, argument abuse, and CPUID. These must hold under
 * both builders (scripts/native-parity.sh runs this directory after each).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getNativeBinding, type NativeBinding } from '../../lib/binding.js';
import { SevPlatform } from '../../lib/platform/platform.js';
import { SevError } from '../../lib/platform/errors.js';
import { ROOT } from '../helpers/cli.js';

const b: NativeBinding = getNativeBinding();
// The simulator's shim intercepts only its device path, so these ordinary paths behave the same with or without it.
const MISSING = '/nonexistent/sev';

type Cmd = [name: string, call: (path: string) => Promise<unknown>, command: string];
const cert = Buffer.alloc(0x824, 1);
const commands: Cmd[] = [
  ['platformStatus', (p) => b.platformStatus(p), 'PLATFORM_STATUS'],
  ['factoryReset', (p) => b.factoryReset(p), 'FACTORY_RESET'],
  ['pekGen', (p) => b.pekGen(p), 'PEK_GEN'],
  ['pekCsr', (p) => b.pekCsr(p), 'PEK_CSR'],
  ['pdhGen', (p) => b.pdhGen(p), 'PDH_GEN'],
  ['pdhCertExport', (p) => b.pdhCertExport(p), 'PDH_CERT_EXPORT'],
  ['pekCertImport', (p) => b.pekCertImport(p, cert, cert), 'PEK_CERT_IMPORT'],
  ['getId', (p) => b.getId(p), 'GET_ID2'],
  ['snpPlatformStatus', (p) => b.snpPlatformStatus(p), 'SNP_PLATFORM_STATUS'],
  ['snpCommit', (p) => b.snpCommit(p), 'SNP_COMMIT'],
  ['snpSetConfig', (p) => b.snpSetConfig(p, Buffer.alloc(64)), 'SNP_SET_CONFIG'],
];

describe('errno mapping through the real addon', () => {
  it.each(commands)('%s on a missing path rejects ENOENT from open with the path', async (_n, call) => {
    const e = (await call(MISSING).catch((x: unknown) => x)) as Record<string, unknown>;
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open', path: MISSING });
    expect(e.fwStatus).toBeUndefined();
  });

  it.each(commands)('%s on /dev/null rejects ENOTTY from ioctl naming the command', async (_n, call, command) => {
    const e = (await call('/dev/null').catch((x: unknown) => x)) as Record<string, unknown>;
    expect(e).toMatchObject({ code: 'ENOTTY', errno: -25, syscall: 'ioctl', path: '/dev/null', command });
    expect(e.fwStatus).toBeUndefined();
    expect(String(e.message)).toMatch(new RegExp(`^ioctl /dev/null \\(${command}\\): ENOTTY`));
  });

  it('SevPlatform turns the rejection into a one-line SevError', async () => {
    const err = await new SevPlatform({ device: MISSING }).status().catch((x: unknown) => x);
    expect(err).toBeInstanceOf(SevError);
    expect((err as SevError).message).toBe(`${MISSING}: open failed: ENOENT, no such device (is the ccp module loaded and SEV enabled in the BIOS?)`);
  });
});

describe('EACCES from a node this user may not open', () => {
  // Real permission checks: as root (CI) the commands run as nobody through setpriv; otherwise chmod 000 suffices.
  const root = process.getuid?.() === 0;
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  it.runIf(!root || setpriv)('open fails with EACCES, errno -13, syscall open, and the path', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sevkit-eacces-'));
    chmodSync(dir, 0o755);
    const node = path.join(dir, 'sev');
    writeFileSync(node, '');
    chmodSync(node, root ? 0o600 : 0o000);
    try {
      // A copy next to the node, since the build dir may not be reachable for nobody (0700 temp dirs).
      const addon = path.join(dir, 'sevkit.node');
      copyFileSync(createRequire(import.meta.url)('node-gyp-build').path(ROOT) as string, addon);
      chmodSync(addon, 0o755);
      const script = `const b = require(${JSON.stringify(addon)});
        Promise.allSettled([b.platformStatus(process.argv[1]), b.pdhCertExport(process.argv[1]), b.pekGen(process.argv[1])])
          .then((r) => console.log(JSON.stringify(r.map((x) => x.reason && { code: x.reason.code, errno: x.reason.errno, syscall: x.reason.syscall, path: x.reason.path }))));`;
      const argv = root ? [setpriv!, '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [process.execPath];
      const env = { ...process.env };
      delete env.LD_PRELOAD;
      const out = execFileSync(argv[0]!, [...argv.slice(1), '-e', script, node], { env, encoding: 'utf8' });
      const want = { code: 'EACCES', errno: -13, syscall: 'open', path: node };
      expect(JSON.parse(out)).toEqual([want, want, want]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('open mode per command', () => {
  // A directory opens O_RDONLY but never O_RDWR (EISDIR), so it shows which mode each command asks for.
  const dir = '/tmp';
  const readOnly = new Set(['PLATFORM_STATUS', 'GET_ID2', 'SNP_PLATFORM_STATUS', 'SNP_COMMIT']);
  it.each(commands)('%s opens with the mode the kernel requires', async (_n, call, command) => {
    const e = (await call(dir).catch((x: unknown) => x)) as Record<string, unknown>;
    // O_RDONLY opens the directory, and then it is refused for not being a character device.
    if (readOnly.has(command)) expect(e).toMatchObject({ code: 'ENODEV', syscall: 'open', detail: 'not a character device (a directory)' });
    else expect(e).toMatchObject({ code: 'EISDIR', syscall: 'open' });
    expect(b.constants.openMode[command]).toBe(readOnly.has(command) ? 'O_RDONLY' : command === 'PDH_CERT_EXPORT' ? 'O_RDWR|fallback:O_RDONLY' : 'O_RDWR');
  });

  // sysfs attributes of mode 0444 refuse O_RDWR with EACCES even for root: the export fallback must then try O_RDONLY.
  const ro = '/sys/devices/system/cpu/online';
  it.runIf(existsSync(ro))('PDH_CERT_EXPORT falls back to O_RDONLY when the node is not writable; PEK_GEN does not', async () => {
    // Only an fd that opened can be found to be a regular file: that proves the O_RDONLY retry.
    const opened = { code: 'ENODEV', syscall: 'open', detail: 'not a character device (a regular file)' };
    await expect(b.pdhCertExport(ro)).rejects.toMatchObject(opened);
    await expect(b.pekGen(ro)).rejects.toMatchObject({ code: 'EACCES', syscall: 'open', errno: -13 });
    await expect(b.platformStatus(ro)).rejects.toMatchObject(opened);
  });
});

describe('hostile arguments are refused on the JS thread', () => {
  const paths: [string, unknown, RegExp][] = [
    ['a number', 42, /device path must be a string/],
    ['undefined', undefined, /device path must be a string/],
    ['an object', { toString: () => '/dev/sev' }, /device path must be a string/],
    ['an empty string', '', /1\.\.4095 bytes/],
    ['a 5000-byte string', 'a'.repeat(5000), /1\.\.4095 bytes/],
    ['an embedded NUL', '/dev/null\0/etc/passwd', /NUL/],
  ];
  it.each(paths)('path as %s', (_n, arg, re) => {
    for (const [, call] of commands) expect(() => call(arg as string)).toThrow(re);
  });

  it('blob arguments must be Uint8Arrays of 1..16384 bytes', () => {
    expect(() => b.pekCertImport('/dev/null', Buffer.alloc(0), cert)).toThrow(/pek must be 1..16384 bytes, got 0/);
    expect(() => b.pekCertImport('/dev/null', cert, Buffer.alloc(0x4001))).toThrow(/oca must be 1..16384 bytes, got 16385/);
    expect(() => b.pekCertImport('/dev/null', new Uint16Array(4) as unknown as Buffer, cert)).toThrow(/pek must be a Buffer or Uint8Array/);
    expect(() => b.pekCertImport('/dev/null', 'abc' as unknown as Buffer, cert)).toThrow(TypeError);
    expect(() => b.pekCertImport('/dev/null', cert, undefined as unknown as Buffer)).toThrow(TypeError);
    expect(() => b.snpSetConfig('/dev/null', Buffer.alloc(63))).toThrow(/config must be 64..64 bytes, got 63/);
    expect(() => b.snpSetConfig('/dev/null', Buffer.alloc(1 << 20))).toThrow(RangeError);
    // Must throw synchronously: a returned promise would mean the length check moved to the pool thread.
    let code: unknown;
    try {
      void b.pekCertImport('/dev/null', Buffer.alloc(0), cert);
    } catch (e) {
      code = (e as { code: string }).code;
    }
    expect(code).toBe('ERR_OUT_OF_RANGE');
  });

  it('cpuid rejects non-integers and values outside u32', () => {
    expect(() => b.cpuid(-1)).toThrow(/0\.\.0xffffffff/);
    expect(() => b.cpuid(2 ** 32)).toThrow(RangeError);
    expect(() => b.cpuid(1.5)).toThrow(RangeError);
    expect(() => b.cpuid(Number.NaN)).toThrow(RangeError);
    expect(() => b.cpuid('0' as unknown as number)).toThrow(TypeError);
    expect(() => b.cpuid(0, -2)).toThrow(/subleaf/);
  });
});

describe('cpuid', () => {
  it('leaf 0 returns the vendor string the kernel reports in /proc/cpuinfo', () => {
    const [max, ebx, ecx, edx] = b.cpuid(0);
    expect(max).toBeGreaterThan(0);
    const vendor = Buffer.alloc(12);
    vendor.writeUInt32LE(ebx, 0);
    vendor.writeUInt32LE(edx, 4);
    vendor.writeUInt32LE(ecx, 8);
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8').match(/^vendor_id\s*:\s*(\S+)/m)?.[1];
    expect(vendor.toString('latin1')).toBe(cpuinfo);
  });

  it('returns four unsigned 32-bit numbers and accepts a subleaf', () => {
    const r = b.cpuid(0x80000000, 0);
    expect(r).toHaveLength(4);
    for (const x of r) expect(Number.isInteger(x) && x >= 0 && x <= 0xffffffff).toBe(true);
    expect(r[0]).toBeGreaterThanOrEqual(0x80000000);
    expect(b.cpuid(0x80000000)).toEqual(r);
  });
});
