-- Identity and access (issue 3): users, preferences, service API keys, refresh tokens, audit.
-- Portable SQL for SQLite and PostgreSQL: TEXT ids (opaque random strings made by the caller),
-- BIGINT unix-millisecond timestamps, INTEGER 0/1 booleans. Every table a user owns cascades on
-- the user's deletion; audit events keep the actor's id as plain text so they outlive the user.

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL,             -- as the user typed it
  username_lower TEXT NOT NULL,       -- lower-cased copy: uniqueness and lookup ignore case
  email TEXT NOT NULL,                -- stored lower-cased
  phone_number TEXT,                  -- E.164, optional
  password_hash TEXT NOT NULL,        -- argon2id encoded string
  role TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'user')),
  is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username_lower_key ON users (username_lower);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_created_at_idx ON users (created_at, id);

CREATE TABLE user_preferences (
  user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  language TEXT NOT NULL,
  tts_voice TEXT NOT NULL,
  auto_reply_enabled INTEGER NOT NULL CHECK (auto_reply_enabled IN (0, 1)),
  conversation_timeout INTEGER NOT NULL,  -- seconds
  notifications INTEGER NOT NULL CHECK (notifications IN (0, 1)),
  default_model TEXT,
  system_prompt TEXT,
  updated_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  key_hash TEXT NOT NULL,             -- SHA-256 of the key, hex; the key itself is never stored
  key_prefix TEXT NOT NULL,           -- shown in listings
  rate_limit_per_minute INTEGER,      -- NULL: the deployment's default
  is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
  expires_at BIGINT,
  last_used_at BIGINT,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_user_created_idx ON api_keys (user_id, created_at);
CREATE INDEX api_keys_created_idx ON api_keys (created_at, id);

CREATE TABLE refresh_tokens (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  family_id TEXT NOT NULL,            -- every token rotated from one login shares it
  token_hash TEXT NOT NULL,           -- SHA-256 of the opaque token, hex
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  rotated_at BIGINT,                  -- set once, when exchanged for its successor
  revoked_at BIGINT
);
CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

CREATE TABLE audit_events (
  id TEXT PRIMARY KEY,
  actor_user_id TEXT,                 -- NULL for anonymous events (failed login of an unknown name)
  action TEXT NOT NULL,               -- e.g. "auth.login.failed", "api_key.revoked"
  target_type TEXT,
  target_id TEXT,
  ip TEXT,
  request_id TEXT,
  detail TEXT,                        -- JSON object, free-form
  created_at BIGINT NOT NULL
);
CREATE INDEX audit_events_created_idx ON audit_events (created_at, id);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_user_id, created_at);
CREATE INDEX audit_events_action_idx ON audit_events (action, created_at);
