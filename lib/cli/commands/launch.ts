import type { Command } from 'commander';

/** Registers the `launch` commands on the sevkit program. */
export function register(program: Command): void {
  void program;
}
