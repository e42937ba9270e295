/**
 * Certificates against the software SEV platform. Runs when the simulator is
 * available (SEVKIT_SIM_SOCKET, set by the sim area's global setup). Commands
 * that change platform state (provision, rotate) run in a private simulator
 * state dir (`sevkit sim --state DIR -- ...`) so other suites sharing the
 * global simulator are not disturbed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runCli } from '../helpers/cli.js';
import {
  SEV_CHAIN_SIZE,
  caCertDisplay,
  decodeCaCert,
  decodeFullChain,
  decodeSevChain,
  decodeSevCert,
  encodeSevCert,
  sevCertDisplay,
  verifyChain,
  verifySevLink,
} from '../../lib/certs/index.js';

const SEVKIT = `"${process.execPath}" --import tsx "${path.join(ROOT, 'lib/cli/sevkit.ts')}"`;

describe.skipIf(!process.env.SEVKIT_SIM_SOCKET)('certificates on the simulator', () => {
  let dir: string;
  let state: string;
  let out: string;
  const rc = (name: string) => Number(fs.readFileSync(path.join(out, `${name}.rc`), 'utf8'));
  const text = (name: string, kind: 'out' | 'err' = 'out') => fs.readFileSync(path.join(out, `${name}.${kind}`), 'utf8');

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-certs-sim-'));
    state = path.join(dir, 'state');
    out = path.join(dir, 'out');
    fs.mkdirSync(out);
    // One simulator session runs the whole sequence; each step records stdout/stderr/exit code.
    const step = (name: string, cmd: string) => `${SEVKIT} ${cmd} >"${out}/${name}.out" 2>"${out}/${name}.err"; echo $? >"${out}/${name}.rc"`;
    const script = [
      step('verify-ca', `verify --ca "${dir}/ca.cert"`),
      step('verify-amd', 'verify'),
      step('export-full', `export --full "${dir}/full.cert"`),
      step('generate', `generate "${dir}/oca.cert" "${dir}/oca.key"`),
      step('generate2', `generate "${dir}/other.cert" "${dir}/other.key"`),
      step('provision-wrongkey', `provision "${dir}/oca.cert" "${dir}/other.key"`),
      step('provision', `provision "${dir}/oca.cert" "${dir}/oca.key"`),
      step('export-after', `export "${dir}/after.cert"`),
      step('verify-after', `verify --ca "${dir}/ca.cert" --oca "${dir}/oca.cert"`),
      step('rotate', 'rotate'),
      step('export-rotated', `export "${dir}/rotated.cert"`),
      step('verify-rotated', `verify --ca "${dir}/ca.cert"`),
    ].join('\n');
    const ca = await runCli(['sim', '-q', '--state', state, 'ca', path.join(dir, 'ca.cert')]);
    expect(ca.stderr).toBe('');
    expect(ca.code).toBe(0);
    const r = await runCli(['sim', '-q', '--state', state, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }, 180_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the platform chain verifies with `sevkit sim ca` and fails against AMD roots', () => {
    expect(rc('verify-ca')).toBe(0);
    const lines = text('verify-ca').split('\n');
    expect(lines).toHaveLength(9);
    const ca = fs.readFileSync(path.join(dir, 'ca.cert'));
    expect(ca.length).toBe(2 * 1600);
    expect(lines[4]).toBe(`       ⬑ ${caCertDisplay(decodeCaCert(ca.subarray(0, 1600)))}`);
    expect(lines[5]).toBe(`         •⬑ ${caCertDisplay(decodeCaCert(ca.subarray(1600)))}`);
    expect(rc('verify-amd')).toBe(1);
    expect(text('verify-amd', 'err')).toMatch(/^sevkit: could not find a matching built-in AMD certificate.*\n$/);
  });

  it('export --full appends the simulator CA; the chain verifies only under it', () => {
    expect(rc('export-full')).toBe(0);
    const full = fs.readFileSync(path.join(dir, 'full.cert'));
    expect(full.length).toBe(SEV_CHAIN_SIZE + 3200);
    expect(full.subarray(SEV_CHAIN_SIZE).equals(fs.readFileSync(path.join(dir, 'ca.cert')))).toBe(true);
    const c = decodeFullChain(full);
    expect(verifyChain({ sev: c.sev, ca: c.ca }).ok).toBe(true);
    for (const g of ['naples', 'rome', 'milan', 'genoa', 'turin'] as const) {
      expect(verifyChain({ sev: c.sev, generation: g }).failed.map((l) => l.id)).toEqual(['ask-cek']);
    }
    expect(verifyChain({ sev: c.sev }).caSource).toBe('none');
  });

  it('provision signs the PEK with our OCA (round trip), refusing a key that does not match', () => {
    expect(rc('generate')).toBe(0);
    expect(rc('provision-wrongkey')).toBe(1);
    expect(text('provision-wrongkey', 'err')).toMatch(/^sevkit: .*other\.key: private key does not match the OCA certificate's public key\n$/);
    expect(rc('provision')).toBe(0);
    expect(text('provision', 'err')).toBe('');
    const before = decodeFullChain(fs.readFileSync(path.join(dir, 'full.cert'))).sev;
    const after = decodeSevChain(fs.readFileSync(path.join(dir, 'after.cert')));
    const oca = fs.readFileSync(path.join(dir, 'oca.cert'));
    expect(encodeSevCert(after.oca).equals(oca)).toBe(true);
    expect(verifySevLink(decodeSevCert(oca), after.pek).ok).toBe(true);
    expect(verifySevLink(before.oca, after.pek).ok).toBe(false);
    expect(verifySevLink(after.cek, after.pek).ok).toBe(true);
    expect(rc('verify-after')).toBe(0);
    expect(text('verify-after').split('\n')[2]).toBe(`   •⬑ ${sevCertDisplay(oca)}`);
  });

  it('rotate gives a new PDH under the same PEK; the chain still verifies', () => {
    expect(rc('rotate')).toBe(0);
    const after = decodeSevChain(fs.readFileSync(path.join(dir, 'after.cert')));
    const rotated = decodeSevChain(fs.readFileSync(path.join(dir, 'rotated.cert')));
    expect(encodeSevCert(rotated.pdh).equals(encodeSevCert(after.pdh))).toBe(false);
    expect(encodeSevCert(rotated.pek).equals(encodeSevCert(after.pek))).toBe(true);
    expect(verifySevLink(rotated.pek, rotated.pdh).ok).toBe(true);
    expect(rc('verify-rotated')).toBe(0);
    expect(text('verify-rotated').split('\n')[0]).toBe(sevCertDisplay(rotated.pdh));
  });
});
