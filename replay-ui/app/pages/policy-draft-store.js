// Unsaved policy drafts, kept in this browser per user and file, so a draft survives a reload,
// a sign-out or an expired session. Removed when the draft is published or discarded.

const key = (me, name) => `pam.policy-draft:${me.subject ?? me.user}:${name}`;

/** { content, baseSha256, baseContent, savedAt } or undefined. */
export function loadDraft(me, name) {
  try {
    const d = JSON.parse(localStorage.getItem(key(me, name)) ?? 'null');
    return d && typeof d.content === 'string' && typeof d.baseContent === 'string' ? d : undefined;
  } catch {
    return undefined;
  }
}

export function saveDraft(me, name, draft) {
  try {
    localStorage.setItem(key(me, name), JSON.stringify({ ...draft, savedAt: new Date().toISOString() }));
  } catch { /* storage full or refused: the unsaved-changes guard still warns */ }
}

export function dropDraft(me, name) {
  try { localStorage.removeItem(key(me, name)); } catch { /* nothing kept */ }
}
