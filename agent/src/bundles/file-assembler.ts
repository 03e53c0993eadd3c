/**
 * Directory creation for the bundle cache (files themselves are built in
 * part-files.ts; small files go through the one atomic write in
 * common/src/secure-fs.ts).
 */
import { chmod, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

const DIR_MODE = 0o755;

/** mkdir -p with mode 0755 on exactly the directories created (mkdir's mode is filtered by umask). */
export async function mkdirExact(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  for (let d = dir; d.length >= first.length; d = dirname(d)) await chmod(d, DIR_MODE);
}
