/**
 * The real addon's kvmApiVersion (KVM_GET_API_VERSION) without /dev/kvm: the
 * rejection shape through ordinary paths, the read-only fallback, and argument
 * abuse. A real /dev/kvm, where present, must answer 12.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { getNativeBinding, type NativeBinding } from '../../lib/binding.js';

const b: NativeBinding = getNativeBinding();
const MISSING = '/nonexistent/kvm';
const RO_NODE = '/sys/devices/system/cpu/online';

const rejection = async (p: Promise<unknown>) =>
  (await p.then(
    () => expect.unreachable('resolved'),
    (e: unknown) => e,
  )) as Record<string, unknown>;

describe('kvmApiVersion through the real addon', () => {
  it('is exported with the KVM_GET_API_VERSION constant _IO(0xAE, 0x00)', () => {
    expect(typeof b.kvmApiVersion).toBe('function');
    expect(b.constants.KVM_GET_API_VERSION).toBe(0xae00);
  });

  it('a missing path rejects ENOENT from open, with the path and the command', async () => {
    const e = await rejection(b.kvmApiVersion(MISSING));
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open', path: MISSING, command: 'KVM_GET_API_VERSION' });
    expect(e.message).toBe(`open ${MISSING}: ENOENT, No such file or directory`);
    expect(e.fwStatus).toBeUndefined();
  });

  it('/dev/null rejects ENOTTY from ioctl naming KVM_GET_API_VERSION (not an SEV command)', async () => {
    const e = await rejection(b.kvmApiVersion('/dev/null'));
    expect(e).toMatchObject({ code: 'ENOTTY', errno: -25, syscall: 'ioctl', path: '/dev/null', command: 'KVM_GET_API_VERSION' });
    expect(e.message).toBe('ioctl /dev/null (KVM_GET_API_VERSION): ENOTTY, Inappropriate ioctl for device');
    expect(e.fwStatus).toBeUndefined();
  });

  it('a directory rejects EISDIR from the O_RDWR open', async () => {
    expect(await rejection(b.kvmApiVersion('/tmp'))).toMatchObject({ code: 'EISDIR', syscall: 'open', path: '/tmp' });
  });

  it.runIf(existsSync(RO_NODE))('a node refusing O_RDWR is reopened O_RDONLY (sevctl’s open), so the ioctl is reached', async () => {
    // The same node refuses an O_RDWR-only command at open, proving the fallback is what got further.
    expect(await rejection(b.pekGen(RO_NODE))).toMatchObject({ code: 'EACCES', syscall: 'open' });
    // Only an fd that opened can be found to be a regular file: that proves the O_RDONLY retry.
    expect(await rejection(b.kvmApiVersion(RO_NODE))).toMatchObject({
      code: 'ENODEV',
      syscall: 'open',
      path: RO_NODE,
      detail: 'not a character device (a regular file)',
    });
  });

  it('many in flight each settle with their own path', async () => {
    const paths = Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? '/dev/null' : `${MISSING}${i}`));
    const r = await Promise.allSettled(paths.map((p) => b.kvmApiVersion(p)));
    r.forEach((x, i) => {
      expect(x.status).toBe('rejected');
      const e = (x as PromiseRejectedResult).reason as Record<string, unknown>;
      expect(e).toMatchObject({ path: paths[i], code: i % 3 === 0 ? 'ENOTTY' : 'ENOENT' });
    });
  });

  it.runIf(existsSync('/dev/kvm'))('a real /dev/kvm answers KVM_API_VERSION 12 (or a permission error)', async () => {
    const v = await b.kvmApiVersion('/dev/kvm').catch((e: NodeJS.ErrnoException) => e);
    if (typeof v === 'number') expect(v).toBe(12);
    else expect(v).toMatchObject({ code: expect.stringMatching(/^(EACCES|EPERM)$/), syscall: 'open' });
  });
});

describe('kvmApiVersion argument abuse', () => {
  const call = (...args: unknown[]) => (b.kvmApiVersion as unknown as (...a: unknown[]) => unknown)(...args);
  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a bigint', 1n],
    ['an object', {}],
    ['a Buffer', Buffer.from('/dev/null')],
    ['a symbol', Symbol('x')],
  ])('%s throws TypeError ERR_INVALID_ARG_TYPE synchronously', (_n, arg) => {
    expect(() => call(arg)).toThrow(TypeError);
    expect(() => call(arg)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('no argument throws TypeError', () => {
    expect(() => call()).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('an embedded NUL throws TypeError ERR_INVALID_ARG_VALUE (open would stop at the NUL)', () => {
    expect(() => call('/dev/null\0/etc/shadow')).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }));
  });

  it('empty and over-long paths throw RangeError ERR_OUT_OF_RANGE', () => {
    expect(() => call('')).toThrow(RangeError);
    expect(() => call('a'.repeat(5000))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });
});
