/**
 * The simulator's key hierarchy verifies with an independent verifier (plain
 * node:crypto written from the spec) and with lib/certs' chain verification,
 * and is marked as TEST roots.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../lib/certs/verify-chain.js';
import { detectGeneration } from '../../lib/certs/trust-anchor.js';
import { decodeCaCert } from '../../lib/certs/ca-cert.js';
import { TEST_ROOT_ID_PREFIX } from '../../lib/sim/keys.js';
import { cleanupDirs, exportCerts, freshPlatform } from './helpers.js';
import { askSignsCek, caSigns, ecSigns, keyMatchesCert } from './independent.js';

afterAll(cleanupDirs);

describe('simulated key hierarchy', () => {
  const p = freshPlatform();
  const { pdh, chain } = exportCerts(p);
  const pek = chain.subarray(0, 2084);
  const oca = chain.subarray(2084, 4168);
  const cek = chain.subarray(4168);
  const ark = fs.readFileSync(path.join(p.stateDir, 'ark.cert'));
  const ask = fs.readFileSync(path.join(p.stateDir, 'ask.cert'));

  it('every link verifies with plain node:crypto (P-384 ECDSA, RSA-PSS SHA-384)', () => {
    expect(ecSigns(pek, pdh)).toBe(true);
    expect(ecSigns(oca, pek)).toBe(true);
    expect(ecSigns(cek, pek)).toBe(true);
    expect(ecSigns(oca, oca)).toBe(true);
    expect(askSignsCek(ask, cek)).toBe(true);
    expect(caSigns(ark, ask)).toBe(true);
    expect(caSigns(ark, ark)).toBe(true);
  });

  it('wrong directions and tampering fail', () => {
    expect(ecSigns(pdh, pek)).toBe(false);
    expect(ecSigns(cek, oca)).toBe(false);
    expect(caSigns(ask, ark)).toBe(false);
    const t = Buffer.from(pdh);
    t[0x20] ^= 1;
    expect(ecSigns(pek, t)).toBe(false);
  });

  it('the PDH matches pdh.key.pem, and the formats are the AMD ones (RSA-4096 CA certs, P-384 SEV certs)', () => {
    expect(keyMatchesCert(fs.readFileSync(path.join(p.stateDir, 'pdh.key.pem')), pdh)).toBe(true);
    expect(ark.length).toBe(1600);
    expect(ask.length).toBe(1600);
    expect(ark.readUInt32LE(0x24)).toBe(0x0000);
    expect(ask.readUInt32LE(0x24)).toBe(0x0013);
    expect(pdh.readUInt32LE(8)).toBe(0x1003);
    expect(pdh.readUInt32LE(12)).toBe(0x0003); // ECDH_SHA256
    expect(cek.readUInt32LE(0x414)).toBe(0x13); // ASK slot
    expect(cek.readUInt32LE(0x418)).toBe(0x0101); // RSA_SHA384
  });

  it('lib/certs verifies the full chain with the simulator CA, and no AMD root accepts it', () => {
    const res = verifyChain({ sev: Buffer.concat([pdh, chain]), ca: Buffer.concat([ask, ark]) });
    expect(res.ok).toBe(true);
    expect(detectGeneration(cek)).toBeUndefined();
    expect(p.caChain().equals(Buffer.concat([ask, ark]))).toBe(true);
  });

  it('the roots are marked as test roots in their key ids', () => {
    expect(decodeCaCert(ark).keyId.subarray(0, 12).toString('ascii')).toBe(`${TEST_ROOT_ID_PREFIX}ARK-`);
    expect(decodeCaCert(ask).keyId.subarray(0, 12).toString('ascii')).toBe(`${TEST_ROOT_ID_PREFIX}ASK-`);
  });
});
