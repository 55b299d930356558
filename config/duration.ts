const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30m", "1h", "1h30m", "90s", "2d" → milliseconds. Throws on anything else. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(t)) throw new Error(`"${text}" is not a duration like 30m, 1h or 1h30m`);
  let total = 0;
  for (const m of t.matchAll(/(\d+)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNIT[m[2]!]!;
  if (total <= 0) throw new Error(`"${text}" must be longer than zero`);
  return total;
}

export function formatDuration(ms: number): string {
  const parts: string[] = [];
  for (const [u, n] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= n) {
      parts.push(`${Math.floor(ms / n)}${u}`);
      ms %= n;
    }
  }
  return parts.join('') || '0s';
}
