/**
 * A QEMU without a VM: enough of the run-state machine and its events for a
 * supervisor to go through a whole launch (prelaunch → running → shutdown)
 * on machines without a real QEMU. Nothing executes guest code here.
 */
import { QmpReply, type QmpServer } from './qmp-server.js';
import { qapiArgs } from './guest.js';

export type RunState = 'prelaunch' | 'running' | 'paused' | 'shutdown';

export class VmlessMachine {
  status: RunState;

  constructor(
    startPaused: boolean,
    private readonly server: () => QmpServer | undefined,
    private readonly exit: (code: number) => void,
    private readonly name: string | undefined,
  ) {
    this.status = startPaused ? 'prelaunch' : 'running';
  }

  private event(name: string, data?: Record<string, unknown>): void {
    this.server()?.broadcast(name, data);
  }

  async handle(command: string, args: Record<string, unknown>): Promise<unknown> {
    // None of these commands has arguments: QEMU's marshaller refuses any (visit_check_struct).
    const noArgs = ['query-status', 'cont', 'stop', 'system_powerdown', 'quit', 'query-name', 'query-kvm'];
    if (noArgs.includes(command)) qapiArgs(args);
    switch (command) {
      case 'query-status':
        return { status: this.status, singlestep: false, running: this.status === 'running' };
      case 'cont':
        if (this.status !== 'running') {
          this.status = 'running';
          this.event('RESUME');
        }
        return {};
      case 'stop':
        if (this.status === 'running') {
          this.status = 'paused';
          this.event('STOP');
        }
        return {};
      case 'system_powerdown':
        this.event('POWERDOWN');
        if (this.status === 'running') {
          // The (absent) guest honours ACPI at once: it powers off and QEMU exits.
          setImmediate(() => {
            this.status = 'shutdown';
            this.event('SHUTDOWN', { guest: true, reason: 'guest-shutdown' });
            this.exit(0);
          });
        }
        return {};
      case 'quit':
        this.event('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
        setImmediate(() => this.exit(0));
        return {};
      case 'query-name':
        return this.name === undefined ? {} : { name: this.name };
      case 'query-kvm':
        return { enabled: false, present: false };
      default:
        throw new QmpReply('CommandNotFound', `The command ${command} has not been found`);
    }
  }
}
