import crypto from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { VECTORS } from '../helpers/cli.js';

export const SEV_TESTS = path.join(VECTORS, 'virtee-sev/tests');
export const BUILTIN_DIR = path.join(VECTORS, 'virtee-sev/src/certs/sev/builtin');
export const DERIVED = path.join(VECTORS, 'virtee-derived');

export function vec(...p: string[]): Buffer {
  return fs.readFileSync(path.join(VECTORS, ...p));
}
export function realCert(gen: 'naples' | 'rome', name: 'pdh' | 'pek' | 'oca' | 'cek'): Buffer {
  return fs.readFileSync(path.join(SEV_TESTS, gen, `${name}.cert`));
}
export function builtinFile(gen: string, name: 'ark' | 'ask'): Buffer {
  return fs.readFileSync(path.join(BUILTIN_DIR, gen, `${name}.cert`));
}
export function derived(gen: 'naples' | 'rome', name: 'sev_chain' | 'ca_chain' | 'full_chain'): Buffer {
  return fs.readFileSync(path.join(DERIVED, gen, `${name}.cert`));
}
export const derivedPath = (gen: string, name: string) => path.join(DERIVED, gen, `${name}.cert`);

/** Pre-generated TEST RSA keys (test/fixtures/certs), so no test waits for RSA-4096 key generation. */
export function testRsa(name: 'ark' | 'ask' | 'other', bits: 2048 | 4096): { privateKey: crypto.KeyObject; publicKey: crypto.KeyObject } {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/certs', `test-${name}-${bits}.key.pem`);
  const privateKey = crypto.createPrivateKey(fs.readFileSync(file));
  return { privateKey, publicKey: crypto.createPublicKey(privateKey) };
}
