/**
 * Shared loaders for the SNP digest tests: the vectors vendored under test/fixtures/vectors (nothing outside the repository) and
 * the vectors' file conventions (FIXTURE:, EMPTY_FILE(/dev/null), null).
 */
import fs from 'node:fs';
import path from 'node:path';
import { VECTORS } from '../helpers/cli.js';
import type { KernelHashesInput } from '../../lib/launch/hashes.js';

export const SNP_LAUNCH = path.join(VECTORS, 'snp-launch');
export const SNP_MEASURE = path.join(VECTORS, 'sev-snp-measure');

/** Parse a vectors JSON file; redacted values ("[held back]" with a lost closing quote) are repaired first. */
export function loadVectors(p: string): any {
  return JSON.parse(fs.readFileSync(path.join(VECTORS, p), 'utf8').replace(/"\[held back\]\n/g, '"[held back]",\n'));
}

/** A vectors input file: null stays null, EMPTY_FILE(...) is empty, FIXTURE:x is in sev-snp-measure/, the rest under snp-launch/. */
export function inputFile(ref: string | null | undefined, dir = SNP_LAUNCH): Buffer | null {
  if (ref == null) return null;
  if (ref.startsWith('EMPTY_FILE')) return Buffer.alloc(0);
  if (ref.startsWith('FIXTURE:')) return fs.readFileSync(path.join(SNP_MEASURE, ref.slice('FIXTURE:'.length)));
  return fs.readFileSync(path.join(dir, ref));
}

/** The kernel-hashes input of a vector case (null when it has no kernel). */
export function kernelOf(c: { kernel?: string | null; initrd?: string | null; append?: string | null }): KernelHashesInput | null {
  const kernel = inputFile(c.kernel);
  if (!kernel) return null;
  return { kernel, initrd: inputFile(c.initrd), cmdline: c.append ?? null };
}

export const hex = (s: string) => Buffer.from(s, 'hex');
