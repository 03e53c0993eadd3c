/**
 * A small step registry for plan tests, independent of the real step
 * schemas (which other modules define and may change). Arg names follow
 * the real ones so the documented example reads the same with either.
 */
import { schema, type StepSchema } from '../../../common/src/plan/step-schema.js';

const list: Array<StepSchema<unknown>> = [
  schema('image.import', 'import image tars into containerd', (r) => ({
    bundle: r.string('bundle'),
    images: r.stringList('images', { required: true, nonEmpty: true }),
    namespace: r.string('namespace', { default: 'k8s.io' }),
  })),
  schema('yaml.edit', 'set values in a YAML file, keeping comments', (r) => ({
    file: r.string('file', { required: true }),
    backup: r.bool('backup', { default: true }),
    set: r.objects('set', (s) => ({ path: s.string('path', { required: true }), value: s.any('value', { required: true }) }), { required: true }),
  })),
  schema('systemd.unit', 'install, enable and restart a unit', (r) => ({
    name: r.string('name', { required: true }),
    state: r.oneOf('state', ['started', 'restarted', 'stopped'] as const),
    waitActive: r.int('waitActive', { min: 0, max: 600 }),
  })),
  schema('exec', 'run a command', (r) => ({ argv: r.stringList('argv', { required: true, nonEmpty: true }) })),
];

export const TEST_SCHEMAS: ReadonlyMap<string, StepSchema<unknown>> = new Map(list.map((s) => [s.type, s]));
