#!/usr/bin/env node
/**
 * `sevkit`'s entry point. The plain `show <what> [--json]` read-outs (what a host
 * polls) run without loading commander or the other command modules; everything
 * else goes through the commander program in ./program.ts.
 */
import { quickShow } from './commands/show.js';

const quick = quickShow(process.argv.slice(2));
if (quick) {
  const { reportError, setProgramName } = await import('./output.js');
  setProgramName('sevkit');
  try {
    await (await import('./commands/show.js')).show(quick.what, { json: quick.json });
  } catch (e) {
    process.exitCode = reportError(e);
  }
} else {
  await (await import('./program.js')).main();
}
