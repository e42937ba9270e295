/**
 * The built-in AMD roots for SNP: ARK, ASK (VCEK chain) and ASVK (VLEK chain)
 * for Milan, Genoa (also Siena and Bergamo) and Turin, from AMD's KDS
 * cert_chain bundles (roots-data.ts). Each certificate's SHA-256 is checked at
 * load against the pins below, taken from the reference spec (§2.1), so a
 * corrupted or edited data file can never become a trust anchor.
 */
import { createHash } from 'node:crypto';
import { SnpCertError } from './errors.js';
import type { SnpProduct } from './product.js';
import { SNP_ROOTS_DER } from './roots-data.js';
import { parseAmdCert } from './x509.js';
import type { AmdCert } from './x509.js';

/** SHA-256 of the DER of each built-in root (hex). */
export const ROOT_SHA256: Record<SnpProduct, { ark: string; ask: string; asvk: string }> = {
  Milan: {
    ark: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd',
    ask: '67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b',
    asvk: 'c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5',
  },
  Genoa: {
    ark: '4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1',
    ask: '5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521',
    asvk: '197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372',
  },
  Turin: {
    ark: '1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a',
    ask: '5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185',
    asvk: '104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c',
  },
};

/** A product's three roots, parsed. */
export interface ProductRoots {
  product: SnpProduct;
  ark: AmdCert;
  ask: AmdCert;
  asvk: AmdCert;
}

const cache = new Map<SnpProduct, ProductRoots>();

/** SHA-256 of bytes, hex. */
export function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * The built-in roots of a product, parsed once per process. Throws SnpCertError
 * (ERR_SNP_BUILTIN) when the embedded data does not hash to its pin.
 */
export function builtinRoots(product: SnpProduct): ProductRoots {
  const hit = cache.get(product);
  if (hit) return hit;
  const data = SNP_ROOTS_DER[product];
  if (!data) throw new SnpCertError(`${product} roots`, 'no built-in roots for this product', { code: 'ERR_SNP_BUILTIN' });
  const load = (which: 'ark' | 'ask' | 'asvk', label: string): AmdCert => {
    const der = Buffer.from(data[which], 'base64');
    if (sha256Hex(der) !== ROOT_SHA256[product][which])
      throw new SnpCertError(label, 'built-in certificate data is corrupted (sha256 mismatch)', { code: 'ERR_SNP_BUILTIN' });
    return parseAmdCert(der, label);
  };
  const r: ProductRoots = { product, ark: load('ark', `ARK-${product}`), ask: load('ask', `SEV-${product}`), asvk: load('asvk', `SEV-VLEK-${product}`) };
  cache.set(product, r);
  return r;
}

/** Forget the parsed built-in roots, so the next use parses and sha-checks them again (cold benchmarks). */
export function clearBuiltinRootsCache(): void {
  cache.clear();
}

/**
 * The product an AMD issuer or subject CN names: `ARK-<P>`, `SEV-<P>` (ASK) or
 * `SEV-VLEK-<P>` (ASVK); undefined for anything else.
 */
export function productOfIssuer(cn: string): SnpProduct | undefined {
  const m = /^(?:ARK-|SEV-VLEK-|SEV-)(Milan|Genoa|Turin)$/.exec(cn);
  return m ? (m[1] as SnpProduct) : undefined;
}
