/** The simulator's TEST CA chain (ASK‖ARK), as a verifier reads it from the simulator's state directory. */
import fs from 'node:fs';
import path from 'node:path';
import { decodeCaCert } from '../certs/ca-cert.js';
import type { CaChain } from '../certs/chain.js';
import { Usage } from '../certs/constants.js';

/**
 * The TEST ASK and ARK the simulator on `stateDir` signs with (its ask.cert and ark.cert), or undefined
 * when `stateDir` is not given or holds none. Throws CertificateError when they are there but malformed.
 * Trusting them proves nothing about AMD hardware: callers say so wherever they do.
 */
export function simulatorCaChain(stateDir: string | undefined): CaChain | undefined {
  if (!stateDir) return undefined;
  let ask: Buffer;
  let ark: Buffer;
  try {
    ask = fs.readFileSync(path.join(stateDir, 'ask.cert'));
    ark = fs.readFileSync(path.join(stateDir, 'ark.cert'));
  } catch {
    return undefined;
  }
  return {
    ask: decodeCaCert(ask, { name: path.join(stateDir, 'ask.cert'), usage: Usage.ASK }),
    ark: decodeCaCert(ark, { name: path.join(stateDir, 'ark.cert'), usage: Usage.ARK }),
  };
}
