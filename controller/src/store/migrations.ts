/**
 * Versioned schema changes, applied in order and never edited once released.
 * Portable SQL only (TEXT, BIGINT, INTEGER; no AUTOINCREMENT, no JSON
 * operators), so the same list serves the PostgreSQL backend.
 */
export const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
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
];
