import fs from 'node:fs';
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
