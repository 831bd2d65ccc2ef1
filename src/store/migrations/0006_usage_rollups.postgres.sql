-- Usage read side (issue 14): the cost of each call, and daily rollups that summaries and budget
-- seeding read instead of the raw rows.
--
-- usage_daily holds one row per UTC day (unix ms of its midnight), user, key ('' for calls made
-- without a key, so that it can be part of the key), provider and model; UsageStore::append adds
-- each batch to it in the batch's own transaction. errors counts calls answered with a status of
-- 400 or more. usage_daily_models holds the same sums per day, provider and model for the whole
-- deployment: a deployment-wide summary reads a few rows a day instead of one per key and model.
--
-- Records are read newest first per key, per user and deployment-wide, ordered by (created_at,
-- id). The per-key and per-user indexes are rebuilt with id as their last column (the same number
-- of indexes to maintain on every write, 8 bytes more per entry) so that a page is read in index
-- order; the deployment-wide order needs an index of its own.

ALTER TABLE usage_events ADD COLUMN cost_nanos BIGINT NOT NULL DEFAULT 0;
DROP INDEX usage_events_key_time;
DROP INDEX usage_events_user_time;
CREATE INDEX usage_events_key_time ON usage_events (api_key_id, created_at, id);
CREATE INDEX usage_events_user_time ON usage_events (user_id, created_at, id);
CREATE INDEX usage_events_time ON usage_events (created_at, id);

CREATE TABLE usage_daily (
  day BIGINT NOT NULL,
  user_id TEXT NOT NULL,
  api_key_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  requests BIGINT NOT NULL,
  errors BIGINT NOT NULL,
  prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL,
  total_tokens BIGINT NOT NULL,
  cost_nanos BIGINT NOT NULL,
  latency_ms_sum BIGINT NOT NULL,
  PRIMARY KEY (day, user_id, api_key_id, provider, model)
);
CREATE INDEX usage_daily_key_day ON usage_daily (api_key_id, day);
CREATE INDEX usage_daily_user_day ON usage_daily (user_id, day);

INSERT INTO usage_daily (day, user_id, api_key_id, provider, model, requests, errors, prompt_tokens,
                         completion_tokens, total_tokens, cost_nanos, latency_ms_sum)
SELECT created_at - (((created_at % 86400000) + 86400000) % 86400000), user_id, COALESCE(api_key_id, ''),
       provider, model, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens),
       SUM(completion_tokens), SUM(total_tokens), SUM(cost_nanos), SUM(latency_ms)
FROM usage_events
GROUP BY 1, 2, 3, 4, 5;

CREATE TABLE usage_daily_models (
  day BIGINT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  requests BIGINT NOT NULL,
  errors BIGINT NOT NULL,
  prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL,
  total_tokens BIGINT NOT NULL,
  cost_nanos BIGINT NOT NULL,
  latency_ms_sum BIGINT NOT NULL,
  PRIMARY KEY (day, provider, model)
);

INSERT INTO usage_daily_models (day, provider, model, requests, errors, prompt_tokens, completion_tokens, total_tokens,
                                cost_nanos, latency_ms_sum)
SELECT day, provider, model, SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens),
       SUM(cost_nanos), SUM(latency_ms_sum)
FROM usage_daily
GROUP BY day, provider, model;
