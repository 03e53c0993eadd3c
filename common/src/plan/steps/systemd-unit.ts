/**
 * `systemd.unit`: install a unit file and drop-ins, daemon-reload only when a file changed,
 * enable/disable, and bring the unit to a state (started, restarted, reloaded, stopped), then
 * wait until it is active and healthy. On failure the agent reports `systemctl status` and
 * the journal's last 30 lines, and puts the previous files back.
 *
 * Also home of the bundle path-list reader (globs allowed) image.import and kubectl.apply share.
 *
 * ```yaml
 * - id: edgecore
 *   type: systemd.unit
 *   args:
 *     name: edgecore.service
 *     bundle: kubeedge
 *     src: systemd/edgecore.service
 *     dropIns: [{ name: 10-env.conf, content: "[Service]\nEnvironment=KUBEEDGE_LOG=2\n" }]
 *     enabled: true
 *     state: restarted          # restarts only when a file changed, unless always: true
 *     waitActive: 30s
 *     healthCheck: [curl, -fsS, http://127.0.0.1:10550/healthz]
 * ```
 */
import { posix } from 'node:path';
import { schema, type ArgReader } from '../step-schema.js';
import { readDuration } from './exec.js';
import { readAbsPath } from './file-install.js';

/** One drop-in file: `<unitDir>/<unit>.d/<name>` (".conf" is added when missing). */
export interface DropIn {
  name: string;
  content: string;
}

export type UnitState = 'started' | 'restarted' | 'stopped' | 'reloaded';

export interface SystemdUnitArgs {
  /** Unit name with its suffix, e.g. "edgecore.service". */
  name: string;
  /** Unit file text; or bundle + src. Neither: manage a unit that is already installed. */
  content?: string;
  bundle?: string;
  /** Path of the unit file inside the bundle. */
  src?: string;
  dropIns: DropIn[];
  /** true: `systemctl enable`; false: `systemctl disable`; unset: leave as is. */
  enabled?: boolean;
  /** Unset: leave the running state alone. */
  state?: UnitState;
  /** restarted/reloaded: act even when no file changed (e.g. after a config edit by another step). */
  always: boolean;
  /** How long to wait for ActiveState=active after start/restart/reload; 0 = do not wait. Default 30s. */
  waitActiveMs: number;
  /** The unit must stay active this long (catches services that crash right after starting). Default 1s. */
  stableForMs: number;
  /** Command that must exit 0 (retried) once the unit is active. */
  healthCheck?: string[];
  /** How long the health check may keep failing. Default 30s. */
  healthTimeoutMs: number;
  /** Where unit files go. Default /etc/systemd/system. */
  unitDir: string;
}

const UNIT_NAME = /^[A-Za-z0-9:_.\\@-]+\.(service|socket|timer|target|mount|automount|path|slice|swap|device|scope)$/;
const DROPIN_NAME = /^[A-Za-z0-9:_.@-]+$/;

/** True for a path inside a bundle: relative and never climbing out of it (globs allowed). */
export function isBundleRelPath(p: string): boolean {
  const n = posix.normalize(p);
  return p !== '' && !p.startsWith('/') && n !== '.' && n !== '..' && !n.startsWith('../');
}

/** Reads a list of bundle-relative paths (globs allowed). */
export function readBundlePaths(r: ArgReader, key: string): string[] | undefined {
  const list = r.stringList(key, { nonEmpty: true });
  list?.forEach((p, i) => {
    if (!isBundleRelPath(p)) r.problem(`${key}[${i}]`, `must be a path inside the bundle like images/*.tar (got "${p}")`);
  });
  return list?.map((p) => posix.normalize(p));
}

/** Schema for `systemd.unit`. */
export const systemdUnitSchema = schema<SystemdUnitArgs>(
  'systemd.unit',
  'Install a unit file and drop-ins, daemon-reload when changed, enable, start/restart/reload/stop, wait active, health check; journal tail on failure',
  (r) => {
    const name = r.string('name', { required: true });
    if (name !== undefined && !UNIT_NAME.test(name)) r.problem('name', `"name" must be a unit name with its type, like edgecore.service (got "${name}")`);
    const content = r.string('content');
    const bundle = r.string('bundle');
    const srcRaw = r.string('src');
    if (content !== undefined && (bundle !== undefined || srcRaw !== undefined)) r.problem('content', 'give either "content" or "bundle" + "src", not both');
    if ((bundle === undefined) !== (srcRaw === undefined)) r.problem(bundle === undefined ? 'bundle' : 'src', '"bundle" and "src" go together: the bundle alias and the unit file\'s path inside it');
    if (srcRaw !== undefined && (!isBundleRelPath(srcRaw) || /[*?[]/.test(srcRaw))) r.problem('src', `"src" must be one file path inside the bundle (got "${srcRaw}")`);
    const seen = new Set<string>();
    const dropIns = r.objects<DropIn>('dropIns', (d) => {
      const n = d.string('name', { required: true });
      const c = d.string('content', { required: true });
      if (n !== undefined && !DROPIN_NAME.test(n)) d.problem('name', `drop-in "name" must be a file name like 10-limits.conf (got "${n}")`);
      const file = n === undefined ? undefined : n.endsWith('.conf') ? n : `${n}.conf`;
      if (file !== undefined && seen.has(file)) d.problem('name', `drop-in "${file}" is listed twice`);
      if (file !== undefined) seen.add(file);
      return file === undefined || c === undefined ? undefined : { name: file, content: c };
    }) ?? [];
    const state = r.oneOf<UnitState>('state', ['started', 'restarted', 'stopped', 'reloaded']);
    const always = r.bool('always', { default: false })!;
    if (always && state !== 'restarted' && state !== 'reloaded') r.problem('always', '"always" only applies to state restarted or reloaded');
    const healthCheck = r.stringList('healthCheck', { nonEmpty: true });
    if (healthCheck && state === 'stopped') r.problem('healthCheck', 'a health check needs the unit running; it cannot go with state: stopped');
    return {
      name: name!, content, bundle, src: srcRaw === undefined ? undefined : posix.normalize(srcRaw), dropIns,
      enabled: r.bool('enabled'), state, always,
      waitActiveMs: readDuration(r, 'waitActive', { default: 30_000 }) ?? 30_000,
      stableForMs: readDuration(r, 'stableFor', { default: 1_000 }) ?? 1_000,
      healthCheck,
      healthTimeoutMs: readDuration(r, 'healthTimeout', { default: 30_000, min: 1 }) ?? 30_000,
      unitDir: readAbsPath(r, 'unitDir', false) ?? '/etc/systemd/system',
    };
  },
);
