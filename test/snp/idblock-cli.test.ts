/**
 * `sevkit snp id-block`: the base64 files QEMU's id-block= / id-auth= take, with the upstream test keys and
 * digest (the block bytes and key digests equal sev-snp-measure's; the signatures verify where the firmware
 * checks them), and one-line usage errors that leave no file behind.
 */
import { afterAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { loadVectors, SNP_LAUNCH } from './digest-helpers.js';
import { verifyIdAuth, parseIdBlock } from '../../lib/snp/idblock.js';

const S = loadVectors('snp-launch/snp-idblock-report.json').sev_snp_measure_test_id_block;
const ID = path.join(SNP_LAUNCH, 'sev-snp-measure/tests/keyfile/id_key_test.pem');
const AUTHOR = path.join(SNP_LAUNCH, 'sev-snp-measure/tests/keyfile/author_key_test.pem');
const digestHex = Buffer.from(S.measurement_b64, 'base64').toString('hex');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-idblock-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const out = (n: string) => path.join(dir, n);

describe('sevkit snp id-block', () => {
  it('writes base64 of 96 and 4096 bytes; the block and key digests equal sev-snp-measure; the firmware checks pass', async () => {
    const r = await runCli([
      'snp',
      'id-block',
      '--id-key',
      ID,
      '--author-key',
      AUTHOR,
      '--digest',
      digestHex,
      '--policy',
      '0x30000',
      '--out-block',
      out('b'),
      '--out-auth',
      out('a'),
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const block = fs.readFileSync(out('b'), 'utf8');
    const auth = Buffer.from(fs.readFileSync(out('a'), 'utf8'), 'base64');
    expect(block).toBe(S.expected_id_block_b64);
    expect(auth).toHaveLength(4096);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ authorKeyEnabled: true, idKeyDigestBase64: S.expected_id_key_hash_b64, authorKeyDigestBase64: S.expected_author_key_b64 });
    const v = verifyIdAuth(Buffer.from(block, 'base64'), auth, { authorKeyEnabled: true });
    expect(v.idKeyDigest.toString('hex')).toBe(j.idKeyDigest);
  });

  it('IDs, SVN and policy land in the block; without an author key the text output says author-key-enabled=off', async () => {
    const r = await runCli([
      'snp',
      'id-block',
      '--id-key',
      ID,
      '--digest',
      digestHex,
      '--policy',
      '196608',
      '--family-id',
      '11'.repeat(16),
      '--image-id',
      '0x' + '22'.repeat(16),
      '--guest-svn',
      '5',
      '--out-block',
      out('b2'),
      '--out-auth',
      out('a2'),
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^id-key-digest: [0-9a-f]{96}\nqemu: .*author-key-enabled=off\n$/);
    const f = parseIdBlock(Buffer.from(fs.readFileSync(out('b2'), 'utf8'), 'base64'));
    expect([f.familyId.toString('hex'), f.imageId.toString('hex'), f.guestSvn, f.policy]).toEqual(['11'.repeat(16), '22'.repeat(16), 5, 0x30000n]);
  });

  it('usage and key errors: one line, no file written', async () => {
    const p256 = out('p256.pem');
    fs.writeFileSync(p256, crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const base = ['snp', 'id-block', '--out-block', out('nb'), '--out-auth', out('na')];
    for (const [args, code, re] of [
      [['--id-key', ID, '--digest', 'abcd', '--policy', '0x30000'], 2, /--digest must be 48 bytes/],
      [['--id-key', ID, '--digest', digestHex, '--policy', '0x10000'], 2, /bit 17 is reserved/],
      [['--id-key', ID, '--digest', digestHex, '--policy', '0x30000', '--family-id', 'ab'], 2, /--family-id must be 16 bytes/],
      [['--id-key', p256, '--digest', digestHex, '--policy', '0x30000'], 1, /P-384, this is EC prime256v1/],
      [['--id-key', out('missing.pem'), '--digest', digestHex, '--policy', '0x30000'], 1, /no such file/],
    ] as [string[], number, RegExp][]) {
      const r = await runCli([...base, ...args]);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(fs.existsSync(out('nb')) || fs.existsSync(out('na'))).toBe(false);
    // The auth file cannot be written: the block written before it is removed again (never half a pair).
    const r = await runCli([
      ...base.slice(0, 4),
      '--out-auth',
      path.join(dir, 'no-such-dir', 'a'),
      '--id-key',
      ID,
      '--digest',
      digestHex,
      '--policy',
      '0x30000',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot write the ID auth structure/);
    expect(fs.existsSync(out('nb'))).toBe(false);
  });
});
