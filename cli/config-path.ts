import { existsSync } from 'node:fs';

/** --config, else PAM_CONFIG, else ./pam.yaml, else the shipped example (what `npm start` runs). */
export function configPath(flag: string | undefined, env = process.env): string {
  if (flag) return flag;
  if (env.PAM_CONFIG) return env.PAM_CONFIG;
  if (existsSync('pam.yaml')) return 'pam.yaml';
  // From cli/ in the sources, or dist/cli/ in a build: the shipped example sits at the package root.
  const near = new URL('../examples/pam.yaml', import.meta.url).pathname;
  return existsSync(near) ? near : new URL('../../examples/pam.yaml', import.meta.url).pathname;
}
