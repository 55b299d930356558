import type { AuditVerdict, RecordingVerdict } from '../recorder/evidence/evidence-verify.js';

export type AuditVerifyReply = AuditVerdict & { why?: string; where?: string };
export type RecordingVerifyReply = RecordingVerdict;

/** `pam audit verify` for a human: every problem with where it is, or what vouches for the log. */
export function auditVerifyText(r: AuditVerifyReply): string {
  const out: string[] = [];
  if (r.ok) {
    out.push(`audit chain intact (${r.entries} entries, ${r.recordings} sealed recordings checked)`);
    if (r.signed) out.push(`signed: checkpoint of ${r.signed.size} entries at ${r.signed.time}, key ${r.signed.key_id}, held by ${r.signed.by.join(', ')}`);
    if (r.signed && r.unsigned > 0) out.push(`${r.unsigned} newer entries not signed yet`);
  } else {
    out.push(`audit log BROKEN (${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}, ${r.entries} entries):`);
    for (const p of r.problems) out.push(`  - ${p.what}${p.where ? ` [${p.where}]` : ''}`);
    if (r.signed) out.push(`the first ${r.signed.size} entries match the checkpoint signed at ${r.signed.time}`);
  }
  if (r.unsignedWarning) out.push(`warning: ${r.unsignedWarning}`);
  return out.join('\n') + '\n';
}

export function recordingVerifyText(r: RecordingVerifyReply): string {
  if (r.ok === null) return `not sealed yet (${r.why ?? r.status}); sha256 now ${r.actual ?? '(no file)'}\n`;
  if (r.ok === false) return `TAMPERED: ${r.why}\n`;
  const signed = r.checkpoint ? `; checkpoint of ${r.checkpoint.size} entries signed at ${r.checkpoint.time} by key ${r.checkpoint.key_id} (${r.checkpoint.by})` : '; the log is not signed (no evidence section)';
  return `intact (sha256 ${r.actual}; seal at audit entry ${r.seal_entry}${signed})\n`;
}
