// Internal to the store module: pieces shared by the two backends and the factory.
#pragma once

#include <fmt/format.h>

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store::detail {

Result<std::unique_ptr<Database>> open_sqlite(const DatabaseOptions& options, const std::string& path);
Result<std::unique_ptr<Database>> open_postgres(const DatabaseOptions& options);

// The secrets a URL carries (user-info password and `password=` query values, raw and
// percent-decoded), to scrub from driver messages.
std::vector<std::string> url_secrets(std::string_view url);

// The largest N of the $N placeholders in `sql` (outside literals and comments); 0 if none.
int highest_placeholder(std::string_view sql);

// `text` with every occurrence of each secret replaced by "***".
std::string scrub(std::string text, const std::vector<std::string>& secrets);

// Runs `fn` and turns an escaping exception (allocation failure, a throwing transaction body)
// into an Error, so nothing thrown crosses the store boundary.
template <class F>
auto guarded(std::string_view what, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return fail(ErrorKind::kDatabase, fmt::format("{}: unexpected exception: {}", what, e.what()));
  } catch (...) {
    return fail(ErrorKind::kDatabase, fmt::format("{}: unexpected exception", what));
  }
}

// The body of Database::transaction for both backends. Session provides begin(), commit() and
// rollback() returning Status, and is a Connection.
template <class Session>
Status run_transaction(Session& session, const std::function<Status(Connection&)>& body) {
  if (Status begun = session.begin(); !begun) return begun;
  Status outcome = guarded("transaction body", [&]() -> Status { return body(session); });
  if (outcome) {
    outcome = session.commit();
    if (outcome) return outcome;
  }
  // A failed rollback leaves the session in a transaction; the pool then closes it (healthy()).
  (void)session.rollback();
  return outcome;
}

}  // namespace parley::store::detail
