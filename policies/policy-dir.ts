import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { PolicyFileError, parseRoles, type Role } from './roles.js';
import { combineRuleFiles, parseRuleFile, policyFiles, type RuleSet } from './rules.js';

/**
 * Rules and roles of a policies_dir with each file read and parsed once (loadRules and
 * loadRoles each parse every file): for one-shot commands (`pam policy test`, `pam config
 * check`), whose start-up is mostly YAML. Same checks and errors as the two loaders.
 */
export function loadPolicyDir(dir: string): { rules: RuleSet; roles: Role[] } {
  const roles: Role[] = [];
  const seen = new Set<string>();
  const ruleFiles = policyFiles(dir).map((file) => {
    let doc: unknown;
    try {
      doc = YAML.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new PolicyFileError(file, '(yaml)', (e as Error).message.split('\n')[0]!);
    }
    for (const role of parseRoles(doc, file)) {
      if (seen.has(role.name)) throw new PolicyFileError(file, 'roles', `role "${role.name}" is defined twice`);
      seen.add(role.name);
      roles.push(role);
    }
    return parseRuleFile(doc, file);
  });
  return { rules: combineRuleFiles(ruleFiles), roles };
}
