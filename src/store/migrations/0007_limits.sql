-- Limits and budgets (issue 14, docs/LIMITS.md) on service keys and on users. NULL: no limit (a
-- key's rate_limit_per_minute / tokens_per_minute fall back to limits.default_rpm / default_tpm).
-- Spend budgets are USD × 1e9 (nano-dollars) so that sums stay exact integers.

ALTER TABLE api_keys ADD COLUMN tokens_per_minute BIGINT;
ALTER TABLE api_keys ADD COLUMN token_budget BIGINT;
ALTER TABLE api_keys ADD COLUMN spend_budget_nanos BIGINT;
ALTER TABLE api_keys ADD COLUMN budget_period TEXT NOT NULL DEFAULT 'month' CHECK (budget_period IN ('day', 'month', 'total'));

ALTER TABLE users ADD COLUMN rate_limit_per_minute BIGINT;
ALTER TABLE users ADD COLUMN tokens_per_minute BIGINT;
ALTER TABLE users ADD COLUMN token_budget BIGINT;
ALTER TABLE users ADD COLUMN spend_budget_nanos BIGINT;
ALTER TABLE users ADD COLUMN budget_period TEXT NOT NULL DEFAULT 'month' CHECK (budget_period IN ('day', 'month', 'total'));
