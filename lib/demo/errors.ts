/** The demo's own error (its home, so demo.ts and snp.ts share it without importing each other). */
import { SevkitError } from '../errors.js';

/** A demo step did not turn out as the protocol requires (one line, no stack, not an internal error). */
export class DemoError extends SevkitError {
  constructor(message: string) {
    super('ERR_DEMO', message);
  }
}
