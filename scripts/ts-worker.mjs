// Bootstrap for worker threads of the TypeScript scripts: workers do not
// inherit the tsx loader from `node --import tsx`, so register it here and
// then load the script named in workerData.__script.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.__script);
