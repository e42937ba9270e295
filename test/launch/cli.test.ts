import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { runCli } from '../helpers/cli.js';
import { KA, SEVCTL, SEVCTL_OVMF, SNP_MEASURE, vec, read, b64 } from './helpers.js';
import { openSecret, parseSecretTable, secretEntryText, openSession, launchMeasure, computeLaunchDigest } from '../../lib/launch/index.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-launch-cli-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const T = (f: string) => path.join(dir, f);
const TIK = path.join(SEVCTL, 'measurement/tik1.bin');
const cases = KA.sevctl_measurement_build.cases as any[];

/** A failed command prints exactly one line, prefixed, and no stack trace. */
function oneLine(r: { code: number | null; stderr: string }, re: RegExp) {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines.length, r.stderr).toBe(1);
  expect(lines[0]).toMatch(/^sevkit: /);
  expect(lines[0]).toMatch(re);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('sevkit measurement build (sevctl output)', { timeout: 180_000 }, () => {
  const common = [
    'measurement',
    'build',
    '--api-major',
    '1',
    '--api-minor',
    '40',
    '--build-id',
    '40',
    '--policy',
    '3',
    '--tik',
    TIK,
    '--nonce',
    'wxP6tRHCFrFQWxsuqZA8QA==',
  ];
  it('--launch-digest', async () => {
    const r = await runCli([...common, '--launch-digest', cases[0].launch_digest_b64]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${cases[0].expected_stdout}\n`);
  });
  it('--firmware with --outfile writes the raw blob', async () => {
    const r = await runCli([...common, '--firmware', SEVCTL_OVMF, '--outfile', T('m.bin')]);
    expect(r.stdout).toBe(`Wrote outfile: ${T('m.bin')}\n`);
    expect(read(T('m.bin')).toString('base64')).toBe(cases[1].expected_stdout);
  });
  it('SEV-ES with sevctl VMSA files, and the same from --vcpu-type EPYC-Milan (legacy VMSAs built from the firmware)', async () => {
    const c = cases[3];
    const es = [
      'measurement',
      'build',
      '--api-major',
      '1',
      '--api-minor',
      '49',
      '--build-id',
      '6',
      '--policy',
      '0x05',
      '--tik',
      TIK,
      '--launch-measure-blob',
      c.launch_measure_blob_b64,
      '--firmware',
      SEVCTL_OVMF,
      '--num-cpus',
      '4',
    ];
    const a = await runCli([...es, '--vmsa-cpu0', path.join(SEVCTL, 'vmsa0.bin'), '--vmsa-cpu1', path.join(SEVCTL, 'vmsa1.bin')]);
    expect(a.stdout).toBe(`${c.expected_stdout}\n`);
    const b = await runCli([...es, '--vcpu-type', 'EPYC-Milan']);
    expect(b.stdout).toBe(`${c.expected_stdout}\n`);
    const i2 = await runCli([...es, '--vcpu-type', 'EPYC-Milan', '--vm-type', 'init2']);
    expect(i2.code).toBe(0);
    expect(i2.stdout).not.toBe(`${c.expected_stdout}\n`);
  });
  it('kernel hashes: output equals the library prediction', async () => {
    const k = path.join(SEVCTL, 'measurement/vmlinuz-fake'),
      i = path.join(SEVCTL, 'measurement/initrd-fake');
    const r = await runCli([...common, '--firmware', SEVCTL_OVMF, '--kernel', k, '--initrd', i, '--cmdline', 'foo bar baz fake kernel=cmdline']);
    const d = computeLaunchDigest({ firmware: read(SEVCTL_OVMF), kernel: { kernel: read(k), initrd: read(i), cmdline: 'foo bar baz fake kernel=cmdline' } });
    expect(r.stdout).toBe(
      `${launchMeasure({ digest: d, mnonce: b64('wxP6tRHCFrFQWxsuqZA8QA=='), tik: read(TIK), apiMajor: 1, apiMinor: 40, build: 40, policy: 3 }).toString('base64')}\n`,
    );
  });
  it('bad inputs: one clear line each', async () => {
    oneLine(
      await runCli([...common.slice(0, -1), 'abc!', '--launch-digest', cases[0].launch_digest_b64]),
      /--nonce: value is neither an existing file nor valid base64/,
    );
    oneLine(
      await runCli([...common.slice(0, 10), '--tik', T('missing.bin'), '--nonce', 'wxP6tRHCFrFQWxsuqZA8QA==', '--launch-digest', cases[0].launch_digest_b64]),
      /--tik: .*missing.bin: no such file/,
    );
    oneLine(
      await runCli([...common.slice(0, 10), '--tik', 'AAAA', '--nonce', 'wxP6tRHCFrFQWxsuqZA8QA==', '--launch-digest', cases[0].launch_digest_b64]),
      /--tik: base64 value has 3 bytes, expected 16/,
    );
    oneLine(await runCli([...common, '--launch-digest', 'AAAA']), /--launch-digest: 3 bytes, expected 32/);
    oneLine(await runCli([...common, '--firmware', T('nope.fd')]), /--firmware: .*nope.fd: no such file/);
    fs.writeFileSync(T('plain.fd'), crypto.randomBytes(8192));
    oneLine(
      await runCli([...common, '--firmware', T('plain.fd'), '--kernel', SEVCTL_OVMF, '--initrd', SEVCTL_OVMF, '--cmdline', 'x']),
      /plain.fd: no OVMF footer GUID table/,
    );
    oneLine(
      await runCli([
        'measurement',
        'build',
        '--api-major',
        '1',
        '--api-minor',
        '1',
        '--build-id',
        '1',
        '--policy',
        '5',
        '--tik',
        TIK,
        '--nonce',
        'wxP6tRHCFrFQWxsuqZA8QA==',
        '--firmware',
        T('plain.fd'),
        '--num-cpus',
        '2',
        '--vcpu-type',
        'EPYC',
      ]),
      /plain.fd: no OVMF footer GUID table/,
    );
    oneLine(
      await runCli([
        'measurement',
        'build',
        '--api-major',
        '1',
        '--api-minor',
        '1',
        '--build-id',
        '1',
        '--policy',
        '5',
        '--tik',
        TIK,
        '--nonce',
        'wxP6tRHCFrFQWxsuqZA8QA==',
        '--firmware',
        SEVCTL_OVMF,
        '--num-cpus',
        '2',
        '--vcpu-type',
        'Icelake',
      ]),
      /unknown vCPU type 'Icelake'/,
    );
    const u = await runCli([...common, '--firmware', SEVCTL_OVMF, '--kernel', SEVCTL_OVMF]);
    expect(u.code).toBe(2);
    oneLine(u, /--kernel, --initrd, --cmdline must be specified together/);
    const p = await runCli(['measurement', 'build', '--api-major', 'x1', '--api-minor', '1', '--build-id', '1', '--policy', '5', '--tik', TIK]);
    expect(p.code).toBe(2);
  });
});

describe('sevkit measurement verify', { timeout: 180_000 }, () => {
  it('match, mismatch and policy refusal', async () => {
    const tik = crypto.randomBytes(16);
    fs.writeFileSync(T('vtik.bin'), tik);
    const fw = read(path.join(SNP_MEASURE, 'ovmf_AmdSev_suffix.bin'));
    const digest = computeLaunchDigest({ firmware: fw, es: { numCpus: 2, vcpuType: 'EPYC-v4' } });
    const blob = launchMeasure({ digest, tik, apiMajor: 1, apiMinor: 55, build: 21, policy: 5 }).toString('base64');
    const sevInfo = JSON.stringify({
      return: { enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 21, policy: 5, state: 'launch-secret', handle: 1 },
    });
    const base = [
      'measurement',
      'verify',
      '--measurement',
      blob,
      '--sev-info',
      sevInfo,
      '--tik',
      T('vtik.bin'),
      '--firmware',
      path.join(SNP_MEASURE, 'ovmf_AmdSev_suffix.bin'),
      '--num-cpus',
      '2',
      '--vcpu-type',
      'EPYC-v4',
    ];
    const ok = await runCli([...base, '--policy', '0x5']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^match: launch measurement verified/);
    const alephInfo = JSON.stringify({
      sev_info: { enabled: true, api_major: 1, api_minor: 55, build_id: 21, policy: 5, state: 'launch-secret', handle: 1 },
      launch_measure: blob,
    });
    const viaAleph = await runCli([...base.slice(0, 4), '--sev-info', alephInfo, ...base.slice(6), '--policy', '5']);
    expect(viaAleph.code, viaAleph.stderr).toBe(0);
    const wrongCpu = await runCli([...base.slice(0, -1), 'EPYC-Milan', '--policy', '5']);
    expect(wrongCpu.code).toBe(1);
    expect(wrongCpu.stdout).toMatch(/^mismatch: launch measurement does not match/);
    const pol = await runCli([...base, '--policy', 'NODBG|ES|NOKS', '--json']);
    expect(pol.code).toBe(1);
    expect(JSON.parse(pol.stdout)).toMatchObject({ match: false, reason: 'policy-mismatch' });
    oneLine(
      await runCli([...base.slice(0, 2), '--measurement', 'AAAA', ...base.slice(4), '--policy', '5']),
      /--measurement: base64 value has 3 bytes, expected 48/,
    );
    oneLine(await runCli([...base.slice(0, 4), '--sev-info', '{bad', ...base.slice(6), '--policy', '5']), /--sev-info: not valid JSON/);
  });
});

describe('sevkit vmsa', { timeout: 180_000 }, () => {
  const fwArgs = ['--family', '25', '--model', '1', '--stepping', '1', '--userspace', 'qemu', '--firmware', SEVCTL_OVMF];
  it('build → byte-identical; update; show', async () => {
    for (const cpu of ['0', '1']) {
      const r = await runCli(['vmsa', 'build', T(`v${cpu}.bin`), '--cpu', cpu, ...fwArgs]);
      expect(r.code, r.stderr).toBe(0);
      expect(read(T(`v${cpu}.bin`)).equals(read(path.join(SEVCTL, `vmsa${cpu}.bin`)))).toBe(true);
    }
    fs.copyFileSync(path.join(SEVCTL, 'vmsa0.bin'), T('u.bin'));
    expect((await runCli(['vmsa', 'update', T('u.bin'), '--cpu', '1', ...fwArgs])).code).toBe(0);
    expect(read(T('u.bin')).equals(read(path.join(SEVCTL, 'vmsa1.bin')))).toBe(true);
    const show = await runCli(['vmsa', 'show', path.join(SEVCTL, 'vmsa1.bin')]);
    expect(show.stdout).toBe(fs.readFileSync(path.join(SEVCTL, 'vmsa1-show.txt'), 'utf8'));
  });
  it('bad inputs', async () => {
    fs.writeFileSync(T('short.bin'), Buffer.alloc(100));
    oneLine(await runCli(['vmsa', 'show', T('short.bin')]), /short.bin: 100 bytes, a VMSA file is 4096/);
    oneLine(await runCli(['vmsa', 'show', T('none.bin')]), /none.bin: no such file/);
    fs.writeFileSync(T('plain.fd'), crypto.randomBytes(8192));
    oneLine(
      await runCli(['vmsa', 'build', T('x.bin'), '--cpu', '1', '--userspace', 'qemu', '--firmware', T('plain.fd')]),
      /plain.fd: no OVMF footer GUID table/,
    );
    expect(fs.existsSync(T('x.bin'))).toBe(false);
  });
});

describe('sevkit secret', { timeout: 180_000 }, () => {
  const tek = path.join(SEVCTL, 'secret/tek1.bin'),
    tik = path.join(SEVCTL, 'secret/tik1.bin');
  const blob = Buffer.concat([crypto.randomBytes(32), crypto.randomBytes(16)]);
  const common = ['secret', 'build', '--tik', tik, '--tek', tek, '--launch-measure-blob', blob.toString('base64'), '--iv', 'rFR07U3TLH2YnsUj2SVZ7A=='];
  it('build (sevctl output) → packet opens and holds the table; inspect shows GUIDs and sizes only', async () => {
    const r = await runCli([
      ...common,
      '--secret',
      `736869e5-84f0-4973-92ec-06879ce3da0b:${path.join(SEVCTL, 'secret/secret1.txt')}`,
      '--secret',
      `736869e5-aaaa-4973-92ec-06879ce3da0b:${path.join(SEVCTL, 'secret/secret2.txt')}`,
      T('h.bin'),
      T('p.bin'),
    ]);
    expect(r.stdout).toBe(`Wrote header to: ${T('h.bin')}\nWrote payload to: ${T('p.bin')}\n`);
    const header = read(T('h.bin')),
      payload = read(T('p.bin'));
    expect(header.length).toBe(52);
    expect(payload.length).toBe(96);
    expect(header.subarray(4, 20).toString('base64')).toBe('rFR07U3TLH2YnsUj2SVZ7A==');
    const t = parseSecretTable(openSecret({ header, payload, tek: read(tek), tik: read(tik), measurement: blob }));
    expect(t.length).toBe(0x5f);
    expect(t.entries.map((e) => e.data.toString())).toEqual(['MY-LUKS-PASSPHRASE', 'SOME OTHER SECRET']);
    const ins = await runCli(['secret', 'inspect', '--tik', tik, '--tek', tek, '--launch-measure-blob', blob.toString('base64'), T('h.bin'), T('p.bin')]);
    expect(ins.code).toBe(0);
    expect(ins.stdout).toContain('736869e5-aaaa-4973-92ec-06879ce3da0b  17 bytes');
    expect(ins.stdout).not.toContain('MY-LUKS');
    const tampered = Buffer.from(payload);
    tampered[0]! ^= 1;
    fs.writeFileSync(T('pt.bin'), tampered);
    oneLine(
      await runCli(['secret', 'inspect', '--tik', tik, '--tek', tek, '--launch-measure-blob', blob.toString('base64'), T('h.bin'), T('pt.bin')]),
      /MAC does not match/,
    );
  });
  it('--layout aleph with an alias, and the firmware secret-area size check', async () => {
    fs.writeFileSync(T('pw.txt'), 'your-password');
    const r = await runCli([...common, '--layout', 'aleph', '--secret', `luks-key:${T('pw.txt')}`, '--firmware', SEVCTL_OVMF, T('ha.bin'), T('pa.bin')]);
    expect(r.code, r.stderr).toBe(0);
    const t = parseSecretTable(openSecret({ header: read(T('ha.bin')), payload: read(T('pa.bin')), tek: read(tek), tik: read(tik), measurement: blob }));
    expect(t.layout).toBe('aleph');
    expect(t.length).toBe(64);
    expect(secretEntryText(t.entries[0]!.data)).toBe('your-password');
    fs.writeFileSync(T('big.txt'), Buffer.alloc(5000, 0x41));
    oneLine(
      await runCli([...common, '--secret', `disk-password:${T('big.txt')}`, '--firmware', SEVCTL_OVMF, T('hb.bin'), T('pb.bin')]),
      /larger than the firmware secret area \(3072 bytes\)/,
    );
    expect(fs.existsSync(T('hb.bin'))).toBe(false);
    oneLine(
      await runCli([
        ...common,
        '--secret',
        `disk-password:${T('pw.txt')}`,
        '--firmware',
        path.join(SNP_MEASURE, 'ovmf_OvmfX64_suffix.bin'),
        T('hb.bin'),
        T('pb.bin'),
      ]),
      /OVMF has no SEV secret area/,
    );
  });
  it('bad inputs', async () => {
    oneLine(await runCli([...common, '--secret', `nope:${T('pw.txt')}`, T('h2.bin'), T('p2.bin')]), /'nope' is not a GUID or a known alias/);
    oneLine(await runCli([...common, '--secret', `luks-key:${T('missing.txt')}`, T('h2.bin'), T('p2.bin')]), /missing.txt: no such file/);
    oneLine(
      await runCli([
        'secret',
        'build',
        '--tik',
        tik,
        '--tek',
        'AAAA',
        '--launch-measure-blob',
        blob.toString('base64'),
        '--secret',
        `luks-key:${T('pw.txt')}`,
        T('h2.bin'),
        T('p2.bin'),
      ]),
      /--tek: base64 value has 3 bytes, expected 16/,
    );
    oneLine(
      await runCli([
        'secret',
        'build',
        '--tik',
        tik,
        '--tek',
        tek,
        '--launch-measure-blob',
        'AAAA',
        '--secret',
        `luks-key:${T('pw.txt')}`,
        T('h2.bin'),
        T('p2.bin'),
      ]),
      /--launch-measure-blob: 3 bytes/,
    );
    expect(fs.existsSync(T('h2.bin'))).toBe(false);
  });
});

describe('sevkit session / policy', { timeout: 180_000 }, () => {
  it('PDH only warns and writes the four files (keys 0600); a chain is verified; a bad chain is refused', async () => {
    const pdhOnly = await runCli(['session', '--name', path.join(dir, 'only'), vec('virtee-sev/tests/rome/pdh.cert'), '5']);
    expect(pdhOnly.code).toBe(0);
    expect(pdhOnly.stderr).toMatch(/holds only a PDH certificate; nothing was verified/);
    expect(fs.readFileSync(T('only_godh.b64'), 'utf8')).toMatch(/^[A-Za-z0-9+/]{2776}[A-Za-z0-9+/=]{4}$/);
    expect(fs.readFileSync(T('only_session.b64'), 'utf8').length).toBe(172);
    expect(fs.statSync(T('only_tek.bin')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(T('only_tik.bin')).mode & 0o777).toBe(0o600);

    const chain = await runCli(['session', '--name', path.join(dir, 'chain'), vec('virtee-derived/rome/sev_chain.cert'), '0x1']);
    expect(chain.code, chain.stderr).toBe(0);
    expect(chain.stderr).toMatch(/certificate chain verified \(built-in AMD rome roots\)/);
    const full = await runCli(['session', '--name', path.join(dir, 'full'), vec('virtee-derived/naples/full_chain.cert'), '1']);
    expect(full.code, full.stderr).toBe(0);

    const bad = Buffer.from(read(vec('virtee-derived/rome/sev_chain.cert')));
    bad[0x824 + 0x20]! ^= 1;
    fs.writeFileSync(T('bad.cert'), bad);
    oneLine(await runCli(['session', '--name', path.join(dir, 'bad'), T('bad.cert'), '1']), /bad.cert: certificate chain is not valid: PEK → PDH/);
    expect(fs.existsSync(T('bad_godh.b64'))).toBe(false);
    const forced = await runCli(['session', '--name', path.join(dir, 'forced'), '--no-verify', T('bad.cert'), '1']);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toMatch(/NOT verified/);
    oneLine(
      await runCli([
        'session',
        '--name',
        path.join(dir, 'mix'),
        '--ca',
        vec('virtee-derived/naples/ca_chain.cert'),
        vec('virtee-derived/rome/sev_chain.cert'),
        '1',
      ]),
      /ASK → CEK/,
    );
  });
  it('session files open with the platform key (own PDH)', async () => {
    const { makePdh } = await import('./helpers.js');
    const p = makePdh();
    fs.writeFileSync(T('own.pdh'), p.cert);
    const r = await runCli(['session', '--name', path.join(dir, 'own'), T('own.pdh'), '0x10005']);
    expect(r.code, r.stderr).toBe(0);
    const o = openSession({
      godh: fs.readFileSync(T('own_godh.b64'), 'utf8'),
      session: fs.readFileSync(T('own_session.b64'), 'utf8'),
      pdhPrivateKey: p.privateKey,
      policy: 0x10005,
    });
    expect(o.tek.equals(read(T('own_tek.bin'))) && o.tik.equals(read(T('own_tik.bin')))).toBe(true);
  });
  it('bad inputs', async () => {
    oneLine(await runCli(['session', T('nope.cert'), '1']), /PDH file: .*nope.cert: no such file/);
    fs.writeFileSync(T('short.cert'), Buffer.alloc(100));
    oneLine(await runCli(['session', T('short.cert'), '1']), /100 bytes, a PDH certificate is 2084/);
    const badPolicy = await runCli(['session', vec('virtee-sev/tests/rome/pdh.cert'), 'lots']);
    expect(badPolicy.code).toBe(2);
    oneLine(badPolicy, /unknown flag 'lots'/);
    oneLine(await runCli(['session', vec('virtee-sev/tests/rome/pek.cert'), '1']), /pubkey_usage is PEK, expected PDH/);
    oneLine(
      await runCli(['session', '--name', T('no/such/dir/vm'), vec('virtee-sev/tests/rome/pdh.cert'), '1']),
      /--name .*no\/such\/dir\/vm: directory .*no\/such\/dir does not exist/,
    );
  });
  it('policy explains a value', async () => {
    const r = await runCli(['policy', '0x5']);
    expect(r.stdout).toMatch(/^policy 0x5 \(5\)\n  bit 0 NODBG  set /);
    expect(JSON.parse((await runCli(['policy', 'NODBG|ES', '--json'])).stdout)).toMatchObject({ value: 5, flags: ['NODBG', 'ES'] });
  });
});
