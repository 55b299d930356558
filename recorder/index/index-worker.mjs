// The index worker's entry: the sources are TypeScript run through tsx (as bin/pam.js runs
// them), and a worker thread does not inherit the main thread's loader.
import { register } from 'tsx/esm/api';
register();
await import('./index-worker.ts');
