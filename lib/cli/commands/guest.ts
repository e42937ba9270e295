/**
 * `sevkit guest agent`: the SEV-SNP guest agent (runs inside the VM): attested
 * TLS on HOST:PORT, fresh reports, and secrets only from the owner's signed
 * envelope. Thin over lib/guest-agent; runs until SIGINT/SIGTERM.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { action } from '../run.js';

/** HOST:PORT ([v6]:PORT) → parts; a usage error otherwise. */
export function listenArg(v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(v.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`--listen must be HOST:PORT (e.g. 0.0.0.0:8443), got '${v}'`);
  return { host: m[1] ?? m[2]!, port };
}

interface AgentOpts {
  listen: { host: string; port: number };
  owner: string;
  secretsDir: string;
  device?: string;
  tsmRoot?: string;
  quiet?: boolean;
  exitOnStdinEof?: boolean;
}

async function agentCmd(o: AgentOpts): Promise<number> {
  const { GuestAgent } = await import('../../guest-agent/agent.js');
  const say = (line: string) => {
    if (!o.quiet) process.stderr.write(`sevkit guest agent: ${line}\n`);
  };
  const agent = await GuestAgent.start({
    owner: o.owner,
    secretsDir: o.secretsDir,
    host: o.listen.host,
    port: o.listen.port,
    ...(o.device ? { device: o.device } : {}),
    ...(o.tsmRoot ? { tsmRoot: o.tsmRoot } : {}),
    onEvent: (e) => say(`${e.status !== undefined ? `${e.status} ` : ''}${e.detail}`),
  });
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      say(`${sig}: stopping`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    if (o.exitOnStdinEof) {
      // A supervising parent (the simulator CRN's `--snp-agent sim`) holds the pipe: its end, however it went, is ours.
      process.stdin.on('error', () => stop('stdin error'));
      process.stdin.once('end', () => stop('stdin closed'));
      process.stdin.resume();
    }
  });
  await agent.close();
  return 0;
}

/** Registers `guest agent`. */
export function register(program: Command): void {
  const g = program.command('guest').description('Inside an SEV-SNP guest: the attestation agent');
  g.command('agent')
    .description(
      "Serve attested TLS (a report binding a fresh P-384 key, aleph's certificate extension), fresh reports at /.well-known/attestation, and /confidential/inject-secret for envelopes the owner signed for this key",
    )
    .option('--listen <HOST:PORT>', 'listen address', listenArg, { host: '0.0.0.0', port: 8443 })
    .requiredOption('--owner <ADDRESS>', "the VM owner's Ethereum address (0x + 40 hex digits); only its signed envelopes are accepted")
    .requiredOption('--secrets-dir <DIR>', 'where each secret is written (0600; the directory is created 0700)')
    .option('--device <PATH>', 'SNP guest device (default /dev/sev-guest)')
    .option('--tsm-root <DIR>', 'configfs-tsm report directory (default /sys/kernel/config/tsm/report when present)')
    .option('--quiet', 'no event lines on stderr')
    .option('--exit-on-stdin-eof', 'also stop when stdin ends (run under a supervisor that holds a pipe to it)')
    .action(action(agentCmd));
}
