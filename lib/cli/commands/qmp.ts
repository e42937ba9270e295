import type { Command } from 'commander';
import { action, printJson, parseIntArg } from '../run.js';
import { UsageError } from '../../errors.js';

/** Registers the `qmp` commands on the sevkit program. */
export function register(program: Command): void {
  program
    .command('qmp')
    .description('send one QMP command to a QEMU monitor socket and print its return value as JSON')
    .argument('<socket>', 'path of the QMP UNIX socket (-qmp unix:PATH,server,nowait)')
    .argument('<command>', 'QMP command, e.g. query-status, query-sev, query-sev-launch-measure, cont')
    .argument('[args_json]', 'arguments as a JSON object, e.g. \'{"packet-header":"...","secret":"..."}\'')
    .option('--timeout <ms>', 'per-command deadline in milliseconds', (v) => parseIntArg(v, '--timeout'), 30_000)
    .action(
      action(async (socket: string, command: string, argsJson: string | undefined, opts: { timeout: number }) => {
        let args: Record<string, unknown> | undefined;
        if (argsJson !== undefined) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(argsJson);
          } catch (e) {
            throw new UsageError(`ARGS_JSON is not valid JSON: ${(e as Error).message}`);
          }
          if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError('ARGS_JSON must be a JSON object');
          args = parsed as Record<string, unknown>;
        }
        const { QmpClient, QmpDisconnectedError } = await import('../../qmp/index.js');
        const client = await QmpClient.connect(socket, { connectTimeoutMs: opts.timeout, commandTimeoutMs: opts.timeout });
        try {
          let ret: unknown;
          try {
            ret = await client.execute(command, args);
          } catch (e) {
            // QEMU may close the socket as soon as it has answered `quit`.
            if (command === 'quit' && e instanceof QmpDisconnectedError) ret = {};
            else throw e;
          }
          printJson(ret);
        } finally {
          client.close();
        }
      }),
    );
}
