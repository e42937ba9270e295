import { describe, expect, it } from 'vitest';
import { SevError, toSevError } from '../../lib/platform/errors.js';
import { SevRet, fwStatusName } from '../../lib/platform/constants.js';
import { SevkitError } from '../../lib/errors.js';
import { nativeError } from './fake-binding.js';

describe('SevError mapping from addon rejections', () => {
  it('ENOENT from open names the path and the code', () => {
    const e = toSevError(nativeError('ENOENT', 'open', '/nonexistent/sev'), '/nonexistent/sev') as SevError;
    expect(e).toBeInstanceOf(SevError);
    expect(e).toBeInstanceOf(SevkitError);
    expect(e.code).toBe('ENOENT');
    expect(e.errno).toBe(-2);
    expect(e.syscall).toBe('open');
    expect(e.path).toBe('/nonexistent/sev');
    expect(e.fwStatus).toBeUndefined();
    expect(e.message).toBe('/nonexistent/sev: open failed: ENOENT, no such device (is the ccp module loaded and SEV enabled in the BIOS?)');
    expect(e.message).not.toContain('\n');
  });

  it('EACCES from open explains the permission problem', () => {
    const e = toSevError(nativeError('EACCES', 'open', '/dev/sev')) as SevError;
    expect(e.code).toBe('EACCES');
    expect(e.errno).toBe(-13);
    expect(e.message).toMatch(/^\/dev\/sev: open failed: EACCES, permission denied/);
  });

  it('ENOTTY from ioctl (a file that is not a SEV device) names the command', () => {
    const e = toSevError(nativeError('ENOTTY', 'ioctl', '/dev/null', 'PLATFORM_STATUS')) as SevError;
    expect(e.code).toBe('ENOTTY');
    expect(e.syscall).toBe('ioctl');
    expect(e.command).toBe('PLATFORM_STATUS');
    expect(e.message).toBe('/dev/null: PLATFORM_STATUS failed: ENOTTY, not a SEV device (SEV_ISSUE_CMD is not understood)');
  });

  it('ENOTSUPP (kernel errno 524) says the firmware is too old', () => {
    const e = toSevError(nativeError('ENOTSUPP', 'ioctl', '/dev/sev', 'GET_ID2')) as SevError;
    expect(e.errno).toBe(-524);
    expect(e.message).toMatch(/GET_ID2 failed: ENOTSUPP, the firmware is too old/);
  });

  const statuses = Object.entries(SevRet).filter(([, v]) => v !== 0);
  it.each(statuses)('EIO with firmware status %s carries number and name', (name, code) => {
    const e = toSevError(nativeError('EIO', 'ioctl', '/dev/sev', 'PDH_CERT_EXPORT', code >>> 0)) as SevError;
    expect(e.code).toBe('EIO');
    expect(e.fwStatus).toBe(code);
    expect(e.fwStatusName).toBe(name);
    expect(e.isFirmware(name)).toBe(true);
    expect(e.message).toContain('/dev/sev: PDH_CERT_EXPORT failed: EIO, firmware status ' + name);
    expect(e.message).not.toContain('\n');
  });

  it('keeps unknown firmware statuses visible instead of guessing', () => {
    const e = toSevError(nativeError('EIO', 'ioctl', '/dev/sev', 'PEK_GEN', 0x1e)) as SevError;
    expect(e.fwStatusName).toBe('SEV_RET_UNKNOWN_0x1e');
    expect(e.message).toMatch(/\(0x1e\): unknown firmware status/);
    expect(fwStatusName(0xffffffff)).toBe('SEV_RET_NO_FW_CALL');
  });

  it('passes through argument errors and SevkitErrors unchanged', () => {
    const t = Object.assign(new TypeError('device path must be a string'), { code: 'ERR_INVALID_ARG_TYPE' });
    expect(toSevError(t)).toBe(t);
    const s = new SevError({ code: 'EPROTO', message: 'x' });
    expect(toSevError(s)).toBe(s);
    expect(toSevError('str')).toBe('str');
  });
});
