#!/usr/bin/env node
// The `convllava` command: registers tsx (TypeScript at run time, no build step) and runs cli/main.ts.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
