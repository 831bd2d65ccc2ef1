// Usage read routes (issue 14, docs/LIMITS.md "Usage"):
//
//   GET /api/v1/usage/{key_id}                 records of a service key, newest first
//   GET /api/v1/usage/{key_id}/summary         totals, per day and per model, of the last `days` days
//   GET /api/v1/users/{user_id}/usage          records of a user (all their keys and JWT calls)
//   GET /api/v1/users/{user_id}/usage/summary
//   GET /api/v1/usage                          the whole deployment (managers, admins); ?user_id=
//   GET /api/v1/usage/summary                  and ?api_key_id= narrow it
//
// Records: ?limit= (1..500, default 50), ?cursor= (next_cursor of the previous page), ?since= and
// ?until= (RFC 3339 or YYYY-MM-DD, since inclusive, until exclusive) →
// {"items":[…],"has_more","next_cursor","limit"}. ?format=csv or Accept: text/csv → CSV (RFC 4180,
// a header row), up to ?limit= rows (1..100000, default 100000), streamed in pages; when more rows
// match, X-Next-Cursor names where the next export continues. Summaries: ?days= (1..366, default 30),
// from the daily rollups: whole UTC days, today included. Authorization in services/usage_service.hpp.
#pragma once

#include "api/deps.hpp"
#include "services/usage_service.hpp"

namespace parley::api {

struct UsageDeps {
  services::UsageService& usage;
  Authenticator& authenticator;
  http::BlockingPool& pool;
};

void register_usage_routes(http::Router& router, UsageDeps& deps);

}  // namespace parley::api
