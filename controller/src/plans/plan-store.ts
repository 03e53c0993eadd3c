import { createHash } from 'node:crypto';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { PlanInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import type { JobBundle, SignedPlan } from '../../../common/src/gen/ferry/v1/session.js';
import { parsePlan } from '../../../common/src/plan/parse.js';
import { formatProblems } from '../../../common/src/plan/plan-problems.js';
import { verifyPlan } from '../../../common/src/plan/signed-plan.js';
import type { Plan } from '../../../common/src/plan/types.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import type { Db } from '../store/db.js';

export interface StoredPlan {
  id: string;
  signed: SignedPlan;
  plan: Plan;
  createdAt: number;
}

interface PlanRow { id: string; name: string; signed_plan: string; key_id: string; created_at: number }

export function planInfo(p: StoredPlan): PlanInfo {
  return {
    id: p.id, name: p.plan.name, description: p.plan.description, steps: p.plan.steps.length,
    bundles: p.plan.bundles.map((b) => `${b.name}:${b.version}`), keyId: p.signed.keyId, createdAtMs: p.createdAt,
    params: p.plan.params.map((x) => x.name),
  };
}

/**
 * Plans as pushed: the signed YAML, validated on the way in (every problem
 * with file:line:col, unknown bundles included). The latest push of a name is
 * what `ferry run NAME` uses; older versions stay for jobs that used them.
 */
export class PlanStore {
  constructor(private readonly db: Db, private readonly bundles: BundleStore) {}

  /** The bundles a job of this plan carries, each resolved to the stored bundle and its signed manifest (NOT_FOUND when one is missing). */
  async jobBundles(p: StoredPlan): Promise<JobBundle[]> {
    const out: JobBundle[] = [];
    for (const b of p.plan.bundles) {
      const stored = await this.bundles.require(b.name, b.version);
      out.push({ as: b.as, bundleId: stored.id, signed: stored.signed });
    }
    return out;
  }

  async push(signed: SignedPlan): Promise<StoredPlan> {
    const trusted = (await this.bundles.keys()).map((k) => k.publicPem);
    const text = verifyPlan(signed, trusted);
    const plan = await this.validate(text, signed.file);
    // A plan's identity is its exact text (the signature is over it, not part of it).
    const id = createHash('sha256').update(text).digest('hex').slice(0, 16);
    const existing = await this.byId(id);
    if (existing) {
      // The same text as the latest push of this name: nothing changes.
      if ((await this.latest(plan.name))?.id === id) return existing;
      // An older version pushed again becomes the one `ferry run NAME` uses.
      const at = Date.now();
      await this.db.run('UPDATE plans SET created_at = ? WHERE id = ?', [at, id]);
      return { ...existing, createdAt: at };
    }
    const at = Date.now();
    await this.db.run('INSERT INTO plans (id, name, signed_plan, key_id, created_at) VALUES (?, ?, ?, ?, ?)',
      [id, plan.name, JSON.stringify(signed), signed.keyId, at]);
    return { id, signed, plan, createdAt: at };
  }

  /** Parses and checks a plan, including that its bundles exist here. */
  async validate(text: string, file: string): Promise<Plan> {
    const { plan, problems } = parsePlan(text, file);
    if (plan) {
      for (const b of plan.bundles) {
        if (!(await this.bundles.get(b.name, b.version))) {
          problems.push({ file, line: 1, col: 1, message: `bundle ${b.name}:${b.version} (as "${b.as}") is not on the controller; push it first` });
        }
      }
    }
    if (!plan || problems.length > 0) {
      throw new FerryError(ErrorCode.InvalidArgument, `plan ${file} is invalid:\n${formatProblems(problems)}`, 'fix every problem listed (file:line:col) and push again');
    }
    return plan;
  }

  async latest(name: string): Promise<StoredPlan | undefined> {
    const r = await this.db.get<PlanRow>('SELECT * FROM plans WHERE name = ? ORDER BY created_at DESC LIMIT 1', [name]);
    return r && this.fromRow(r);
  }

  /** One exact version by id (a rollout keeps the version it was created with), or undefined. */
  async byId(id: string): Promise<StoredPlan | undefined> {
    const r = await this.db.get<PlanRow>('SELECT * FROM plans WHERE id = ?', [id]);
    return r && this.fromRow(r);
  }

  async require(name: string): Promise<StoredPlan> {
    const p = await this.latest(name);
    if (!p) throw new FerryError(ErrorCode.NotFound, `no plan named ${name}`, 'push it with `ferry plan push FILE --key operator.key`; list plans with `ferry plan ls`');
    return p;
  }

  async list(): Promise<StoredPlan[]> {
    const rows = await this.db.all<PlanRow>('SELECT * FROM plans ORDER BY name, created_at DESC');
    const seen = new Set<string>();
    return rows.filter((r) => (seen.has(r.name) ? false : (seen.add(r.name), true))).map((r) => this.fromRow(r));
  }

  private fromRow(r: PlanRow): StoredPlan {
    const signed = JSON.parse(r.signed_plan) as SignedPlan;
    const { plan } = parsePlan(signed.plan, signed.file);
    if (!plan) throw new FerryError(ErrorCode.Internal, `stored plan ${r.name} no longer parses`, 'push it again');
    return { id: r.id, signed, plan, createdAt: Number(r.created_at) };
  }
}
