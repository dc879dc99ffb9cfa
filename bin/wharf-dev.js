#!/usr/bin/env node
// Development entry: runs src/ through tsx, without a build. Production runs bin/wharf.js (dist/).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
await main(process.argv.slice(2));
