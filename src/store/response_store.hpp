// The Responses API's stored responses (migration 0009; docs/GATEWAY.md, "Responses API"): the
// response object, the input items of its turn, its owner, and a background response's stream
// events once it is over.
//
// BLOCKING (see database.hpp); holds a reference to its Executor. Errors: kNotFound from insert
// when the user does not exist, kConflict for a duplicate id; kDatabase/kUnavailable otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store {

struct ResponseRecord {
  std::string id;  // "resp_…"
  std::string user_id;
  std::optional<std::string> previous_response_id;
  std::string model;
  std::string status;  // queued | in_progress | completed | incomplete | failed | cancelled
  bool background = false;
  std::string response;                      // the response object (JSON text)
  std::string input_items;                   // the turn's input items (JSON array text)
  std::optional<std::string> events;         // background: the SSE text of every event
  std::optional<std::string> event_lengths;  // and each event's byte length, comma-separated
  std::int64_t created_at = 0;               // unix ms
  std::int64_t updated_at = 0;
};

// What a response becomes when its generation ends (or is cancelled).
struct ResponseUpdate {
  std::string status;
  std::string response;
  std::optional<std::string> events;
  std::optional<std::string> event_lengths;
  std::int64_t now_ms = 0;
};

class ResponseStore {
 public:
  explicit ResponseStore(Executor& db) : db_(db) {}

  Status insert(const ResponseRecord& record);
  [[nodiscard]] Result<std::optional<ResponseRecord>> get(std::string_view id);
  // Updates a response still queued or in progress; false when it is not (over, or gone).
  Result<bool> finish(std::string_view id, const ResponseUpdate& update);
  // Deletes the user's response; false when there is none.
  Result<bool> remove(std::string_view id, std::string_view user_id);
  // Every response still queued or in progress becomes failed (a process that stopped left them).
  Result<std::int64_t> fail_running(std::int64_t now_ms);

 private:
  Executor& db_;
};

}  // namespace parley::store
