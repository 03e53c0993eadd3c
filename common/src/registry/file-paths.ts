/**
 * Request paths of the files repository (`/files/<bundle>/<version>/<path>`),
 * decoded and checked in one place (the files handler answers the
 * controller's listener and site relays' requests alike): traversal, NUL,
 * encoded slashes and empty segments are refused outright, before any
 * lookup, so nothing but a bundle file can ever be reached.
 */
import { RegistryError } from './http-error.js';

/** Path segments after /files, decoded; throws PATH_INVALID for traversal, NUL, encoded slashes and empty segments. */
export function fileSegments(path: string): { segments: string[]; dir: boolean } {
  const rest = path.replace(/^\/files\/?/, '');
  if (rest === '') return { segments: [], dir: true };
  const raw = rest.split('/');
  const dir = raw[raw.length - 1] === '';
  if (dir) raw.pop();
  const segments = raw.map((s) => {
    let d: string;
    try {
      d = decodeURIComponent(s);
    } catch {
      throw new RegistryError(400, 'PATH_INVALID', `malformed percent-encoding in ${JSON.stringify(s.slice(0, 100))}`);
    }
    if (d === '' || d === '.' || d === '..' || /[/\\\0]/.test(d)) {
      throw new RegistryError(400, 'PATH_INVALID', `path segment ${JSON.stringify(s.slice(0, 100))} is not allowed (empty, . or .., a slash or NUL)`);
    }
    return d;
  });
  return { segments, dir };
}
