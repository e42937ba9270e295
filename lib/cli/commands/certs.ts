import type { Command } from 'commander';

/** Registers the `certs` commands on the sevkit program. */
export function register(program: Command): void {
  void program;
}
