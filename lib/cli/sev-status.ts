#!/usr/bin/env node
/** `sev-status`: is this host ready for confidential VMs, and if not, why. */
import { setProgramName } from './run.js';

setProgramName('sev-status');
process.stderr.write('sev-status: not implemented yet\n');
process.exitCode = 1;
