/** Errors of the firmware area (OVMF images and the GUIDs that name their parts). */
import { SevkitError } from '../errors.js';

/** An OVMF image lacks its footer table or a required entry, or an entry is malformed. */
export class OvmfError extends SevkitError {
  constructor(message: string, code = 'ERR_OVMF') {
    super(code, message);
  }
}

/** A textual GUID that is not `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
export class GuidError extends SevkitError {
  constructor(message: string) {
    super('ERR_GUID', message);
  }
}
