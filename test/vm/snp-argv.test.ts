import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { VECTORS } from '../helpers/cli.js';
import {
  alephSnpArgv,
  buildSnpQemuArgv,
  checkSnpPolicy,
  greetingVersion,
  requireSnpQemu,
  snpGuestObject,
  snpPolicyFields,
  VmSnpError,
  type AlephSnpConfig,
} from '../../lib/vm/snp.js';
import { InputError } from '../../lib/errors.js';

const DIR = path.join(VECTORS, 'aleph/aleph-vm/rust/crates/supervisor-controller/tests/conformance/controller_argv_snp');
const fixtures = fs.readdirSync(DIR).filter((f) => f.endsWith('.json'));
const HOST = { cbitpos: 51, reducedPhysBits: 1 };

/** An ID block as sev-snp-measure writes it: VERSION 1 at 0x50, POLICY at 0x58. */
function idBlock(policy = 0x30000n, version = 1): Buffer {
  const b = Buffer.alloc(96, 0xab);
  b.writeUInt32LE(version, 0x50);
  b.writeBigUInt64LE(policy, 0x58);
  return b;
}
const idAuth = Buffer.alloc(4096, 1);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VmSnpError);
    return (e as VmSnpError).code;
  }
  return undefined;
}

describe('aleph SNP argv conformance fixtures', () => {
  it('has the four SNP fixtures', () => {
    expect(fixtures.sort()).toEqual(['custom_policy.json', 'host_volume.json', 'minimal.json', 'with_nic.json']);
  });
  const load = (f: string) => JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')) as { config_json: AlephSnpConfig; expected_argv: string[] };
  for (const f of fixtures.filter((x) => x !== 'custom_policy.json')) {
    it(`${f}: byte-exact`, () => {
      const fx = load(f);
      const argv = alephSnpArgv(fx.config_json, HOST);
      expect(Buffer.from(JSON.stringify(argv))).toEqual(Buffer.from(JSON.stringify(fx.expected_argv)));
    });
  }
  it('custom_policy.json: aleph emits policy 0x50000 (reserved bit 17 clear), which the firmware refuses; sevkit refuses it up front', () => {
    const fx = load('custom_policy.json');
    expect(fx.config_json.sev_policy).toBe(0x50000);
    expect(() => alephSnpArgv(fx.config_json, HOST)).toThrow(/SNP policy 0x50000: reserved bit 17 must be 1/);
    // Everything else is aleph's layout: with bit 17 added the argv differs only in the policy.
    const argv = alephSnpArgv({ ...fx.config_json, sev_policy: 0x70000 }, HOST);
    expect(argv).toEqual(fx.expected_argv.map((a) => a.replace('policy=0x50000', 'policy=0x70000')));
  });
});

describe('SNP argv builder', () => {
  const base = { qemu: 'qemu-system-x86_64', memMb: 1024, vcpus: 2, firmware: '/fw/OVMF.amdsev.fd', qmpSocket: '/run/q.sock' };

  it('builds a full SNP config: memfd backend, -bios, every sev-snp-guest property, no -S and no pflash', () => {
    const hostData = Buffer.alloc(32, 7);
    const argv = buildSnpQemuArgv({
      ...base,
      kernel: '/k/bzImage',
      initrd: '/k/initrd',
      append: 'console=ttyS0',
      snp: { policy: 0x30000, ...HOST, kernelHashes: true, idBlock: idBlock(), idAuth, authorKeyEnabled: true, hostData },
    });
    expect(argv).not.toContain('-S');
    expect(argv.join(' ')).not.toMatch(/pflash/);
    expect(argv.slice(argv.indexOf('-bios'), argv.indexOf('-bios') + 2)).toEqual(['-bios', '/fw/OVMF.amdsev.fd']);
    expect(argv[argv.indexOf('-machine') + 1]).toBe('q35,confidential-guest-support=sev0,memory-backend=ram1,vmport=off');
    const objects = argv.flatMap((a, i) => (a === '-object' ? [argv[i + 1]!] : []));
    expect(objects[0]).toBe('memory-backend-memfd,id=ram1,size=1024M,share=true');
    expect(objects[1]).toBe(
      `sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on,policy=0x30000,id-block=${idBlock().toString('base64')},id-auth=${idAuth.toString('base64')},author-key-enabled=on,host-data=${hostData.toString('base64')}`,
    );
    expect(argv[argv.indexOf('-cpu') + 1]).toBe('EPYC-v4');
  });

  it('takes base64 text for the blobs exactly as it takes the bytes', () => {
    const a = snpGuestObject({ ...HOST, idBlock: idBlock(), idAuth, hostData: Buffer.alloc(32, 9) });
    const b = snpGuestObject({
      ...HOST,
      idBlock: idBlock().toString('base64'),
      idAuth: idAuth.toString('base64'),
      hostData: Buffer.alloc(32, 9).toString('base64'),
    });
    expect(b).toBe(a);
  });

  it('refuses policies the firmware refuses', () => {
    expect(code(() => checkSnpPolicy(0x10000))).toBe('ERR_VM_SNP_POLICY'); // bit 17 clear
    expect(code(() => checkSnpPolicy(0x0))).toBe('ERR_VM_SNP_POLICY');
    expect(code(() => checkSnpPolicy(0x4030000))).toBe('ERR_VM_SNP_POLICY'); // bit 26
    expect(code(() => checkSnpPolicy((1n << 63n) | 0x30000n))).toBe('ERR_VM_SNP_POLICY');
    expect(code(() => checkSnpPolicy(-1))).toBe('ERR_VM_SNP_POLICY');
    expect(code(() => checkSnpPolicy(1n << 64n))).toBe('ERR_VM_SNP_POLICY');
    expect(code(() => checkSnpPolicy(0.5))).toBe('ERR_VM_SNP_POLICY');
    expect(() => checkSnpPolicy(0x10000)).toThrow(/reserved bit 17 must be 1/);
    // The ABI minimum in bits 15:0 against the platform's SNP API.
    expect(code(() => checkSnpPolicy(0x33701n, { major: 1, minor: 55 }))).toBe('ERR_VM_SNP_POLICY');
    expect(() => checkSnpPolicy(0x33701n, { major: 1, minor: 55 })).toThrow(/ABI >= 55\.1, the platform has 1\.55/);
    expect(checkSnpPolicy(0x30137n, { major: 1, minor: 55 })).toBe(0x30137n);
    expect(checkSnpPolicy(0x30000)).toBe(0x30000n);
    expect(checkSnpPolicy(0x3ff0000n)).toBe(0x3ff0000n); // every defined bit
    expect(snpPolicyFields(0xb0137n)).toEqual({ abiMajor: 1, abiMinor: 0x37, smt: true, migrateMa: false, debug: true, singleSocket: false });
  });

  it('refuses every bad blob with a typed error before QEMU sees it', () => {
    const bad: Array<[Parameters<typeof snpGuestObject>[0], string, RegExp]> = [
      [{ ...HOST, hostData: Buffer.alloc(31) }, 'ERR_VM_SNP_HOST_DATA', /host-data must be 32 bytes, got 31/],
      [{ ...HOST, hostData: 'not base64!' }, 'ERR_VM_SNP_HOST_DATA', /not valid base64/],
      [{ ...HOST, hostData: Buffer.alloc(33).toString('base64') }, 'ERR_VM_SNP_HOST_DATA', /got 33/],
      [{ ...HOST, idBlock: Buffer.alloc(95), idAuth }, 'ERR_VM_SNP_ID_BLOCK', /id-block must be 96 bytes, got 95/],
      [{ ...HOST, idBlock: idBlock(), idAuth: Buffer.alloc(4095) }, 'ERR_VM_SNP_ID_BLOCK', /id-auth must be 4096 bytes, got 4095/],
      [{ ...HOST, idBlock: idBlock() }, 'ERR_VM_SNP_ID_BLOCK', /without id-auth/],
      [{ ...HOST, idAuth }, 'ERR_VM_SNP_ID_BLOCK', /id-auth given without id-block/],
      [{ ...HOST, authorKeyEnabled: true }, 'ERR_VM_SNP_ID_BLOCK', /author-key-enabled needs id-auth/],
      [{ ...HOST, idBlock: idBlock(0x70000n), idAuth }, 'ERR_VM_SNP_ID_BLOCK', /made for policy 0x70000, the launch policy is 0x30000/],
      [{ ...HOST, idBlock: idBlock(0x30000n, 2), idAuth }, 'ERR_VM_SNP_ID_BLOCK', /version is 2/],
      [{ ...HOST, idBlock: `${idBlock().toString('base64')}A`, idAuth }, 'ERR_VM_SNP_ID_BLOCK', /not valid base64/],
      [{ ...HOST, cbitpos: 0 }, 'ERR_VM_SNP_ARGV', /cbitpos/],
      [{ ...HOST, reducedPhysBits: 64 }, 'ERR_VM_SNP_ARGV', /reduced-phys-bits/],
      [{ ...HOST, id: 'sev0,policy=0x1' }, 'ERR_VM_SNP_ARGV', /QOM id/],
      [{ ...HOST, policy: 0x20000 | (1 << 26) }, 'ERR_VM_SNP_POLICY', /bits above 25/],
    ];
    for (const [args, c, msg] of bad) {
      expect(
        code(() => snpGuestObject(args)),
        JSON.stringify(Object.keys(args)),
      ).toBe(c);
      expect(() => snpGuestObject(args)).toThrow(msg);
    }
  });

  it('refuses argv values QEMU would refuse or mis-split', () => {
    expect(() => buildSnpQemuArgv({ ...base, firmware: '/a,b/OVMF.fd', snp: HOST })).toThrow(/comma/);
    expect(() => buildSnpQemuArgv({ ...base, kernel: '/a,b/bzImage', snp: HOST })).toThrow(InputError);
    expect(() => buildSnpQemuArgv({ ...base, memMb: 0, snp: HOST })).toThrow(VmSnpError);
    expect(() => buildSnpQemuArgv({ ...base, vcpus: -1, snp: HOST })).toThrow(InputError);
    expect(() => buildSnpQemuArgv({ ...base, memoryBackendId: 'r,x', snp: HOST })).toThrow(/memory backend id/);
  });
});

describe('QEMU capability for SNP', () => {
  it("refuses Debian's QEMU 7.2 with one line naming the version found and the one needed", () => {
    let err: unknown;
    try {
      requireSnpQemu('7.2.22', '/usr/bin/qemu-system-x86_64');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VmSnpError);
    expect((err as VmSnpError).code).toBe('ERR_VM_SNP_QEMU');
    expect((err as Error).message).toBe('QEMU 7.2.22 (/usr/bin/qemu-system-x86_64) cannot launch SEV-SNP guests: the sev-snp-guest object needs QEMU >= 9.1');
    expect((err as Error).message).not.toMatch(/\n/);
  });
  it('accepts 9.1 and later, refuses 9.0 and an unknown version', () => {
    for (const v of ['9.1', '9.1.0', '9.2.3', '10.0.0']) expect(() => requireSnpQemu(v, 'q')).not.toThrow();
    expect(() => requireSnpQemu('9.0.2', 'q')).toThrow(/QEMU 9\.0\.2 \(q\) cannot launch SEV-SNP/);
    expect(() => requireSnpQemu(null, 'q')).toThrow(/cannot tell the version/);
  });
  it('reads the version from a QMP greeting, refusing nonsense', () => {
    expect(greetingVersion({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 } } } })).toBe('7.2.22');
    expect(greetingVersion({ QMP: { version: { qemu: { major: 9, minor: -1, micro: 0 } } } })).toBeNull();
    expect(greetingVersion({ QMP: { version: { qemu: { major: 9.5, minor: 1, micro: 0 } } } })).toBeNull();
  });
});
