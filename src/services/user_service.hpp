// Accounts: registration (the first user of an empty deployment becomes admin; later ones only
// with open registration), admin-created users, reads, updates and deletion, each decided by
// auth::policy. BLOCKING (database and argon2id): handlers call these on the BlockingPool.
// Thread-safe.
#pragma once

#include <optional>
#include <string>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "crypto/password.hpp"
#include "services/audit_log.hpp"
#include "services/context.hpp"
#include "services/principal_cache.hpp"
#include "store/database.hpp"
#include "store/user_store.hpp"

namespace parley::services {

struct NewUser {
  std::string username;
  std::string email;
  std::optional<std::string> phone_number;
  std::string password;
  auth::Role role = auth::Role::kUser;
  bool is_active = true;
};

struct UserPatch {
  std::optional<std::string> username;
  std::optional<std::string> email;
  std::optional<std::optional<std::string>> phone_number;  // nullopt inside: clear it
  std::optional<std::string> password;
  std::optional<std::string> current_password;  // required to change one's own password
  std::optional<auth::Role> role;
  std::optional<bool> is_active;
};

struct UserServiceOptions {
  bool open_registration = false;
  crypto::PasswordParams password;
};

class UserService {
 public:
  UserService(store::Database& db, const Clock& clock, PrincipalCache& principals, AuditLog& audit,
              UserServiceOptions options);

  // POST /auth/register. Returns the user and whether it became the first admin.
  Result<store::UserRecord> register_user(NewUser input, const RequestMeta& meta);
  // POST /users (admin) and `parley admin create` (who = nullopt: the operator at the console).
  Result<store::UserRecord> create_user(const std::optional<auth::Principal>& who, const NewUser& input,
                                        const RequestMeta& meta);
  Result<store::UserRecord> get(const auth::Principal& who, std::string_view user_id);
  Result<store::Page<store::UserRecord>> list(const auth::Principal& who, const store::UserListQuery& query);
  Result<store::UserRecord> update(const auth::Principal& who, std::string_view user_id, UserPatch patch,
                                   const RequestMeta& meta);
  Status remove(const auth::Principal& who, std::string_view user_id, const RequestMeta& meta);
  // A user's limits and budgets (docs/LIMITS.md): read by the user, managers and admins; changed
  // by admins (403 for a reader, 404 for anyone else).
  // `replace`: fields the patch leaves unset are removed (PUT), else kept (PATCH).
  Result<store::UserRecord> set_limits(const auth::Principal& who, std::string_view user_id,
                                       const LimitsPatch& patch, bool replace, const RequestMeta& meta);

  // For authentication: the user's current role and state (nullopt when deleted). Uses the cache.
  Result<std::optional<CachedUser>> status(std::string_view user_id);

  // Checks a password for login. Unknown users cost the same time as known ones.
  Result<std::optional<store::UserRecord>> check_password(std::string_view username,
                                                          std::string_view password);

  // Who may register now: "open" (auth.open_registration), "first_user" (no account exists yet:
  // the first becomes the administrator) or "closed".
  Result<std::string> registration_mode();
  // The checks of a new user's fields (no database): 422 naming the field.
  Status check_new_user(const NewUser& input) const;

 private:
  Result<store::UserRecord> build_record(const NewUser& input) const;

  store::Database& db_;
  const Clock& clock_;
  PrincipalCache& principals_;
  AuditLog& audit_;
  UserServiceOptions options_;
  std::string dummy_hash_;
};

}  // namespace parley::services
