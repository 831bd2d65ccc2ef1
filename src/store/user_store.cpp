#include "store/user_store.hpp"

#include <fmt/format.h>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::string_view kColumns =
    "id, username, email, phone_number, password_hash, role, is_active, created_at, updated_at, "
    "rate_limit_per_minute, tokens_per_minute, token_budget, spend_budget_nanos, budget_period";

UserRecord from_row(const Row& row) {
  UserRecord user;
  user.id = row.get_string(0);
  user.username = row.get_string(1);
  user.email = row.get_string(2);
  user.phone_number = row.get_optional_string(3);
  user.password_hash = row.get_string(4);
  user.role = row.get_string(5);
  user.is_active = row.get_bool(6);
  user.created_at = row.get_int(7);
  user.updated_at = row.get_int(8);
  user.limits.rate_limit_per_minute = row.get_optional_int(9);
  user.limits.tokens_per_minute = row.get_optional_int(10);
  user.limits.token_budget = row.get_optional_int(11);
  user.limits.spend_budget_nanos = row.get_optional_int(12);
  user.limits.budget_period = parse_budget_period(row.get_string(13)).value_or(BudgetPeriod::kMonth);
  return user;
}

Error name_user_conflict(Error error) {
  return detail::name_conflict(
      std::move(error),
      {{"username_lower", "username"}, {"email", "email"}, {"users.id", "id"}, {"users_pkey", "id"}});
}

}  // namespace

Result<UserRecord> UserStore::create(const UserRecord& user) {
  if (user.id.empty()) return fail(ErrorKind::kInternal, "user id is empty");
  Result<QueryResult> r = db_.query(
      fmt::format(
          "INSERT INTO users (id, username, username_lower, email, phone_number, password_hash, role, "
          "is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
          "RETURNING {}",
          kColumns),
      {user.id, user.username, detail::lower_ascii(user.username), detail::lower_ascii(user.email),
       user.phone_number, user.password_hash, user.role, user.is_active, user.created_at, user.updated_at});
  if (!r) return std::unexpected(name_user_conflict(std::move(r.error())));
  if (r->rows.empty()) return fail(ErrorKind::kDatabase, "user insert returned no row");
  return from_row(r->rows.front());
}

Result<UserRecord> UserStore::create_first_as_admin(UserRecord user) {
  Result<UserRecord> created = fail(ErrorKind::kInternal, "user not created");
  Status st = db_.transaction([&](Connection& c) -> Status {
    if (c.dialect() == Dialect::kPostgres) {
      // Conflicts with itself and with every INSERT, so two first registrations cannot both see
      // an empty table. SQLite's BEGIN IMMEDIATE already serialises writers.
      Result<QueryResult> locked = c.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE");
      if (!locked) return forward_error(locked);
    }
    UserStore in_tx(c);
    Result<std::int64_t> existing = in_tx.count_users();
    if (!existing) return forward_error(existing);
    if (*existing == 0) user.role = "admin";
    created = in_tx.create(user);
    if (!created) return std::unexpected(created.error());
    return {};
  });
  if (!st) return std::unexpected(std::move(st.error()));
  return created;
}

Result<std::optional<UserRecord>> UserStore::get_where(std::string_view column, std::string_view value) {
  Result<QueryResult> r =
      db_.query(fmt::format("SELECT {} FROM users WHERE {} = $1", kColumns, column), {value});
  if (!r) return forward_error(r);
  if (r->rows.empty()) return std::optional<UserRecord>();
  return std::optional<UserRecord>(from_row(r->rows.front()));
}

Result<std::optional<UserRecord>> UserStore::get_by_id(std::string_view id) {
  return get_where("id", id);
}

Result<std::optional<UserRecord>> UserStore::get_by_username(std::string_view username) {
  return get_where("username_lower", detail::lower_ascii(username));
}

Result<std::optional<UserRecord>> UserStore::get_by_email(std::string_view email) {
  return get_where("email", detail::lower_ascii(email));
}

Result<Page<UserRecord>> UserStore::list(const UserListQuery& query) {
  const PageRequest page = detail::clamp_page(query.page);
  detail::Params params;
  std::string where;
  if (query.search && !query.search->empty()) {
    const std::string p = params.add(detail::like_contains(*query.search));
    where = fmt::format(" WHERE username_lower LIKE {0} ESCAPE '\\' OR email LIKE {0} ESCAPE '\\'", p);
  }
  Result<QueryResult> total = db_.query("SELECT COUNT(*) FROM users" + where, params.span());
  if (!total) return forward_error(total);

  const std::string limit = params.add(page.limit);
  const std::string offset = params.add(page.offset);
  Result<QueryResult> rows =
      db_.query(fmt::format("SELECT {} FROM users{} ORDER BY created_at, id LIMIT {} OFFSET {}", kColumns,
                            where, limit, offset),
                params.span());
  if (!rows) return forward_error(rows);

  Page<UserRecord> out;
  out.total = total->rows.empty() ? 0 : total->rows.front().get_int(0);
  out.items.reserve(rows->rows.size());
  for (const Row& row : rows->rows) out.items.push_back(from_row(row));
  return out;
}

Result<std::optional<UserRecord>> UserStore::update(std::string_view id, const UserUpdate& patch,
                                                    std::int64_t now_ms) {
  detail::Params params;
  std::string sets;
  auto set = [&](std::string_view column, Value v) {
    if (!sets.empty()) sets += ", ";
    sets += fmt::format("{} = {}", column, params.add(std::move(v)));
  };
  if (patch.username) {
    set("username", *patch.username);
    set("username_lower", detail::lower_ascii(*patch.username));
  }
  if (patch.email) set("email", detail::lower_ascii(*patch.email));
  if (patch.phone_number) set("phone_number", *patch.phone_number);
  if (patch.password_hash) set("password_hash", *patch.password_hash);
  if (patch.role) set("role", *patch.role);
  if (patch.is_active) set("is_active", *patch.is_active);
  if (sets.empty()) return get_by_id(id);
  set("updated_at", now_ms);

  const std::string id_param = params.add(id);
  Result<QueryResult> r = db_.query(
      fmt::format("UPDATE users SET {} WHERE id = {} RETURNING {}", sets, id_param, kColumns), params.span());
  if (!r) return std::unexpected(name_user_conflict(std::move(r.error())));
  if (r->rows.empty()) return std::optional<UserRecord>();
  return std::optional<UserRecord>(from_row(r->rows.front()));
}

Result<std::optional<UserRecord>> UserStore::set_limits(std::string_view id, const LimitSettings& limits,
                                                        std::int64_t now_ms) {
  Result<QueryResult> r = db_.query(
      fmt::format("UPDATE users SET rate_limit_per_minute = $2, tokens_per_minute = $3, token_budget = $4, "
                  "spend_budget_nanos = $5, budget_period = $6, updated_at = $7 WHERE id = $1 RETURNING {}",
                  kColumns),
      {id, limits.rate_limit_per_minute, limits.tokens_per_minute, limits.token_budget,
       limits.spend_budget_nanos, std::string(budget_period_name(limits.budget_period)), now_ms});
  if (!r) return forward_error(r);
  if (r->rows.empty()) return std::optional<UserRecord>();
  return std::optional<UserRecord>(from_row(r->rows.front()));
}

Result<bool> UserStore::remove(std::string_view id) {
  Result<QueryResult> r = db_.query("DELETE FROM users WHERE id = $1", {id});
  if (!r) return forward_error(r);
  return r->affected_rows > 0;
}

Result<std::int64_t> UserStore::count_users() {
  Result<QueryResult> r = db_.query("SELECT COUNT(*) FROM users");
  if (!r) return forward_error(r);
  return r->rows.empty() ? 0 : r->rows.front().get_int(0);
}

}  // namespace parley::store
