/**
 * The simulator's way to reach SEV-SNP guest agents (`crn serve --snp-agent sim`): for each SNP VM,
 * the real guest agent (`sevkit guest agent`, the code an SNP guest runs) as a child process in that
 * VM's simulated guest — `SEVKIT_SIM_GUEST=<vm>` in its environment makes the simulated /dev/sev-guest
 * answer with that VM's own launch — listening on 127.0.0.1:0, its secrets in the VM's run dir.
 *
 * The child is this process's: it is stopped and reaped when the VM ends or is let go of, and it ends
 * by itself when this process is gone however it went (SIGKILL included: `--exit-on-stdin-eof`, its
 * stdin is a pipe from here), so no agent outlives the CRN that started it. A VM adopted by the next
 * CRN (`--keep-vms`, a crash) gets a fresh agent: its only state is a per-run TLS key and replay cache
 * (an envelope bound to the old key cannot be replayed to the new one); what it already wrote stays in
 * the VM's run dir, and the owner attests the new key. A handed-over agent whose VM then died with no
 * CRN running would have had no one left to stop it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SevkitError } from '../errors.js';
import { isEthAddress } from '../aleph/wallet.js';
import { writeFileDurableAsync } from '../util/fs.js';
import { isSameProcess, procIdentity } from '../vm/proc.js';
import { VM_RECORD_FILE } from '../vm/record.js';
import type { SnpAgentEndpoint, SnpAgentLocator, SnpAgentVm } from './launchers.js';

/** Options of agentProcessLocator. */
export interface AgentProcessOptions {
  /** The argv that runs sevkit, e.g. `[process.execPath, ...process.execArgv, process.argv[1]]`. */
  command: string[];
  /** The child's environment (the simulator's socket and shim); `SEVKIT_SIM_GUEST` is set per VM. */
  env: NodeJS.ProcessEnv;
  /** Deadline for the agent's listening line, ms (default 60 s: the boot report comes first). */
  startTimeoutMs?: number;
  /** SIGTERM → SIGKILL deadline when stopping an agent, ms (default 5 s). */
  stopTimeoutMs?: number;
  /** Each line the agent writes (events: names and statuses, never secret values). */
  onLine?: (ref: string, line: string) => void;
}

/** A guest agent process could not be started (no run dir, no owner, it exited or said nothing in time). */
export class AgentProcessError extends SevkitError {
  constructor(message: string) {
    super('ERR_CRN_AGENT_PROCESS', message);
  }
}

/** `agent.json` in the VM's run dir: whose envelopes the agent takes, and the process last started. */
interface AgentRecord {
  version: 1;
  owner: string;
  pid?: number;
  startTime?: string;
}

/** The agent's record in the VM's run dir (owner, pid + start time of the process last started). */
export const AGENT_RECORD_FILE = 'agent.json';
/** The simulated guest's secrets directory in the VM's run dir (0700; each secret 0600). */
export const AGENT_SECRETS_DIR = 'secrets';

async function readRecord(dir: string): Promise<AgentRecord | undefined> {
  try {
    const r = JSON.parse(await fs.promises.readFile(path.join(dir, AGENT_RECORD_FILE), 'utf8')) as Partial<AgentRecord>;
    if (r?.version !== 1 || typeof r.owner !== 'string' || !isEthAddress(r.owner)) return undefined;
    const proc = Number.isSafeInteger(r.pid) && (r.pid as number) > 1 && typeof r.startTime === 'string' && /^\d+$/.test(r.startTime);
    return { version: 1, owner: r.owner, ...(proc ? { pid: r.pid!, startTime: r.startTime! } : {}) };
  } catch {
    return undefined;
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGKILLs the recorded agent of an earlier process if it is still that very process, and waits (bounded) for it to go. */
async function stopStale(rec: AgentRecord | undefined, ms: number): Promise<void> {
  if (!rec?.pid || !rec.startTime || !isSameProcess(rec.pid, rec.startTime)) return;
  try {
    process.kill(-rec.pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  const end = Date.now() + ms;
  while (isSameProcess(rec.pid, rec.startTime) && Date.now() < end) await delay(50);
}

/** A locator that starts one `sevkit guest agent` per SNP VM, in its simulated guest (see the module comment). */
export function agentProcessLocator(o: AgentProcessOptions): SnpAgentLocator {
  if (!o.command.length) throw new AgentProcessError('agentProcessLocator needs the command that runs sevkit');
  return (vm) => startAgent(vm, o);
}

async function startAgent(vm: SnpAgentVm, o: AgentProcessOptions): Promise<SnpAgentEndpoint> {
  const { ref, runDir } = vm;
  if (!runDir) throw new AgentProcessError(`VM ${ref}: no run dir for its guest agent`);
  const earlier = await readRecord(runDir);
  const owner = vm.owner ?? earlier?.owner;
  if (!owner || !isEthAddress(owner))
    throw new AgentProcessError(
      `VM ${ref}: ${owner ? `owner ${owner.slice(0, 60)} is not an Ethereum address` : 'no owner recorded'} (the guest agent accepts envelopes of an Ethereum owner only)`,
    );
  await stopStale(earlier, o.stopTimeoutMs ?? 5_000);
  const secretsDir = path.join(runDir, AGENT_SECRETS_DIR);
  try {
    // Not recursive: a run dir removed with its VM must not come back.
    await fs.promises.mkdir(secretsDir, { mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') throw new AgentProcessError(`VM ${ref}: cannot make the guest's secrets dir ${secretsDir}: ${code ?? (e as Error).message}`);
  }
  // Off the event loop (fsync on the thread pool): a CRN serving many owners must not stall per VM start.
  const record = (r: AgentRecord) => writeFileDurableAsync(path.join(runDir, AGENT_RECORD_FILE), `${JSON.stringify(r)}\n`, 0o600);
  await record({ version: 1, owner });
  const args = [...o.command.slice(1), 'guest', 'agent', '--listen', '127.0.0.1:0', '--owner', owner, '--secrets-dir', secretsDir, '--exit-on-stdin-eof'];
  const child = spawn(o.command[0]!, args, {
    // The simulator's SIM_GUEST_ENV (lib/sim/snp/launch-link.ts), spelled here: importing it would pull the QEMU wrapper into sevkit/crn.
    env: { ...o.env, SEVKIT_SIM_GUEST: ref },
    stdio: ['pipe', 'ignore', 'pipe'],
    // Its own group, as QEMU: a terminal's Ctrl-C reaches only the CRN, which stops it.
    detached: true,
  });
  const agent = new AgentProcess(ref, child, o);
  try {
    const port = await agent.listening(o.startTimeoutMs ?? 60_000);
    const id = child.pid ? procIdentity(child.pid) : undefined;
    if (id) await record({ version: 1, owner, pid: id.pid, startTime: id.startTime });
    return { host: '127.0.0.1', port, close: () => agent.stop().then(() => tidy(runDir)) };
  } catch (e) {
    await agent.stop();
    await tidy(runDir);
    throw e;
  }
}

/**
 * Once the agent is gone: a run dir without the VM's record is one its VM's end removed while the agent
 * was starting (the agent makes its secrets dir again if it is missing): remove what came back.
 */
async function tidy(runDir: string): Promise<void> {
  const live = await fs.promises.stat(path.join(runDir, VM_RECORD_FILE)).then(
    () => true,
    () => false,
  );
  if (!live) await fs.promises.rm(runDir, { recursive: true, force: true });
}

/** One agent child: its listening line, its lines, and a bounded stop. */
class AgentProcess {
  readonly #exited: Promise<void>;
  #exitInfo: string | undefined;
  #lines: string[] = [];
  #stopping: Promise<void> | undefined;

  constructor(
    readonly ref: string,
    readonly child: ChildProcess,
    private readonly o: AgentProcessOptions,
  ) {
    // stdin stays open for the child's life: its end (this process gone) is the child's signal to stop.
    child.stdin!.on('error', () => undefined);
    child.stderr!.setEncoding('utf8');
    let partial = '';
    child.stderr!.on('data', (d: string) => {
      const parts = (partial + d).split('\n');
      partial = parts.pop() ?? '';
      if (partial.length > 4096) partial = partial.slice(-4096);
      for (const l of parts) this.#line(l);
    });
    child.stderr!.on('error', () => undefined);
    this.#exited = new Promise<void>((resolve) => {
      child.once('error', (e: NodeJS.ErrnoException) => {
        this.#exitInfo ??= `cannot run ${o.command[0]}: ${e.code ?? e.message}`;
        resolve();
      });
      // 'close', not 'exit': its last lines (e.g. "SIGTERM: stopping") are read by then.
      child.once('close', (code, signal) => {
        this.#exitInfo ??= signal ? `killed by ${signal}` : `exited with code ${code}`;
        resolve();
      });
    });
  }

  #line(l: string): void {
    this.#lines.push(l);
    if (this.#lines.length > 20) this.#lines.shift();
    try {
      this.o.onLine?.(this.ref, l);
    } catch {
      /* a failing log sink must not take the relay down */
    }
  }

  #tail(): string {
    const t = this.#lines
      .filter((l) => l.trim())
      .slice(-3)
      .join(' | ');
    return t ? `: ${t}` : '';
  }

  /** The port from the agent's `listening on HOST:PORT` line; rejects when it exits first or says nothing within `ms`. */
  listening(ms: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const onData = (): void => {
        for (const l of this.#lines) {
          const m = /^sevkit guest agent: listening on 127\.0\.0\.1:(\d{1,5}),/.exec(l);
          const port = m ? Number(m[1]) : 0;
          if (port >= 1 && port <= 65535) return done(() => resolve(port));
        }
      };
      const timer = setTimeout(
        () => done(() => reject(new AgentProcessError(`VM ${this.ref}: the guest agent did not listen within ${ms} ms${this.#tail()}`))),
        ms,
      );
      const done = (f: () => void): void => {
        clearTimeout(timer);
        this.child.stderr!.off('data', onData);
        f();
      };
      // Listeners run in order: the constructor's has split the chunk into #lines by then.
      this.child.stderr!.on('data', onData);
      void this.#exited.then(() => done(() => reject(new AgentProcessError(`VM ${this.ref}: the guest agent ${this.#exitInfo}${this.#tail()}`))));
    });
  }

  /** SIGTERM to its group, SIGKILL after the deadline; resolves once it is reaped (or could not be, bounded). */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const pid = this.child.pid;
      if (pid && this.#exitInfo === undefined) {
        const signal = (s: NodeJS.Signals) => {
          try {
            process.kill(-pid, s);
          } catch {
            /* group gone */
          }
        };
        signal('SIGTERM');
        const ms = this.o.stopTimeoutMs ?? 5_000;
        const t = delay(ms).then(() => 'late' as const);
        if ((await Promise.race([this.#exited.then(() => 'gone' as const), t])) === 'late') {
          signal('SIGKILL');
          await Promise.race([this.#exited, delay(ms)]);
        }
      }
      this.child.stdin!.destroy();
    })();
    return this.#stopping;
  }
}
