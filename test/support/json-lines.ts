/** Parses `--json` output: one JSON object per line (docs/json.md, "Conventions"). */
export function jsonLines<T = Record<string, unknown>>(stdout: string): T[] {
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as T);
}
