/** AMD's SEV CA roots (ASK‖ARK) for each generation, embedded in the package. */
import crypto from 'node:crypto';
import { BUILTIN_CA } from './builtin-data.js';
import { GENERATIONS, type Generation } from './generation.js';
import { Usage } from './constants.js';
import { decodeCaCert } from './ca-cert.js';
import type { CaChain } from './chain.js';
import { CertificateError } from './errors.js';

const cache = new Map<Generation, { raw: { ask: Buffer; ark: Buffer }; chain: CaChain }>();

function load(gen: Generation) {
  let e = cache.get(gen);
  if (e) return e;
  const d = BUILTIN_CA[gen];
  if (!d) throw new CertificateError('ERR_CERT_GENERATION', `no built-in AMD roots for '${gen}'`, { field: 'generation' });
  const ask = Buffer.from(d.ask, 'base64');
  const ark = Buffer.from(d.ark, 'base64');
  const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
  if (sha(ask) !== d.askSha256 || sha(ark) !== d.arkSha256) {
    throw new CertificateError('ERR_CERT_BUILTIN', `built-in ${gen} ASK/ARK data is corrupted (sha256 mismatch)`, { cert: `${gen} ASK/ARK` });
  }
  e = {
    raw: { ask, ark },
    chain: {
      ask: decodeCaCert(ask, { name: `built-in ${gen} ASK`, usage: Usage.ASK }),
      ark: decodeCaCert(ark, { name: `built-in ${gen} ARK`, usage: Usage.ARK }),
    },
  };
  cache.set(gen, e);
  return e;
}

/** The decoded built-in CA chain of a generation. */
export function builtinCaChain(gen: Generation): CaChain {
  const c = load(gen).chain;
  return { ask: c.ask, ark: c.ark };
}

/** The raw built-in ASK‖ARK bytes of a generation (the `--ca` file format). */
export function builtinCaChainBytes(gen: Generation): Buffer {
  const r = load(gen).raw;
  return Buffer.concat([r.ask, r.ark]);
}

/** The generations with built-in ASK/ARK (GENERATIONS). */
export function builtinGenerations(): readonly Generation[] {
  return GENERATIONS;
}
