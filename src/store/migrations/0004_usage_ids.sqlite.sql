-- usage_events gets an integer id the database assigns (SQLite: the rowid itself). A TEXT primary
-- key made every insert maintain one more B-tree; usage rows are written on every gateway call, so
-- that was a third of their cost. Existing rows are renumbered in time order.

CREATE TABLE usage_events_v2 (
  id INTEGER PRIMARY KEY,
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

INSERT INTO usage_events_v2 (user_id, api_key_id, provider, model, endpoint, status, streamed, prompt_tokens,
                             completion_tokens, total_tokens, latency_ms, request_id, created_at)
SELECT user_id, api_key_id, provider, model, endpoint, status, streamed, prompt_tokens, completion_tokens,
       total_tokens, latency_ms, request_id, created_at
FROM usage_events ORDER BY created_at, id;

DROP TABLE usage_events;
ALTER TABLE usage_events_v2 RENAME TO usage_events;
CREATE INDEX usage_events_key_time ON usage_events (api_key_id, created_at);
CREATE INDEX usage_events_user_time ON usage_events (user_id, created_at);
