// Users (issue 3). Usernames are unique ignoring case: each row keeps the name as typed plus a
// lower-cased copy that carries the unique index. E-mail addresses are stored lower-cased.
// Ids are opaque random strings and timestamps unix milliseconds, both supplied by the caller
// (core owns id generation and the clock), so tests control them.
//
// BLOCKING (see database.hpp). Holds a reference to its Executor, which must outlive it; build it
// on a Connection to take part in the caller's transaction. Errors: kConflict with param
// "username", "email" or "id" when a unique value is taken; kDatabase/kUnavailable otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/limits.hpp"
#include "store/database.hpp"
#include "store/page.hpp"

namespace parley::store {

struct UserRecord {
  std::string id;
  std::string username;  // as typed; lookups ignore case
  std::string email;     // lower-cased by the store
  std::optional<std::string> phone_number;
  std::string password_hash;
  std::string role;  // "admin" | "manager" | "user" (a CHECK constraint enforces it)
  bool is_active = true;
  std::int64_t created_at = 0;  // unix ms
  std::int64_t updated_at = 0;  // unix ms
  LimitSettings limits;         // migration 0007; docs/LIMITS.md
};

// Fields to change; unset fields keep their value. phone_number = std::optional(std::nullopt)
// clears the number.
struct UserUpdate {
  std::optional<std::string> username;
  std::optional<std::string> email;
  std::optional<std::optional<std::string>> phone_number;
  std::optional<std::string> password_hash;
  std::optional<std::string> role;
  std::optional<bool> is_active;
};

struct UserListQuery {
  PageRequest page;
  // Case-insensitive substring of the username or the e-mail address.
  std::optional<std::string> search;
};

class UserStore {
 public:
  explicit UserStore(Executor& db) : db_(db) {}

  // Inserts `user` and returns it as stored.
  Result<UserRecord> create(const UserRecord& user);

  // Inserts `user`, with role "admin" instead of user.role if no user exists yet: the first
  // account of an empty deployment becomes its administrator. Atomic against concurrent callers
  // on both backends (SQLite's write lock; a table lock on PostgreSQL).
  Result<UserRecord> create_first_as_admin(UserRecord user);

  Result<std::optional<UserRecord>> get_by_id(std::string_view id);
  Result<std::optional<UserRecord>> get_by_username(std::string_view username);  // ignores case
  Result<std::optional<UserRecord>> get_by_email(std::string_view email);        // ignores case

  // Oldest first (created_at, then id), with the total number of matches.
  Result<Page<UserRecord>> list(const UserListQuery& query);

  // Applies `patch`, sets updated_at = now_ms (only when something changes) and returns the row;
  // std::nullopt when no user has this id.
  Result<std::optional<UserRecord>> update(std::string_view id, const UserUpdate& patch, std::int64_t now_ms);
  // Replaces the user's limits; std::nullopt when no user has this id.
  Result<std::optional<UserRecord>> set_limits(std::string_view id, const LimitSettings& limits,
                                               std::int64_t now_ms);

  // Deletes the user and, by cascade, everything they own (preferences, API keys, refresh tokens).
  // false when no user has this id.
  Result<bool> remove(std::string_view id);

  Result<std::int64_t> count_users();

 private:
  Result<std::optional<UserRecord>> get_where(std::string_view column, std::string_view value);

  Executor& db_;
};

}  // namespace parley::store
