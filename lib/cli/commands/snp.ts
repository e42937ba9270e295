import type { Command } from 'commander';
import { registerGuest } from './snp-guest.js';

/** `sevkit snp ...`: SEV-SNP attestation (each helper registers its subcommands here). */
export function register(program: Command): void {
  const snp = program.command('snp').description('SEV-SNP attestation: reports, verification, AMD KDS');
  registerGuest(snp);
}
