/**
 * sevkit's SNP digest and ID block against sev-snp-measure run on inputs beyond the vendored vectors
 * (snp-crosscheck/ssm-crosscheck.json, SOURCE.md there): a 1 MiB firmware, large vCPU counts, host CPU
 * signatures, unusual guest features, a Unicode command line, EC2/GCE with kernels, firmware without SEV
 * metadata, and Debian's OVMF_CODE (checked only where that exact file is installed). Also: our verifier
 * accepts sev-snp-measure's ID auth signatures, and its ID block bytes and key digests equal ours.
 */
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { computeSnpDigest, loadSnpFirmware, type SnpVmmType } from '../../lib/snp/digest.js';
import { createIdBlock, loadSnpSigningKey, verifyIdAuth } from '../../lib/snp/idblock.js';
import { VECTORS, runCli } from '../helpers/cli.js';
import { loadVectors } from './digest-helpers.js';

const X = loadVectors('snp-crosscheck/ssm-crosscheck.json');
const gen = (n: number, a: number, b: number, m = 256) => {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * a + b) % m;
  return out;
};
const GENERATED: Record<string, () => Buffer> = {
  'GEN:fw1m': () => Buffer.concat([gen(255 * 4096, 31, 5, 251), fs.readFileSync(path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin'))]),
  'GEN:kernel64k': () => gen(65536 + 123, 17, 3),
  'GEN:initrd10k': () => gen(10000, 5, 1),
};
const cache = new Map<string, Buffer | null>();
/** An input of a case; null when it is a system file that is absent here or not the pinned one. */
function input(ref: string, sha256?: string): Buffer | null {
  if (cache.has(ref)) return cache.get(ref)!;
  let b: Buffer | null;
  if (ref === 'EMPTY') b = Buffer.alloc(0);
  else if (ref.startsWith('GEN:')) b = GENERATED[ref]!();
  else if (ref.startsWith('SYSTEM:')) b = fs.existsSync(ref.slice(7)) ? fs.readFileSync(ref.slice(7)) : null;
  else b = fs.readFileSync(path.join(VECTORS, ref));
  if (b && sha256 && crypto.createHash('sha256').update(b).digest('hex') !== sha256) b = ref.startsWith('SYSTEM:') ? null : b;
  cache.set(ref, b);
  return b;
}

describe('generated inputs are the ones sev-snp-measure measured', () => {
  it('sizes and sha256', () => {
    for (const [ref, g] of Object.entries(X.generated_inputs as Record<string, { bytes: number; sha256: string }>)) {
      const b = input(ref)!;
      expect([b.length, crypto.createHash('sha256').update(b).digest('hex')], ref).toEqual([g.bytes, g.sha256]);
    }
  });
});

describe('sevkit snp digest = sev-snp-measure on inputs beyond the vectors', () => {
  for (const c of X.cases as any[]) {
    const system = c.ovmf.startsWith('SYSTEM:');
    const fw = input(c.ovmf, c.ovmf_sha256);
    it.skipIf(system && !fw)(`${c.name}${system ? ' (Debian ovmf installed here)' : ''}`, () => {
      expect(fw, 'firmware').not.toBeNull();
      const kernel = c.kernel ? { kernel: input(c.kernel)!, initrd: c.initrd ? input(c.initrd) : null, cmdline: c.append ?? null } : null;
      const run = (allowNoMetadata: boolean) =>
        computeSnpDigest({
          firmware: fw!,
          firmwareName: c.ovmf,
          vcpus: c.vcpus,
          guestFeatures: c.guest_features,
          vmmType: (c.vmm_type ?? 'qemu') as SnpVmmType,
          kernel,
          ...(c.vcpu_type ? { vcpuType: c.vcpu_type } : {}),
          ...(c.vcpu_sig ? { vcpuSig: Number.parseInt(c.vcpu_sig, 16) } : {}),
          ...(c.vcpu_family !== undefined ? { vcpuFamily: c.vcpu_family, vcpuModel: c.vcpu_model, vcpuStepping: c.vcpu_stepping } : {}),
          allowNoMetadata,
        }).digest.toString('hex');
      if (c.no_metadata) expect(() => run(false)).toThrow(/no SEV metadata/);
      if (c.expect_error) expect(() => run(Boolean(c.no_metadata))).toThrow(c.expect_error.replace(/^Error: /, ''));
      else expect(run(Boolean(c.no_metadata))).toBe(c.expected_digest_hex);
    });
  }

  it('snp:ovmf-hash of the generated 1 MiB firmware (and Debian OVMF_CODE.fd where installed)', () => {
    const h = X.snp_ovmf_hash as Record<string, string>;
    expect(loadSnpFirmware(input('GEN:fw1m')!).ovmfHash().toString('hex')).toBe(h['GEN:fw1m']);
    const deb = (X.cases as any[]).find((c) => c.ovmf === 'SYSTEM:/usr/share/OVMF/OVMF_CODE.fd')!;
    const fw = input(deb.ovmf, deb.ovmf_sha256);
    if (fw) expect(loadSnpFirmware(fw).ovmfHash().toString('hex')).toBe(h['SYSTEM:/usr/share/OVMF/OVMF_CODE.fd']);
  });

  it('the CLI prints the same (GCE, 3 vCPUs, a Unicode command line with a trailing space)', async () => {
    const c = (X.cases as any[]).find((x) => x.name.startsWith('c4_'))!;
    const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'sevkit-xc-'));
    try {
      for (const ref of ['GEN:fw1m', 'GEN:kernel64k', 'GEN:initrd10k']) fs.writeFileSync(path.join(dir, ref.slice(4)), input(ref)!);
      const r = await runCli([
        'snp',
        'digest',
        '--firmware',
        path.join(dir, 'fw1m'),
        '--vcpus',
        '3',
        '--vmm-type',
        'gce',
        '--kernel',
        path.join(dir, 'kernel64k'),
        '--initrd',
        path.join(dir, 'initrd10k'),
        '--append',
        c.append,
      ]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(`${c.expected_digest_hex}\n`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ID blocks: sev-snp-measure snp-create-id-block', () => {
  for (const i of X.id_blocks as any[]) {
    it(i.name, () => {
      const out = Object.fromEntries(
        (i.ssm_stdout as string)
          .trim()
          .split('\n')
          .map((l) => l.match(/^([a-z_-]+)[:=] ?(.*)$/)!.slice(1, 3)) as [string, string][],
      );
      const [blockB64, authB64] = (out['id-block'] ?? '').split(',id-auth=') as [string, string];
      const idKey = loadSnpSigningKey(fs.readFileSync(path.join(VECTORS, i.id_key)));
      const authorKey = loadSnpSigningKey(fs.readFileSync(path.join(VECTORS, i.author_key)));
      const ours = createIdBlock({ ld: Buffer.from(i.launch_digest_hex, 'hex') }, idKey, authorKey);
      expect(ours.idBlock.toString('base64')).toBe(blockB64);
      expect(ours.idKeyDigest.toString('base64')).toBe(out.id_key_hash);
      expect(ours.authorKeyDigest!.toString('base64')).toBe(out.author_key);
      // Their signatures (random k) verify under our firmware-side check, and give the same digests.
      const v = verifyIdAuth(Buffer.from(blockB64, 'base64'), Buffer.from(authB64, 'base64'), { authorKeyEnabled: true });
      expect(v.idKeyDigest.equals(ours.idKeyDigest) && v.authorKeyDigest!.equals(ours.authorKeyDigest!)).toBe(true);
    });
  }
});
