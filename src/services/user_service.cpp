#include "services/user_service.hpp"

#include <fmt/format.h>

#include "auth/policy.hpp"
#include "crypto/random.hpp"
#include "services/validate.hpp"
#include "store/refresh_token_store.hpp"

namespace parley::services {

UserService::UserService(store::Database& db, const Clock& clock, PrincipalCache& principals, AuditLog& audit,
                         UserServiceOptions options)
    : db_(db), clock_(clock), principals_(principals), audit_(audit), options_(options) {
  // Verifying against this when the username is unknown keeps both paths equally slow.
  dummy_hash_ = crypto::hash_password(crypto::random_base62(24), options_.password).value_or("");
}

Status UserService::check_new_user(const NewUser& input) const {
  if (auto s = check_username(input.username); !s) return s;
  if (auto s = check_email(input.email); !s) return s;
  if (input.phone_number) {
    if (auto s = check_phone(*input.phone_number); !s) return s;
  }
  return services::check_password(input.password);
}

Result<store::UserRecord> UserService::build_record(const NewUser& input) const {
  auto hash = crypto::hash_password(input.password, options_.password);
  if (!hash) return std::unexpected(hash.error());
  store::UserRecord r;
  r.id = crypto::new_public_id();
  r.username = input.username;
  r.email = to_lower(input.email);
  r.phone_number = input.phone_number;
  r.password_hash = *hash;
  r.role = std::string(auth::role_name(input.role));
  r.is_active = input.is_active;
  r.created_at = r.updated_at = clock_.now_ms();
  return r;
}

namespace {
// Unique-constraint conflicts name the field; keep the message generic about the value.
Error conflict_message(Error e) {
  if (e.kind == ErrorKind::kConflict) {
    std::string field = e.param.value_or("username");
    e.message = fmt::format("That {} is already taken", field == "email" ? "email" : "username");
    if (!e.param) e.param = field;
  }
  return e;
}
}  // namespace

namespace {

// A taken username or email, found before the password is hashed: a flood of duplicate
// registrations then costs a lookup each, not an argon2id run. (The unique indexes still decide
// a race between two new registrations.)
Status refuse_taken(store::UserStore& users, const NewUser& input) {
  auto by_name = users.get_by_username(input.username);
  if (!by_name) return std::unexpected(by_name.error());
  if (*by_name) return fail(ErrorKind::kConflict, "That username is already taken", std::string("username"));
  auto by_email = users.get_by_email(input.email);
  if (!by_email) return std::unexpected(by_email.error());
  if (*by_email) return fail(ErrorKind::kConflict, "That email is already taken", std::string("email"));
  return {};
}

}  // namespace

Result<std::string> UserService::registration_mode() {
  if (options_.open_registration) return std::string("open");
  store::UserStore users(db_);
  auto count = users.count_users();
  if (!count) return std::unexpected(count.error());
  return std::string(*count == 0 ? "first_user" : "closed");
}

Result<store::UserRecord> UserService::register_user(NewUser input, const RequestMeta& meta) {
  if (auto s = check_new_user(input); !s) return std::unexpected(s.error());
  input.role = auth::Role::kUser;
  input.is_active = true;
  store::UserStore users(db_);
  if (!options_.open_registration) {
    auto count = users.count_users();
    if (!count) return std::unexpected(count.error());
    if (*count > 0)
      return fail(ErrorKind::kForbidden, "Registration is closed; ask an administrator for an account");
  }
  if (auto s = refuse_taken(users, input); !s) return std::unexpected(s.error());
  auto record = build_record(input);
  if (!record) return std::unexpected(record.error());
  auto created = users.create_first_as_admin(*record);
  if (!created) return std::unexpected(conflict_message(created.error()));
  if (!options_.open_registration && created->role != auth::role_name(auth::Role::kAdmin)) {
    // Another registration won the race for the first account (the count above and hashing are not
    // atomic with the insert; create_first_as_admin is): registration was closed for this one.
    (void)users.remove(created->id);
    return fail(ErrorKind::kForbidden, "Registration is closed; ask an administrator for an account");
  }
  audit_.record(created->id, "user.registered", "user", created->id, meta,
                fmt::format(R"({{"role":"{}"}})", created->role));
  return created;
}

Result<store::UserRecord> UserService::create_user(const std::optional<auth::Principal>& who,
                                                   const NewUser& input, const RequestMeta& meta) {
  if (who) {
    if (auto s = auth::authorize(*who, auth::Operation::kCreateUser); !s) return std::unexpected(s.error());
  }
  if (auto s = check_new_user(input); !s) return std::unexpected(s.error());
  store::UserStore users(db_);
  if (auto s = refuse_taken(users, input); !s) return std::unexpected(s.error());
  auto record = build_record(input);
  if (!record) return std::unexpected(record.error());
  auto created = users.create(*record);
  if (!created) return std::unexpected(conflict_message(created.error()));
  audit_.record(who ? std::optional(who->user_id) : std::nullopt, "user.created", "user", created->id, meta,
                fmt::format(R"({{"role":"{}"}})", created->role));
  return created;
}

Result<store::UserRecord> UserService::get(const auth::Principal& who, std::string_view user_id) {
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, user_id); !s)
    return std::unexpected(s.error());
  store::UserStore users(db_);
  auto found = users.get_by_id(user_id);
  if (!found) return std::unexpected(found.error());
  if (!*found) return fail(ErrorKind::kNotFound, "User not found");
  return std::move(**found);
}

Result<store::Page<store::UserRecord>> UserService::list(const auth::Principal& who,
                                                         const store::UserListQuery& query) {
  if (auto s = auth::authorize(who, auth::Operation::kListUsers); !s) return std::unexpected(s.error());
  store::UserStore users(db_);
  return users.list(query);
}

Result<store::UserRecord> UserService::update(const auth::Principal& who, std::string_view user_id,
                                              UserPatch patch, const RequestMeta& meta) {
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, user_id); !s)
    return std::unexpected(s.error());
  bool self = who.user_id == user_id;
  if (patch.role) {
    if (self) return fail(ErrorKind::kForbidden, "You cannot change your own role", std::string("role"));
    if (auto s = auth::authorize(who, auth::Operation::kChangeRole); !s) return std::unexpected(s.error());
  }
  if (patch.is_active) {
    if (self)
      return fail(ErrorKind::kForbidden, "You cannot change your own active state", std::string("is_active"));
    if (auto s = auth::authorize(who, auth::Operation::kChangeActive); !s) return std::unexpected(s.error());
  }
  if (patch.username) {
    if (auto s = check_username(*patch.username); !s) return std::unexpected(s.error());
  }
  if (patch.email) {
    if (auto s = check_email(*patch.email); !s) return std::unexpected(s.error());
  }
  if (patch.phone_number && *patch.phone_number) {
    if (auto s = check_phone(**patch.phone_number); !s) return std::unexpected(s.error());
  }
  store::UserStore users(db_);
  auto current = users.get_by_id(user_id);
  if (!current) return std::unexpected(current.error());
  if (!*current) return fail(ErrorKind::kNotFound, "User not found");

  store::UserUpdate update;
  update.username = patch.username;
  if (patch.email) update.email = to_lower(*patch.email);
  update.phone_number = patch.phone_number;
  if (patch.role) update.role = std::string(auth::role_name(*patch.role));
  update.is_active = patch.is_active;
  if (patch.password) {
    if (auto s = services::check_password(*patch.password); !s) return std::unexpected(s.error());
    if (self) {
      if (!patch.current_password ||
          !crypto::verify_password((*current)->password_hash, *patch.current_password)) {
        return validation("current_password",
                          "current_password is required and must match to change your password");
      }
    }
    auto hash = crypto::hash_password(*patch.password, options_.password);
    if (!hash) return std::unexpected(hash.error());
    update.password_hash = *hash;
  }
  auto updated = users.update(user_id, update, clock_.now_ms());
  if (!updated) return std::unexpected(conflict_message(updated.error()));
  if (!*updated) return fail(ErrorKind::kNotFound, "User not found");
  principals_.invalidate(user_id);

  const store::UserRecord& before = **current;
  const store::UserRecord& after = **updated;
  if (before.role != after.role) {
    audit_.record(who.user_id, "user.role_changed", "user", after.id, meta,
                  fmt::format(R"({{"from":"{}","to":"{}"}})", before.role, after.role));
  }
  if (before.is_active != after.is_active) {
    audit_.record(who.user_id, after.is_active ? "user.activated" : "user.deactivated", "user", after.id,
                  meta);
  }
  if (patch.password) audit_.record(who.user_id, "user.password_changed", "user", after.id, meta);
  // A deactivated user or a changed password ends every session of that user.
  if ((before.is_active && !after.is_active) || patch.password) {
    store::RefreshTokenStore tokens(db_);
    (void)tokens.revoke_all_for_user(after.id, clock_.now_ms());
  }
  return std::move(**updated);
}

Result<store::UserRecord> UserService::set_limits(const auth::Principal& who, std::string_view user_id,
                                                  const LimitsPatch& patch, bool replace,
                                                  const RequestMeta& meta) {
  auto current = get(who, user_id);
  if (!current) return std::unexpected(current.error());
  if (auto s = auth::authorize(who, auth::Operation::kSetLimits); !s) return std::unexpected(s.error());
  LimitSettings limits = replace ? LimitSettings{} : current->limits;
  patch.apply_to(limits);
  store::UserStore users(db_);
  auto updated = users.set_limits(user_id, limits, clock_.now_ms());
  if (!updated) return std::unexpected(updated.error());
  if (!*updated) return fail(ErrorKind::kNotFound, "User not found");
  principals_.invalidate(user_id);
  audit_.record(who.user_id, "user.limits_changed", "user", std::string(user_id), meta);
  return std::move(**updated);
}

Status UserService::remove(const auth::Principal& who, std::string_view user_id, const RequestMeta& meta) {
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, user_id); !s) return s;
  store::UserStore users(db_);
  auto removed = users.remove(user_id);
  if (!removed) return std::unexpected(removed.error());
  if (!*removed) return fail(ErrorKind::kNotFound, "User not found");
  principals_.invalidate(user_id);
  audit_.record(who.user_id, "user.deleted", "user", std::string(user_id), meta);
  return {};
}

Result<std::optional<CachedUser>> UserService::status(std::string_view user_id) {
  if (auto cached = principals_.get(user_id)) {
    if (!cached->active && cached->username.empty()) return std::optional<CachedUser>{};
    return std::optional<CachedUser>(*cached);
  }
  std::uint64_t generation = principals_.generation();
  store::UserStore users(db_);
  auto found = users.get_by_id(user_id);
  if (!found) return std::unexpected(found.error());
  if (!*found) {
    // Negative entry: deleted or never existed.
    principals_.put_if_unchanged(user_id, CachedUser{}, generation);
    return std::optional<CachedUser>{};
  }
  CachedUser user{(*found)->username, auth::parse_role((*found)->role).value_or(auth::Role::kUser),
                  (*found)->is_active, (*found)->limits};
  principals_.put_if_unchanged(user_id, user, generation);
  return std::optional<CachedUser>(user);
}

Result<std::optional<store::UserRecord>> UserService::check_password(std::string_view username,
                                                                     std::string_view password) {
  store::UserStore users(db_);
  auto found = users.get_by_username(username);
  if (!found) return std::unexpected(found.error());
  if (!*found) {
    (void)crypto::verify_password(dummy_hash_, password);
    return std::optional<store::UserRecord>{};
  }
  if (!crypto::verify_password((*found)->password_hash, password)) return std::optional<store::UserRecord>{};
  return std::move(*found);
}

}  // namespace parley::services
