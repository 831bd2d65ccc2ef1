-- The voice and SMS assistant (issue 15, docs/ASSISTANT.md): one table per kind of record the
-- history merges. assistant_turns holds the spoken/typed turns and their answers, sms_decisions the
-- yes/no decisions on incoming SMS with the drafted reply, calls the call log. Ids are opaque TEXT
-- made by the caller with their kind's prefix (turn_, sms_, call_); times are unix milliseconds,
-- booleans 0/1, processing_time_ms a fractional number of milliseconds (DOUBLE PRECISION).
--
-- Every record goes with its user (ON DELETE CASCADE). A turn or call may name a stored
-- conversation; deleting the conversation keeps the record and clears conversation_id (ON DELETE
-- SET NULL). A turn's message_id (its answer message in that conversation) has no foreign key of
-- its own: the trigger assistant_turns_clear_message clears it whenever conversation_id becomes
-- NULL, so a turn never names a message of a conversation that is gone. The conversation_id
-- indexes let a conversation's deletion find the rows to clear without scanning the tables.
--
-- History reads each table newest first per user, ordered by (time, id) (created_at for turns and
-- decisions, started_at for calls), each with an index in that order. The ids use the "C"
-- collation (byte order), the order SQLite uses and the one the history merges the kinds in,
-- whatever the database's default collation.

CREATE TABLE assistant_turns (
  id TEXT COLLATE "C" PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  conversation_id TEXT REFERENCES conversations (id) ON DELETE SET NULL,
  message_id TEXT,                      -- the answer message in conversation_id; cleared with it
  input_text TEXT NOT NULL,
  gpt_response TEXT NOT NULL,
  input_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  processing_time_ms DOUBLE PRECISION NOT NULL,
  model_used TEXT NOT NULL,
  tts_voice TEXT NOT NULL,
  language TEXT NOT NULL,
  speech INTEGER NOT NULL CHECK (speech IN (0, 1)),
  request_id TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX assistant_turns_user_created_idx ON assistant_turns (user_id, created_at, id);
CREATE INDEX assistant_turns_conversation_idx ON assistant_turns (conversation_id);

-- Fired by the foreign key's SET NULL as by any other update of the column.
CREATE FUNCTION assistant_turns_clear_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.conversation_id IS NULL THEN
    NEW.message_id := NULL;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER assistant_turns_clear_message BEFORE UPDATE OF conversation_id ON assistant_turns
FOR EACH ROW EXECUTE FUNCTION assistant_turns_clear_message();

CREATE TABLE sms_decisions (
  id TEXT COLLATE "C" PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  incoming_text TEXT NOT NULL,
  decision TEXT NOT NULL CHECK (decision IN ('yes', 'no')),
  reply_text TEXT NOT NULL,
  send_reply INTEGER NOT NULL CHECK (send_reply IN (0, 1)),
  model_used TEXT NOT NULL,
  input_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  request_id TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX sms_decisions_user_created_idx ON sms_decisions (user_id, created_at, id);

CREATE TABLE calls (
  id TEXT COLLATE "C" PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  from_number TEXT NOT NULL,            -- E.164
  to_number TEXT NOT NULL,              -- E.164
  status TEXT NOT NULL CHECK (status IN ('completed', 'missed', 'failed', 'busy', 'rejected', 'no_answer')),
  started_at BIGINT NOT NULL,
  ended_at BIGINT,
  duration_seconds BIGINT NOT NULL,
  conversation_id TEXT REFERENCES conversations (id) ON DELETE SET NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX calls_user_started_idx ON calls (user_id, started_at, id);
CREATE INDEX calls_conversation_idx ON calls (conversation_id);
