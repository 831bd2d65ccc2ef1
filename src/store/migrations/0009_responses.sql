-- The Responses API's stored responses (POST /v1/responses with store true; docs/GATEWAY.md,
-- "Responses API"). One row per response: the response object as last returned (`response`, JSON
-- text, its output items included), the input items of its own turn (`input_items`, a JSON array,
-- each item with an id), and for a background response its stream events (`events`: the SSE text
-- of every event, `event_lengths`: the byte length of each, comma-separated) once it is over, so
-- that a stream can be resumed from the store. Ids are opaque TEXT ("resp_…"); times unix ms.
--
-- previous_response_id names the earlier response of the chain without a foreign key: deleting a
-- response leaves the later ones as they are, and a chain is followed until a response is missing.
-- Every response goes with its user (ON DELETE CASCADE).

CREATE TABLE responses (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  previous_response_id TEXT,
  model TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'in_progress', 'completed', 'incomplete', 'failed', 'cancelled')),
  background INTEGER NOT NULL CHECK (background IN (0, 1)),
  response TEXT NOT NULL,
  input_items TEXT NOT NULL,
  events TEXT,
  event_lengths TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX responses_user_idx ON responses (user_id, created_at);
