import type { Command } from 'commander';

/** Registers the `ok` commands on the sevkit program. */
export function register(program: Command): void {
  void program;
}
