-- The per-user provider key vault (issue 4, seeds 000 and 002): one row per (user, provider).
-- `token` is a Fernet token (url-safe base64 text, as Python's cryptography.fernet makes them) of
-- the provider key under one of the deployment's encryption keys; the key itself is never stored.
-- `key_hint` is the masked form shown to people ("sk-…abcd": at most the first 3 and last 4
-- characters). Timestamps are unix milliseconds; updated_at is when the user last set the key
-- (re-encryption by `parley keys rotate` leaves it alone). Rows go with their user.

CREATE TABLE provider_keys (
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  provider TEXT NOT NULL,
  token TEXT NOT NULL,
  key_hint TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (user_id, provider)
);
