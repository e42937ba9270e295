/**
 * The `sevkit snp` group: SEV-SNP commands. Each area registers its subcommands from its own file
 * (snp-launch.ts: digest, diagnose, id-block).
 */
import type { Command } from 'commander';
import { registerSnpLaunch } from './snp-launch.js';

/** Create `sevkit snp` and register its subcommands. */
export function register(program: Command): void {
  const snp = program.command('snp').description('AMD SEV-SNP: launch digests, ID blocks');
  registerSnpLaunch(snp);
}
