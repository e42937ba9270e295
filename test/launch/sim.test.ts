/**
 * Sessions made here open with the simulated platform's PDH key (the
 * simulator's LAUNCH_START relies on exactly this). Uses the state dir of a
 * running simulator when SEVKIT_SIM_STATE is set, else provisions a fresh one.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  createSession,
  openSession,
  launchMeasure,
  verifyMeasurement,
  buildSecret,
  openSecret,
  parseSecretTable,
  computeLaunchDigest,
  SessionError,
} from '../../lib/launch/index.js';
import { decodeSevCert, Usage } from '../../lib/certs/index.js';
import { SNP_MEASURE } from './helpers.js';
import { runCli } from '../helpers/cli.js';

let stateDir: string;
let own = false;

beforeAll(async () => {
  if (process.env.SEVKIT_SIM_STATE && fs.existsSync(path.join(process.env.SEVKIT_SIM_STATE, 'pdh.key.pem'))) {
    stateDir = process.env.SEVKIT_SIM_STATE;
    return;
  }
  const { SimPlatform } = await import('../../lib/sim/platform.js');
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-launch-sim-'));
  own = true;
  SimPlatform.open(stateDir, { seed: 'launch-tests' });
}, 180_000);
afterAll(() => {
  if (own) fs.rmSync(stateDir, { recursive: true, force: true });
});

describe('sessions for the simulated platform', { timeout: 60_000 }, () => {
  it('the state dir holds a PDH certificate and its PKCS#8 key', () => {
    const pdh = fs.readFileSync(path.join(stateDir, 'pdh.cert'));
    expect(decodeSevCert(pdh).usage).toBe(Usage.PDH);
    expect(fs.readFileSync(path.join(stateDir, 'pdh.key.pem'), 'utf8')).toMatch(/BEGIN PRIVATE KEY/);
  });

  it('createSession(sim PDH) opens with pdh.key.pem for several policies; another policy is refused', () => {
    const pdh = fs.readFileSync(path.join(stateDir, 'pdh.cert'));
    const pem = fs.readFileSync(path.join(stateDir, 'pdh.key.pem'), 'utf8');
    for (const policy of [0, 1, 5, 0x7, 0x10001]) {
      const s = createSession(pdh, policy);
      const k = openSession({ godh: s.godhB64, session: s.sessionB64, pdhPrivateKey: pem, policy });
      expect(k.tek.equals(s.tek) && k.tik.equals(s.tik)).toBe(true);
      expect(() => openSession({ godh: s.godh, session: s.session, pdhPrivateKey: pem, policy: policy ^ 1 })).toThrow(SessionError);
    }
  });

  it('firmware-side flow: open → measure → owner verifies → secret opens on the firmware side', () => {
    const pdh = fs.readFileSync(path.join(stateDir, 'pdh.cert'));
    const pem = fs.readFileSync(path.join(stateDir, 'pdh.key.pem'), 'utf8');
    const owner = createSession(pdh, 5);
    const fw = openSession({ godh: owner.godh, session: owner.session, pdhPrivateKey: pem, policy: 5 });
    const firmware = fs.readFileSync(path.join(SNP_MEASURE, 'ovmf_AmdSev_suffix.bin'));
    const digest = computeLaunchDigest({ firmware, es: { numCpus: 2, vcpuType: 'EPYC-Genoa' } });
    const blob = launchMeasure({ digest, tik: fw.tik, apiMajor: 1, apiMinor: 55, build: 21, policy: 5 });
    const v = verifyMeasurement({
      measurement: blob,
      sevInfo: { apiMajor: 1, apiMinor: 55, buildId: 21, policy: 5 },
      expected: { policy: 5, tik: owner.tik, launch: { firmware, es: { numCpus: 2, vcpuType: 'EPYC-Genoa' } } },
    });
    expect(v.match).toBe(true);
    const pkt = buildSecret({ tek: owner.tek, tik: owner.tik, measurement: blob, entries: [{ guid: 'disk-password', data: Buffer.from('hunter2') }] });
    const plain = openSecret({ header: pkt.header, payload: pkt.payload, tek: fw.tek, tik: fw.tik, measurement: blob.subarray(0, 32) });
    expect(parseSecretTable(plain).entries[0]!.data.toString()).toBe('hunter2');
  });

  it("sevkit session verifies a simulator chain only against the simulator's TEST roots, and says so", async () => {
    const chain = Buffer.concat(['pdh', 'pek', 'oca', 'cek'].map((n) => fs.readFileSync(path.join(stateDir, `${n}.cert`))));
    const file = path.join(os.tmpdir(), `sevkit-simchain-${process.pid}.cert`);
    fs.writeFileSync(file, chain);
    const out = path.join(os.tmpdir(), `sevkit-simsess-${process.pid}`);
    try {
      const ok = await runCli(['session', '--name', out, file, '1'], { env: { SEVKIT_SIM_STATE: stateDir } });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stderr).toMatch(/SIMULATED platform TEST roots .* not AMD/);
      const k = openSession({
        godh: fs.readFileSync(`${out}_godh.b64`, 'utf8'),
        session: fs.readFileSync(`${out}_session.b64`, 'utf8'),
        pdhPrivateKey: fs.readFileSync(path.join(stateDir, 'pdh.key.pem'), 'utf8'),
        policy: 1,
      });
      expect(k.tik.equals(fs.readFileSync(`${out}_tik.bin`))).toBe(true);
      const env = { ...process.env };
      delete env.SEVKIT_SIM_STATE;
      const refused = await runCli(['session', '--name', `${out}-x`, file, '1'], { env: { ...env, SEVKIT_SIM_STATE: '' } });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/certificate chain is not valid: ASK → CEK/);
    } finally {
      for (const f of ['godh.b64', 'session.b64', 'tek.bin', 'tik.bin']) fs.rmSync(`${out}_${f}`, { force: true });
      fs.rmSync(file, { force: true });
    }
  });
});
