/** Prints rows as an aligned text table, or JSON with --json. */
export function printRows(rows: Record<string, unknown>[], columns: string[], json: boolean, full: unknown = rows): void {
  if (json) {
    process.stdout.write(JSON.stringify(full, null, 2) + '\n');
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cell = (v: unknown) => (v === undefined || v === null ? '-' : String(v).replace(/\s+/g, ' '));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => Math.min(60, cell(r[c]).length))));
  const line = (vals: string[]) => vals.map((v, i) => (v.length > 60 ? v.slice(0, 59) + '…' : v).padEnd(widths[i]!)).join('  ').trimEnd();
  process.stdout.write(line(columns.map((c) => c.toUpperCase())) + '\n');
  for (const r of rows) process.stdout.write(line(columns.map((c) => cell(r[c]))) + '\n');
}

export const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z') : undefined);
