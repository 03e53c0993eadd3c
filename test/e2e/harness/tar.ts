/**
 * A minimal, deterministic ustar writer.
 *
 * Test images must be built by the tests themselves (no registry, no docker on the machine),
 * and their digests should be stable from run to run so failures are reproducible: every
 * entry gets a fixed mtime, uid/gid 0 and no user names. Only what image layers and image
 * archives need is supported: regular files, directories and symlinks.
 */

/** One entry of a tar archive. Paths are relative ("etc/app.conf"); directories may end in "/". */
export interface TarEntry {
  path: string;
  type?: 'file' | 'dir' | 'symlink';
  /** File content (files only). */
  content?: string | Buffer;
  /** Permission bits; default 0644 for files, 0755 for directories, 0777 for symlinks. */
  mode?: number;
  /** Symlink target (symlinks only). */
  target?: string;
  /** Seconds since the epoch; default 0 for reproducible digests. */
  mtime?: number;
}

const BLOCK = 512;

function octal(n: number, width: number): string {
  // width-1 octal digits followed by NUL, as GNU tar and containerd expect.
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** Splits a long path into ustar's prefix (≤155) and name (≤100) fields at a slash. */
function splitPath(p: string): { name: string; prefix: string } {
  if (Buffer.byteLength(p) <= 100) return { name: p, prefix: '' };
  for (let i = p.length - 1; i > 0; i--) {
    if (p[i] !== '/') continue;
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name) return { name, prefix };
  }
  throw new Error(`tar: path too long for ustar: ${p}`);
}

function header(e: Required<Pick<TarEntry, 'path' | 'type' | 'mode' | 'mtime'>> & { size: number; target: string }): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  const { name, prefix } = splitPath(e.path);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(e.size, 12), 124, 'ascii');
  h.write(octal(e.mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum field counts as spaces while summing
  h.write(e.type === 'dir' ? '5' : e.type === 'symlink' ? '2' : '0', 156, 'ascii');
  h.write(e.target, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/**
 * Builds a tar archive from `entries`, in the given order, adding entries for parent
 * directories that were not listed (image layers without them unpack with wrong modes).
 */
export function buildTar(entries: readonly TarEntry[]): Buffer {
  const out: Buffer[] = [];
  const seenDirs = new Set<string>();
  const addDir = (dir: string, mode = 0o755, mtime = 0): void => {
    if (!dir || seenDirs.has(dir)) return;
    const parent = dir.includes('/') ? dir.slice(0, dir.lastIndexOf('/')) : '';
    addDir(parent);
    seenDirs.add(dir);
    out.push(header({ path: `${dir}/`, type: 'dir', mode, mtime, size: 0, target: '' }));
  };
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '').replace(/\/+$/, '');
    if (!path || path.split('/').includes('..')) throw new Error(`tar: bad path ${e.path}`);
    const type = e.type ?? (e.path.endsWith('/') ? 'dir' : 'file');
    const mtime = e.mtime ?? 0;
    if (type === 'dir') {
      addDir(path, e.mode ?? 0o755, mtime);
      continue;
    }
    addDir(path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '');
    if (type === 'symlink') {
      if (!e.target) throw new Error(`tar: symlink ${path} needs a target`);
      out.push(header({ path, type, mode: e.mode ?? 0o777, mtime, size: 0, target: e.target }));
      continue;
    }
    const data = typeof e.content === 'string' ? Buffer.from(e.content, 'utf8') : (e.content ?? Buffer.alloc(0));
    out.push(header({ path, type, mode: e.mode ?? 0o644, mtime, size: data.length, target: '' }));
    out.push(data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) out.push(Buffer.alloc(pad, 0));
  }
  out.push(Buffer.alloc(BLOCK * 2, 0)); // end-of-archive marker
  return Buffer.concat(out);
}
