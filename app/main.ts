// The `pam` command as shipped: the CLI (cli/) with the verbs that start the proxy wired in
// from the composition root, so cli/ never imports app/.
import { runCli } from '../cli/main.js';

await runCli(process.argv.slice(2), {
  async serve(configFile) {
    const { serve } = await import('./serve.js');
    return serve(configFile);
  },
  async rotators() {
    const { rotators } = await import('./rotators.js');
    return rotators();
  },
});
