/**
 * The dependency rule (docs/ARCHITECTURE.md, "Layers"):
 *   app/ → proxy/, replay-ui/server/, cli/ (adapters) → access/, policies/, recorder/ (core) → config/
 * An import may only point down this list; adapters do not import each other; nothing is cyclic.
 * `npm run lint:deps` checks it; test/unit/dependency-rule.test.ts proves it fails on a break.
 */
const CORE = '^(access|policies|recorder)/';
const ADAPTERS = '^(proxy|replay-ui|cli)/';
module.exports = {
  forbidden: [
    { name: 'config-is-the-bottom', severity: 'error', comment: 'config/ imports no other layer',
      from: { path: '^config/' }, to: { path: '^(app|proxy|replay-ui|cli|access|policies|recorder)/' } },
    { name: 'core-imports-no-adapter', severity: 'error', comment: 'access/, policies/, recorder/ never import an adapter or the composition root',
      from: { path: CORE }, to: { path: '^(app|proxy|replay-ui|cli)/' } },
    { name: 'nothing-imports-the-app', severity: 'error', comment: 'only bin/, test/ and bench/ import app/ (the composition root)',
      from: { path: '^(proxy|replay-ui|cli|access|policies|recorder|config)/' }, to: { path: '^app/' } },
    { name: 'brokers-import-no-other-adapter', severity: 'error', comment: 'proxy/ does not import the UI or the CLI',
      from: { path: '^proxy/' }, to: { path: '^(replay-ui|cli)/' } },
    { name: 'ui-imports-no-other-adapter', severity: 'error', comment: 'replay-ui/ does not import the brokers or the CLI',
      from: { path: '^replay-ui/' }, to: { path: '^(proxy|cli)/' } },
    { name: 'cli-imports-no-other-adapter', severity: 'error', comment: 'cli/ does not import the brokers or the UI',
      from: { path: '^cli/' }, to: { path: '^(proxy|replay-ui)/' } },
    { name: 'policies-import-no-access', severity: 'error', comment: 'policies/ is pure: it does not import access/ or recorder/',
      from: { path: '^policies/' }, to: { path: '^(access|recorder)/' } },
    { name: 'recorder-imports-no-access', severity: 'error', comment: 'recorder/ is a sink: it does not import access/ or policies/',
      from: { path: '^recorder/' }, to: { path: '^(access|policies)/' } },
    { name: 'no-circular', severity: 'error', comment: 'no import cycles', from: {}, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|test|bench|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
