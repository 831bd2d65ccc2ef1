-- Conversations and their messages. A conversation belongs to one user and goes with them; its
-- messages go with it. Messages are numbered by `seq`, an identity the database assigns on insert
-- (increasing within a conversation: its paging cursor); ids stay opaque TEXT made by the caller.
-- An answer names the user message it answers in parent_id; regenerating adds a sibling and only
-- the newest sibling is active. Times are unix milliseconds, booleans 0/1.
--
-- Full-text search: a generated tsvector column on conversations.title and messages.content
-- (configuration 'simple': lower-cased words, no stemming, no stop words), each with a GIN index;
-- being columns of the rows they index, they go with them. A tsvector holds at most 1 MB, so only
-- the first 200000 characters of a message are indexed.

CREATE TABLE conversations (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  title TEXT NOT NULL,
  system_message TEXT,
  model TEXT,
  metadata TEXT NOT NULL,               -- JSON object
  status TEXT NOT NULL CHECK (status IN ('active', 'ended')),
  message_count BIGINT NOT NULL,        -- every stored message, superseded answers included
  last_message_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  ended_at BIGINT,
  title_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', title)) STORED
);
CREATE INDEX conversations_user_updated_idx ON conversations (user_id, updated_at, id);
CREATE INDEX conversations_user_status_updated_idx ON conversations (user_id, status, updated_at, id);
CREATE INDEX conversations_title_tsv_idx ON conversations USING GIN (title_tsv);

CREATE TABLE messages (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  parent_id TEXT,                       -- an answer's user message
  role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
  sender_id TEXT,
  content TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('complete', 'generating', 'failed', 'cancelled')),
  active INTEGER NOT NULL CHECK (active IN (0, 1)),
  model TEXT,
  prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL,
  latency_ms BIGINT,
  error_code TEXT,
  event_lengths TEXT NOT NULL,          -- comma-separated byte lengths of the streamed pieces
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', left(content, 200000))) STORED
);
CREATE INDEX messages_conversation_seq_idx ON messages (conversation_id, seq);
CREATE INDEX messages_parent_idx ON messages (parent_id, seq);
CREATE INDEX messages_status_updated_idx ON messages (status, updated_at);
CREATE INDEX messages_content_tsv_idx ON messages USING GIN (content_tsv);
