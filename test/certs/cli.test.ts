import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { ROOT, runCli } from '../helpers/cli.js';
import {
  Algo,
  Usage,
  createSevCert,
  decodeSevCert,
  encodeSevCert,
  renderVerify,
  sevCertDisplay,
  signLegacyReport,
  signSevCert,
  verifyChain,
  verifySevLink,
  decodePrivateKeyFor,
} from '../../lib/certs/index.js';
import { SEV_TESTS, derived, derivedPath } from './fixtures.js';

const NAPLES_OUT = `PDH EP384 D256 dbec0cf343b140dc7ded571935e8d0ec8059fd1610ddb3c79eb177e7cd3878a2
 ⬑ PEK EP384 E256 8d55d63b6792c6ed10e11df7afc7e25d6a0428a6351fb9a806ec4160f2b0f390
   •⬑ OCA EP384 E256 70bb8f3702b22e848ef7a5dac704186ee80a889273443b4b5466da9405d4cc03
    ⬑ CEK EP384 E256 0f6570c3ddec6b393398084251f6924fcfb7d8fa1779e4e36dbbca30ee0c4f38
       ⬑ ASK R2048 R256 5dff2a2a4dd59dc095d73a26af28be523192ade830bdd35bacdd81ee75584c45
         •⬑ ARK R2048 R256 8efddcaaf84990cf6354d93637be270220cf15797332b3d918c3b8cc77349f31

 • = self signed, ⬑ = signs, •̷ = invalid self sign, ⬑̸ = invalid signs
`;
const ROME_OUT = `PDH EP384 D256 a19ef679477f2256d802ce9054ee6d1145dbeed52998c66ea97499a01d977c54
 ⬑ PEK EP384 E256 a37b51038cbaec1062f7b5f93e8caa55cc7798b1a813c26fae1cabc96320fa0a
   •⬑ OCA EP384 E256 deae2d45b8d1456c94b514fba0e6f6fb9f13afc9df9ba9670e9c9e9e54b4af6e
    ⬑ CEK EP384 E256 ce2cba2df8808d188f445192418e008ecf9bd1464db35ea64afa3b3b6966396c
       ⬑ ASK R4096 R384 d8cd9d1798c311c96e009a91552f17b4ddc4886a064ec933697734965b9ab29db803c79604e2725658f0861bfaf09ad4
         •⬑ ARK R4096 R384 3d2c1157c29ef7bd4207fc0c8b08db080e579ceba267f8c93bec8dce73f5a5e2e60d959ac37ea82176c1a0c61ae203ed

 • = self signed, ⬑ = signs, •̷ = invalid self sign, ⬑̸ = invalid signs
`;

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-certs-cli-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function oneLineError(r: { code: number | null; stderr: string }, re: RegExp) {
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^sevkit: .+\n$/);
  expect(r.stderr.split('\n').length).toBe(2);
  expect(r.stderr).toMatch(re);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('sevkit verify', () => {
  it("prints exactly sevctl's lines for the Naples and Rome chains", async () => {
    const n = await runCli(['verify', '--sev', derivedPath('naples', 'sev_chain')]);
    expect(n.stderr).toBe('');
    expect(n.code).toBe(0);
    expect(n.stdout).toBe(NAPLES_OUT);
    const r = await runCli(['verify', '--sev', derivedPath('rome', 'full_chain'), '--ca', derivedPath('rome', 'ca_chain')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(ROME_OUT);
  });

  it('marks the broken link, exits 1, and says which link and why', async () => {
    const r = await runCli(['verify', '--sev', derivedPath('rome', 'sev_chain'), '--ca', derivedPath('naples', 'ca_chain')]);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines[4]).toBe('       ⬑̸ ASK R2048 R256 5dff2a2a4dd59dc095d73a26af28be523192ade830bdd35bacdd81ee75584c45');
    expect(lines[1]).toMatch(/^ ⬑ PEK/);
    oneLineError(r, /verification failed \(ASK→CEK: /);
    // wrong OCA: self-signature fine, OCA→PEK invalid
    const o = await runCli(['verify', '--sev', derivedPath('rome', 'sev_chain'), '--oca', path.join(SEV_TESTS, 'naples/oca.cert')]);
    expect(o.code).toBe(1);
    expect(o.stdout.split('\n')[2]).toBe('   •⬑̸ OCA EP384 E256 70bb8f3702b22e848ef7a5dac704186ee80a889273443b4b5466da9405d4cc03');
    // -q: nothing at all, still exit 1
    const q = await runCli(['verify', '-q', '--sev', derivedPath('rome', 'sev_chain'), '--ca', derivedPath('naples', 'ca_chain')]);
    expect([q.code, q.stdout, q.stderr]).toEqual([1, '', '']);
  });

  it('--json reports every link', async () => {
    const r = await runCli(['verify', '--json', '--sev', derivedPath('rome', 'sev_chain'), '--generation', 'naples']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.valid).toBe(false);
    expect(j.generation).toBe('naples');
    expect(j.links.filter((l: { valid: boolean }) => !l.valid).map((l: { link: string }) => l.link)).toEqual(['ask-cek']);
    expect(j.certificates.pdh).toBe('PDH EP384 D256 a19ef679477f2256d802ce9054ee6d1145dbeed52998c66ea97499a01d977c54');
    const ok = JSON.parse((await runCli(['verify', '--json', '--sev', derivedPath('naples', 'full_chain')])).stdout);
    expect(ok.valid).toBe(true);
    expect(ok.generation).toBe('naples');
  });

  it('bad files give one line naming the file and the problem', async () => {
    oneLineError(await runCli(['verify', '--sev', path.join(tmp, 'missing.cert')]), /missing\.cert: cannot read SEV chain: ENOENT/);
    oneLineError(await runCli(['verify', '--sev', tmp]), /is a directory/);
    const trunc = path.join(tmp, 'trunc.cert');
    fs.writeFileSync(trunc, derived('rome', 'sev_chain').subarray(0, 5000));
    oneLineError(await runCli(['verify', '--sev', trunc]), /trunc\.cert: size is 5000 bytes, a SEV chain/);
    const badver = path.join(tmp, 'badver.cert');
    const b = Buffer.from(derived('rome', 'sev_chain'));
    b.writeUInt32LE(7, 0x1048);
    fs.writeFileSync(badver, b);
    oneLineError(await runCli(['verify', '--sev', badver]), /badver\.cert: OCA: version is 7, expected 1/);
    oneLineError(await runCli(['verify', '--sev', derivedPath('rome', 'sev_chain'), '--ca', derivedPath('rome', 'full_chain')]), /full_chain\.cert: ASK: /);
    const unknownCek = path.join(tmp, 'sim.cert');
    const s = Buffer.from(derived('rome', 'sev_chain'));
    s.writeUInt32LE(Usage.INV, 0x186c + 0x414);
    fs.writeFileSync(unknownCek, s);
    oneLineError(await runCli(['verify', '--sev', unknownCek]), /could not find a matching built-in AMD certificate.*--ca/);
    const g = await runCli(['verify', '--sev', derivedPath('rome', 'sev_chain'), '--generation', 'zen9']);
    oneLineError(g, /unknown processor generation 'zen9'/);
  });

  it("colours: sevctl's 256-colour codes, only when asked", () => {
    const r = verifyChain({ sev: derived('rome', 'sev_chain'), ca: derived('naples', 'ca_chain') });
    const col = renderVerify(r, true).split('\n');
    expect(col[1]).toBe(' \x1b[38;5;2m⬑\x1b[0m PEK EP384 E256 a37b51038cbaec1062f7b5f93e8caa55cc7798b1a813c26fae1cabc96320fa0a');
    /* eslint-disable no-control-regex -- the colour escapes are what is tested */
    expect(col[2]).toMatch(/^ {3}\x1b\[38;5;2m•\x1b\[0m\x1b\[38;5;2m⬑\x1b\[0m OCA/);
    expect(col[4]).toMatch(/^ {7}\x1b\[38;5;1m⬑̸\x1b\[0m ASK/);
    /* eslint-enable no-control-regex */
    expect(renderVerify(r, false)).not.toContain('\x1b');
  });
});

const HAS_SCRIPT = spawnSync('script', ['--version']).status === 0;

describe.skipIf(!HAS_SCRIPT)('sevkit verify on a terminal', () => {
  // util-linux `script` gives the CLI a real pseudo-terminal as stdout.
  const onTty = (env: NodeJS.ProcessEnv) => {
    const cmd = `"${process.execPath}" --import tsx lib/cli/sevkit.ts verify --sev "${derivedPath('naples', 'sev_chain')}"`;
    const { NO_COLOR: _drop, ...base } = process.env;
    void _drop;
    return spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, env: { ...base, ...env }, encoding: 'utf8', timeout: 60_000 });
  };
  it('colours on a TTY, none with NO_COLOR', () => {
    const col = onTty({});
    expect(col.status).toBe(0);
    expect(col.stdout).toContain(' \x1b[38;5;2m⬑\x1b[0m PEK EP384 E256 8d55d63b');
    expect(col.stdout).toContain('   \x1b[38;5;2m•\x1b[0m\x1b[38;5;2m⬑\x1b[0m OCA');
    const plain = onTty({ NO_COLOR: '1' });
    expect(plain.status).toBe(0);
    expect(plain.stdout).not.toContain('\x1b[38;5');
    expect(plain.stdout.replace(/\r\n/g, '\n')).toContain(NAPLES_OUT);
  });
});

describe('sevkit generate / validate', () => {
  it('generate writes a self-signed OCA and a 0600 SEC1 key that matches it', async () => {
    const cert = path.join(tmp, 'oca.cert');
    const key = path.join(tmp, 'oca.key');
    const r = await runCli(['generate', cert, key]);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, '', '']);
    const raw = fs.readFileSync(cert);
    expect(raw.length).toBe(0x824);
    const oca = decodeSevCert(raw, { usage: Usage.OCA });
    expect(oca.algo).toBe(Algo.ECDSA_SHA256);
    expect([oca.apiMajor, oca.apiMinor]).toEqual([0, 0]);
    expect(oca.sigs[0]).toMatchObject({ usage: Usage.OCA, algo: Algo.ECDSA_SHA256 });
    expect(verifySevLink(oca, oca).ok).toBe(true);
    expect(fs.statSync(key).mode & 0o777).toBe(0o600);
    const k = crypto.createPrivateKey({ key: fs.readFileSync(key), format: 'der', type: 'sec1' });
    expect(decodePrivateKeyFor(fs.readFileSync(key), oca).asymmetricKeyType).toBe(k.asymmetricKeyType);
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp'))).toEqual([]);
    // A generated OCA self-verifies but does not sign the real PEK
    const v = await runCli(['verify', '--sev', derivedPath('rome', 'sev_chain'), '--oca', cert]);
    expect(v.stdout.split('\n')[2]).toBe(`   •⬑̸ ${sevCertDisplay(oca)}`);
    // into a missing directory: one line, no temp left
    oneLineError(await runCli(['generate', path.join(tmp, 'nodir/c'), path.join(tmp, 'nodir/k')]), /nodir\/k: cannot write: ENOENT/);
  });

  it('validate checks the PEK signature of a 208-byte report', async () => {
    const pekKeys = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const pek = signSevCert(createSevCert({ usage: Usage.PEK, publicKey: pekKeys.publicKey }), 1, {
      signerUsage: Usage.OCA,
      signerAlgo: Algo.ECDSA_SHA256,
      privateKey: other.privateKey,
    });
    const dir = path.join(tmp, 'att');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'pek.cert'), encodeSevCert(pek));
    const report = signLegacyReport({ mnonce: Buffer.alloc(16, 1), launchDigest: Buffer.alloc(32, 2), policy: 0x5 }, pekKeys.privateKey);
    expect(report.length).toBe(208);
    fs.writeFileSync(path.join(dir, 'attestation_report.bin'), report);
    const ok = await runCli(['validate', dir, dir]);
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    const j = JSON.parse((await runCli(['validate', '--json', path.join(dir, 'pek.cert'), path.join(dir, 'attestation_report.bin')])).stdout);
    expect(j).toMatchObject({ valid: true, policy: '0x00000005', launchDigest: '02'.repeat(32) });
    const bad = Buffer.from(report);
    bad[0x30] ^= 1;
    fs.writeFileSync(path.join(dir, 'bad.bin'), bad);
    oneLineError(await runCli(['validate', dir, path.join(dir, 'bad.bin')]), /bad\.bin: attestation report signature does not verify with the PEK/);
    fs.writeFileSync(path.join(dir, 'short.bin'), report.subarray(0, 200));
    oneLineError(await runCli(['validate', dir, path.join(dir, 'short.bin')]), /short\.bin: size is 200 bytes, a legacy attestation report is 208/);
    // A real chain's PEK did not sign it
    oneLineError(await runCli(['validate', derivedPath('rome', 'sev_chain'), path.join(dir, 'attestation_report.bin')]), /does not verify/);
  });
});
