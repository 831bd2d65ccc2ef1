-- Usage accounting (issue 5): one row per provider call made for a client — the /v1 gateway and
-- parley's own AI endpoints. Written in batches by services::UsageRecorder, never on the request
-- path. Rows outlive the user and key they name (no foreign keys): accounting is history.
-- `status` is the HTTP status the client got; `streamed` is 0 or 1; times are unix milliseconds.

CREATE TABLE usage_events (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  api_key_id TEXT,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  status INTEGER NOT NULL,
  streamed INTEGER NOT NULL,
  prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL,
  total_tokens BIGINT NOT NULL,
  latency_ms BIGINT NOT NULL,
  request_id TEXT,
  created_at BIGINT NOT NULL
);

CREATE INDEX usage_events_key_time ON usage_events (api_key_id, created_at);
CREATE INDEX usage_events_user_time ON usage_events (user_id, created_at);
