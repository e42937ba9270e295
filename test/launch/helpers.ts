import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { VECTORS } from '../helpers/cli.js';
import { createSevCert, encodeSevCert, Usage, Algo } from '../../lib/certs/index.js';

/** Parse a vectors JSON file; redacted values ("[held back]" with a lost closing quote) are repaired first. */
export function loadJson(p: string): any {
  const text = fs.readFileSync(path.join(VECTORS, p), 'utf8').replace(/"\[held back\]\n/g, '"[held back]",\n');
  return JSON.parse(text);
}
export const HELD = (v: unknown) => typeof v === 'string' && v.includes('[held back]');
export const KA = loadJson('virtee-derived/known-answers.json');
export const SEVCTL = path.join(VECTORS, 'virtee-sevctl/tests/data');
export const SEVCTL_OVMF = path.join(SEVCTL, 'OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9');
export const SNP_MEASURE = path.join(VECTORS, 'sev-snp-measure');
export const vec = (p: string) => path.join(VECTORS, p);
export const read = (p: string) => fs.readFileSync(p.startsWith('/') ? p : vec(p));
export const hex = (s: string) => Buffer.from(s, 'hex');
export const b64 = (s: string) => Buffer.from(s, 'base64');

/** A fresh platform PDH key pair and its (unsigned) PDH certificate. */
export function makePdh(): { cert: Buffer; privateKey: crypto.KeyObject; pem: string } {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const cert = encodeSevCert(createSevCert({ usage: Usage.PDH, algo: Algo.ECDH_SHA256, publicKey, apiMajor: 1, apiMinor: 55 }));
  return { cert, privateKey, pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}
