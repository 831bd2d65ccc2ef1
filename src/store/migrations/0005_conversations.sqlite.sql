-- Conversations and their messages. A conversation belongs to one user and goes with them; its
-- messages go with it. Messages are numbered by `seq`, the rowid SQLite assigns on insert
-- (increasing within a conversation: its paging cursor); ids stay opaque TEXT made by the caller.
-- An answer names the user message it answers in parent_id; regenerating adds a sibling and only
-- the newest sibling is active. Times are unix milliseconds, booleans 0/1.
--
-- Full-text search: two FTS5 tables over conversations.title and messages.content, external
-- content (the text is stored once, in the tables themselves) and kept in step by triggers, so a
-- deleted row (directly or by cascade) leaves no index entry behind. The unicode61 tokenizer folds
-- case and, with remove_diacritics 2, accents. The conversation's integer seq is its FTS rowid.

CREATE TABLE conversations (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
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
  ended_at BIGINT
);
CREATE INDEX conversations_user_updated_idx ON conversations (user_id, updated_at, id);
CREATE INDEX conversations_user_status_updated_idx ON conversations (user_id, status, updated_at, id);

CREATE TABLE messages (
  seq INTEGER PRIMARY KEY,
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
  updated_at BIGINT NOT NULL
);
CREATE INDEX messages_conversation_seq_idx ON messages (conversation_id, seq);
CREATE INDEX messages_parent_idx ON messages (parent_id, seq);
CREATE INDEX messages_status_updated_idx ON messages (status, updated_at);

CREATE VIRTUAL TABLE conversations_fts USING fts5 (
  title, content = 'conversations', content_rowid = 'seq', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
  INSERT INTO conversations_fts (rowid, title) VALUES (new.seq, new.title);
END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
  INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.seq, old.title);
END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
  INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.seq, old.title);
  INSERT INTO conversations_fts (rowid, title) VALUES (new.seq, new.title);
END;

CREATE VIRTUAL TABLE messages_fts USING fts5 (
  content, content = 'messages', content_rowid = 'seq', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
  INSERT INTO messages_fts (rowid, content) VALUES (new.seq, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
  INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.seq, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
  INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.seq, old.content);
  INSERT INTO messages_fts (rowid, content) VALUES (new.seq, new.content);
END;
