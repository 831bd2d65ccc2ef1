-- OpenAI Conversations API items (docs/CONVERSATIONS.md, "Conversations API"): a message added as an
-- item that role and content cannot hold exactly (a function_call or function_call_output item, a
-- developer message, several content parts) keeps the original item here, as JSON without its id;
-- role and content then hold a readable rendering that the console and the model context use.
-- NULL for every other message: the item is rebuilt from role and content.

ALTER TABLE messages ADD COLUMN item TEXT;
