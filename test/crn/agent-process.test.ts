/**
 * agentProcessLocator's contract with its child, with stand-in agents (small node scripts) so each
 * misbehaviour is exact: the port comes from the listening line; the child gets the VM's guest name,
 * owner and secrets dir; one that exits or never listens fails the start with its own last line and
 * is gone afterwards (SIGKILL when it ignores SIGTERM); an adopted VM's agent takes the recorded owner
 * and the earlier process is stopped first; a run dir that is gone is never recreated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tmpRunRoot } from '../vm/helpers.js';
import { agentProcessLocator, AgentProcessError, AGENT_RECORD_FILE } from '../../lib/crn/agent-process.js';
import { procIdentity } from '../../lib/vm/proc.js';

const OWNER = '0x' + 'ab'.repeat(20);
const REF = 'c'.repeat(64);

/** A stand-in agent: listens on 127.0.0.1:0 and prints the real agent's line, plus what it was given. */
const LISTENS = `
const net = require('node:net');
const s = net.createServer((c) => c.end('agent:' + process.env.SEVKIT_SIM_GUEST));
s.listen(0, '127.0.0.1', () => {
  process.stderr.write('sevkit guest agent: argv ' + JSON.stringify(process.argv.slice(2)) + '\\n');
  process.stderr.write('sevkit guest agent: listening on 127.0.0.1:' + s.address().port + ', TLS key sha384 00…, owner x\\n');
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
`;
const FAILS = `process.stderr.write('sevkit: the boot attestation report: /dev/sev-guest: ENOENT\\n'); process.exit(1);`;
const SILENT = `process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); process.stderr.write('starting\\n');`;

function ask(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString()));
    c.on('close', () => resolve(got));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(`error:${e.code}`));
  });
}

const gone = (pid: number) => procIdentity(pid) === undefined;

describe('agentProcessLocator', { timeout: 60_000 }, () => {
  let root: string;
  const script = (name: string, text: string) => {
    const f = path.join(root, `${name}.cjs`);
    fs.writeFileSync(f, text);
    return f;
  };
  const runDir = (name: string) => {
    const d = path.join(root, name);
    fs.mkdirSync(d, { mode: 0o700 });
    fs.writeFileSync(path.join(d, 'vm.json'), '{}'); // the VM's record: its run dir is live
    return d;
  };

  beforeAll(() => {
    root = tmpRunRoot('agentproc');
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('starts the agent in the VM’s guest with its owner and secrets dir, reads the port, stops and reaps it on close', async () => {
    const lines: string[] = [];
    const locate = agentProcessLocator({ command: [process.execPath, script('listens', LISTENS)], env: process.env, onLine: (_r, l) => lines.push(l) });
    const dir = runDir('vm1');
    const ep = await locate({ ref: REF, pid: 1234, runDir: dir, adopted: false, owner: OWNER });
    expect(ep.host).toBe('127.0.0.1');
    expect(await ask(ep.port)).toBe(`agent:${REF}`);
    const argv = JSON.parse(/^sevkit guest agent: argv (.*)$/m.exec(lines.join('\n'))![1]!) as string[];
    expect(argv).toEqual(['guest', 'agent', '--listen', '127.0.0.1:0', '--owner', OWNER, '--secrets-dir', path.join(dir, 'secrets'), '--exit-on-stdin-eof']);
    expect(fs.statSync(path.join(dir, 'secrets')).mode & 0o777).toBe(0o700);
    const rec = JSON.parse(fs.readFileSync(path.join(dir, AGENT_RECORD_FILE), 'utf8')) as { owner: string; pid: number; startTime: string };
    expect(rec.owner).toBe(OWNER);
    expect(procIdentity(rec.pid)?.startTime).toBe(rec.startTime);
    expect(fs.statSync(path.join(dir, AGENT_RECORD_FILE)).mode & 0o777).toBe(0o600);
    await ep.close!();
    expect(gone(rec.pid)).toBe(true);
    expect(await ask(ep.port)).toBe('error:ECONNREFUSED');
    // The VM still runs (its record is there): its run dir and the owner stay for the next agent.
    expect(fs.existsSync(path.join(dir, AGENT_RECORD_FILE))).toBe(true);
  });

  it('an adopted VM’s agent takes the recorded owner; the earlier agent, if still running, is stopped first', async () => {
    const locate = agentProcessLocator({ command: [process.execPath, script('listens2', LISTENS)], env: process.env });
    const dir = runDir('vm2');
    const first = await locate({ ref: REF, pid: 1, runDir: dir, adopted: false, owner: OWNER });
    const rec1 = JSON.parse(fs.readFileSync(path.join(dir, AGENT_RECORD_FILE), 'utf8')) as { pid: number };
    // A new CRN (no owner given) finds the record.
    const second = await locate({ ref: REF, pid: 1, runDir: dir, adopted: true });
    expect(gone(rec1.pid)).toBe(true);
    const rec2 = JSON.parse(fs.readFileSync(path.join(dir, AGENT_RECORD_FILE), 'utf8')) as { owner: string; pid: number };
    expect(rec2.owner).toBe(OWNER);
    expect(rec2.pid).not.toBe(rec1.pid);
    await Promise.all([first.close!(), second.close!()]);
    expect(gone(rec2.pid)).toBe(true);
    fs.rmSync(path.join(dir, AGENT_RECORD_FILE));
    await expect(locate({ ref: REF, pid: 1, runDir: dir, adopted: true })).rejects.toThrow(/no owner recorded/);
  });

  it('an agent that exits fails the start with its own line; one that never listens and ignores SIGTERM is killed at the deadline', async () => {
    const fails = agentProcessLocator({ command: [process.execPath, script('fails', FAILS)], env: process.env });
    const err = await fails({ ref: REF, pid: 1, runDir: runDir('vm3'), adopted: false, owner: OWNER }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentProcessError);
    expect((err as Error).message).toBe(`VM ${REF}: the guest agent exited with code 1: sevkit: the boot attestation report: /dev/sev-guest: ENOENT`);

    const dir = runDir('vm4');
    const silent = agentProcessLocator({ command: [process.execPath, script('silent', SILENT)], env: process.env, startTimeoutMs: 1500, stopTimeoutMs: 500 });
    const t = await silent({ ref: REF, pid: 1, runDir: dir, adopted: false, owner: OWNER }).catch((e: unknown) => e);
    expect((t as Error).message).toBe(`VM ${REF}: the guest agent did not listen within 1500 ms: starting`);
    // The record names the process only once it listened; nothing running names the script.
    expect(JSON.parse(fs.readFileSync(path.join(dir, AGENT_RECORD_FILE), 'utf8'))).toEqual({ version: 1, owner: OWNER });
    const left = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && safeCmdline(p).includes(path.join(root, 'silent.cjs')));
    expect(left).toEqual([]);
  });

  it('refuses a VM without a run dir, a run dir that is gone (never recreated), and an owner that is not an Ethereum address', async () => {
    const locate = agentProcessLocator({ command: [process.execPath, script('listens3', LISTENS)], env: process.env });
    await expect(locate({ ref: REF, pid: 1, runDir: undefined, adopted: false, owner: OWNER })).rejects.toThrow(/no run dir/);
    const goneDir = path.join(root, 'vm-gone');
    await expect(locate({ ref: REF, pid: 1, runDir: goneDir, adopted: false, owner: OWNER })).rejects.toThrow(AgentProcessError);
    expect(fs.existsSync(goneDir)).toBe(false);
    await expect(locate({ ref: REF, pid: 1, runDir: runDir('vm5'), adopted: false, owner: 'So1ana' })).rejects.toThrow(/is not an Ethereum address/);
    expect(() => agentProcessLocator({ command: [], env: {} })).toThrow(AgentProcessError);
  });
});

function safeCmdline(pid: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}
