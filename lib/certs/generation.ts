/** AMD EPYC generations that have SEV CA roots, and how to tell a chain's generation. */
import { CertificateError } from './errors.js';

/** The EPYC generations whose AMD roots are built in, oldest first. */
export const GENERATIONS = ['naples', 'rome', 'milan', 'genoa', 'turin'] as const;
/** An EPYC generation name ('milan'). */
export type Generation = (typeof GENERATIONS)[number];

/** Accepts generation names case-insensitively; Bergamo and Siena share Genoa's roots. */
export function parseGeneration(s: string): Generation {
  const v = s.trim().toLowerCase();
  if (v === 'bergamo' || v === 'siena') return 'genoa';
  if ((GENERATIONS as readonly string[]).includes(v)) return v as Generation;
  throw new CertificateError('ERR_CERT_GENERATION', `unknown processor generation '${s}' (expected one of ${GENERATIONS.join(', ')}, bergamo, siena)`, {
    field: 'generation',
  });
}
