#!/usr/bin/env node
// Entry point of the `pam` command: runs the TypeScript sources through tsx, so a checkout
// works right after `npm ci` without a build step.
import { register } from 'tsx/esm/api';
register();
await import('../app/main.ts');
