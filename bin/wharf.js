#!/usr/bin/env node
// Wharf ships as TypeScript run through tsx, so `npm ci` is the whole install: no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
await main(process.argv.slice(2));
