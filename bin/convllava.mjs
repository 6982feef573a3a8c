#!/usr/bin/env node
// The `convllava` command. Installed from npm it runs the compiled dist/cli/main.js; in a checkout
// (cli/main.ts beside it) it runs the sources through tsx, a dev dependency, so no build is needed.
import { existsSync } from 'node:fs';

const checkout = existsSync(new URL('../cli/main.ts', import.meta.url));
let main;
if (checkout) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../cli/main.ts'));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exitCode = await main(process.argv.slice(2));
