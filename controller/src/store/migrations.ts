/** One schema change. `sql` serves both dialects unless `postgres` gives PostgreSQL its own text. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  postgres?: string;
}

/**
 * Versioned schema changes, applied in order and never edited once released.
 * Portable SQL only (TEXT, BIGINT, INTEGER; no AUTOINCREMENT, no JSON
 * operators), so the same list serves SQLite and PostgreSQL; where a change
 * cannot be written portably, the migration carries a `postgres` text.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'tokens, agents, operators, audit',
    sql: `
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  secret_hash TEXT NOT NULL,
  labels TEXT NOT NULL,
  max_uses INTEGER NOT NULL,
  uses INTEGER NOT NULL DEFAULT 0,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  hostname TEXT NOT NULL,
  labels TEXT NOT NULL,
  facts TEXT NOT NULL,
  agent_version TEXT NOT NULL,
  token_id TEXT,
  enrolled_at BIGINT NOT NULL,
  last_seen_at BIGINT,
  revoked_at BIGINT,
  cert_serial TEXT NOT NULL,
  cert_not_after BIGINT NOT NULL
);
CREATE TABLE operators (
  name TEXT NOT NULL,
  cert_serial TEXT PRIMARY KEY,
  issued_at BIGINT NOT NULL,
  not_after BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE TABLE audit (
  id TEXT PRIMARY KEY,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
`,
  },
  {
    version: 2,
    name: 'signing keys, bundles, bundles held by agents',
    sql: `
CREATE TABLE signing_keys (
  key_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  public_pem TEXT NOT NULL,
  added_at BIGINT NOT NULL
);
CREATE TABLE bundles (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  signed_manifest TEXT NOT NULL,
  key_id TEXT NOT NULL,
  size_bytes BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (name, version)
);
CREATE TABLE agent_bundles (
  agent_id TEXT NOT NULL,
  bundle_id TEXT NOT NULL,
  state TEXT NOT NULL,
  bytes_done BIGINT NOT NULL,
  bytes_total BIGINT NOT NULL,
  error TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (agent_id, bundle_id)
);
`,
  },
  {
    version: 3,
    name: 'plans, jobs, per-host job state and output',
    sql: `
CREATE TABLE plans (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  signed_plan TEXT NOT NULL,
  key_id TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX plans_name ON plans (name, created_at);
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  plan_id TEXT NOT NULL,
  params TEXT NOT NULL,
  check_mode INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  created_by TEXT NOT NULL
);
CREATE TABLE job_hosts (
  host_job_id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  hostname TEXT NOT NULL,
  state TEXT NOT NULL,
  next_seq BIGINT NOT NULL,
  step_index INTEGER NOT NULL,
  step_count INTEGER NOT NULL,
  step_id TEXT NOT NULL,
  message TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX job_hosts_agent ON job_hosts (agent_id, state);
CREATE TABLE job_events (
  host_job_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY (host_job_id, seq)
);
`,
  },
  {
    version: 4,
    name: 'rollouts: waves, per-host state, events',
    sql: `
CREATE TABLE rollouts (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  plan_id TEXT NOT NULL,
  plan_name TEXT NOT NULL,
  job_id TEXT NOT NULL,
  spec TEXT NOT NULL,
  spec_text TEXT NOT NULL,
  bundles TEXT NOT NULL,
  wave_sizes TEXT NOT NULL,
  state TEXT NOT NULL,
  paused INTEGER NOT NULL,
  pause_reason TEXT NOT NULL,
  current_wave INTEGER NOT NULL,
  gate_until BIGINT,
  created_at BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  finished_at BIGINT
);
CREATE INDEX rollouts_state ON rollouts (state);
CREATE TABLE rollout_hosts (
  rollout_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  hostname TEXT NOT NULL,
  wave INTEGER NOT NULL,
  ord INTEGER NOT NULL,
  state TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  host_job_id TEXT,
  eligible_at BIGINT,
  message TEXT NOT NULL,
  started_at BIGINT,
  finished_at BIGINT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (rollout_id, agent_id)
);
CREATE TABLE rollout_waves (
  rollout_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  size INTEGER NOT NULL,
  started_at BIGINT,
  finished_at BIGINT,
  PRIMARY KEY (rollout_id, idx)
);
CREATE TABLE rollout_events (
  rollout_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  at BIGINT NOT NULL,
  kind TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  hostname TEXT NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  PRIMARY KEY (rollout_id, seq)
);
`,
  },
  {
    version: 5,
    name: 'job_hosts by state (the rollout scheduler asks which hosts are busy on every pass)',
    sql: `
CREATE INDEX job_hosts_state ON job_hosts (state);
`,
  },
  {
    version: 6,
    name: 'agents.key_fingerprint: a retried enrollment (its answer was lost) is recognised by the host key and costs no second token use',
    sql: `
ALTER TABLE agents ADD COLUMN key_fingerprint TEXT;
CREATE UNIQUE INDEX agents_key_fingerprint ON agents (key_fingerprint);
`,
  },
  {
    version: 7,
    name: 're-authentication: single-use challenges for agents whose certificate lapsed; operator permission past the window',
    sql: `
CREATE TABLE reauth_challenges (
  nonce_hash TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT
);
CREATE INDEX reauth_challenges_expires ON reauth_challenges (expires_at);
ALTER TABLE agents ADD COLUMN reauth_allowed_at BIGINT;
`,
  },
  {
    version: 8,
    name: 'job history: exec runs are kept beside plan runs (kind, argv); listed newest first',
    sql: `
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'plan';
ALTER TABLE jobs ADD COLUMN argv TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX job_hosts_job ON job_hosts (job_id);
`,
  },
  {
    version: 9,
    name: 'operators.role: viewer or admin; certificates issued before roles existed keep the full access they had',
    sql: `
ALTER TABLE operators ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
CREATE INDEX operators_name ON operators (name);
`,
  },
  {
    version: 10,
    name: 'registry: published bundles, their repositories, tags, manifests and blobs (a blob is a byte range of an image tar in a bundle)',
    sql: `
CREATE TABLE registry_publications (
  bundle_id TEXT PRIMARY KEY,
  bundle_name TEXT NOT NULL,
  bundle_version TEXT NOT NULL,
  anonymous INTEGER NOT NULL,
  published_by TEXT NOT NULL,
  published_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX registry_publications_name ON registry_publications (bundle_name, bundle_version);
CREATE TABLE registry_repos (
  repository TEXT NOT NULL,
  bundle_id TEXT NOT NULL,
  host TEXT NOT NULL,
  path TEXT NOT NULL,
  anonymous INTEGER NOT NULL,
  PRIMARY KEY (repository, bundle_id)
);
CREATE INDEX registry_repos_path ON registry_repos (path);
CREATE INDEX registry_repos_host ON registry_repos (host);
CREATE TABLE registry_tags (
  repository TEXT NOT NULL,
  tag TEXT NOT NULL,
  bundle_id TEXT NOT NULL,
  digest TEXT NOT NULL,
  PRIMARY KEY (repository, tag, bundle_id)
);
CREATE TABLE registry_manifests (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  bundle_id TEXT NOT NULL,
  media_type TEXT NOT NULL,
  body_b64 TEXT NOT NULL,
  PRIMARY KEY (repository, digest, bundle_id)
);
CREATE TABLE registry_blobs (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  bundle_id TEXT NOT NULL,
  file_path TEXT NOT NULL,
  tar_offset BIGINT NOT NULL,
  size BIGINT NOT NULL,
  PRIMARY KEY (repository, digest, bundle_id)
);
`,
  },
  {
    version: 11,
    name: 'agent versions from hello (protocol, previous kept for rollback) and agent self-upgrade outcomes per host',
    sql: `
ALTER TABLE agents ADD COLUMN protocol_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN previous_version TEXT NOT NULL DEFAULT '';
CREATE TABLE agent_upgrades (
  agent_id TEXT NOT NULL,
  upgrade_id TEXT NOT NULL,
  from_version TEXT NOT NULL,
  to_version TEXT NOT NULL,
  outcome TEXT NOT NULL,
  reason TEXT NOT NULL,
  log_tail TEXT NOT NULL,
  error_code TEXT NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY (agent_id, upgrade_id)
);
`,
  },
  {
    version: 12,
    name: 'web console: single-use login links and browser sessions, both kept only as hashes',
    sql: `
CREATE TABLE console_logins (
  token_hash TEXT PRIMARY KEY,
  operator TEXT NOT NULL,
  role TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT
);
CREATE INDEX console_logins_expires ON console_logins (expires_at);
CREATE TABLE console_sessions (
  session_hash TEXT PRIMARY KEY,
  operator TEXT NOT NULL,
  role TEXT NOT NULL,
  csrf TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
`,
  },
  {
    version: 13,
    name: 'several replicas on one store: the scheduler lease with its fencing epoch, the replicas and their addresses, the CA they share',
    sql: `
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  epoch BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  acquired_at BIGINT NOT NULL
);
INSERT INTO leases (name, owner, epoch, expires_at, acquired_at) VALUES ('scheduler', '', 0, 0, 0);
CREATE TABLE replicas (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  addresses TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  seen_at BIGINT NOT NULL,
  sessions INTEGER NOT NULL
);
CREATE TABLE shared_ca (
  id INTEGER PRIMARY KEY,
  cert_pem TEXT NOT NULL,
  key_pem TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
`,
  },
  {
    version: 14,
    name: 'work on any replica: jobs.dispatch (what a host of the job is sent, so any replica can deliver a start, also after a restart); agents.session_replica (which replica holds its session)',
    sql: `
ALTER TABLE jobs ADD COLUMN dispatch TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN session_replica TEXT;
`,
  },
  {
    version: 15,
    name: 'job_hosts.cancel_reason: a cancel recorded in the store reaches the host through whichever replica holds its session',
    sql: `
ALTER TABLE job_hosts ADD COLUMN cancel_reason TEXT;
`,
  },
  {
    version: 16,
    name: 'site relays: which agent serves chunks to which hosts, and what it last reported',
    sql: `
CREATE TABLE relays (
  agent_id TEXT PRIMARY KEY,
  serves TEXT NOT NULL,
  cache_bytes BIGINT NOT NULL,
  listen TEXT NOT NULL,
  advertise TEXT NOT NULL,
  enabled_by TEXT NOT NULL,
  enabled_at BIGINT NOT NULL,
  address TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  status_at BIGINT
);
`,
  },
  {
    version: 17,
    name: 'store_settings: facts every replica must agree on (the chunk store marker: which shared directory holds the chunks)',
    sql: `
CREATE TABLE store_settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);
`,
  },
  {
    version: 18,
    name: 'rollout_commands: a rollout change asked through any replica, applied by the scheduler (rollouts/rollout-commands.ts)',
    sql: `
CREATE TABLE rollout_commands (
  id TEXT PRIMARY KEY,
  rollout_id TEXT NOT NULL,
  action TEXT NOT NULL,
  args TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  state TEXT NOT NULL,
  result TEXT,
  applied_by TEXT,
  applied_at BIGINT
);
CREATE INDEX rollout_commands_state ON rollout_commands (state);
`,
  },
  {
    version: 19,
    name: 'relays.registry_listen: where a relay serves the registry and files endpoints to its site (empty: not served)',
    sql: `
ALTER TABLE relays ADD COLUMN registry_listen TEXT NOT NULL DEFAULT '';
`,
  },
];
