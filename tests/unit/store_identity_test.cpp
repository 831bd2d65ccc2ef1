// The identity stores (users, preferences, API keys, refresh tokens, audit) on both backends,
// against the real embedded migrations. PostgreSQL cases run when PARLEY_TEST_POSTGRES_URL is set
// and are skipped otherwise.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/api_key_store.hpp"
#include "store/audit_store.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "store/preference_store.hpp"
#include "store/refresh_token_store.hpp"
#include "store/scratch_database.hpp"
#include "store/user_store.hpp"

namespace parley::store {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000;  // a fixed "now" in unix ms

UserRecord make_user(std::string_view name, std::int64_t created_at = kT0) {
  UserRecord u;
  u.id = fmt::format("usr_{}", name);
  u.username = std::string(name);
  u.email = fmt::format("{}@Example.COM", name);
  u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
  u.role = "user";
  u.is_active = true;
  u.created_at = created_at;
  u.updated_at = created_at;
  return u;
}

ApiKeyRecord make_key(std::string_view id, std::string_view user_id, std::int64_t created_at = kT0) {
  ApiKeyRecord k;
  k.id = std::string(id);
  k.user_id = std::string(user_id);
  k.name = fmt::format("key {}", id);
  k.key_hash = fmt::format("hash_{}", id);
  k.key_prefix = "ai_AbCd";
  k.created_at = created_at;
  return k;
}

RefreshTokenRecord make_token(std::string_view id, std::string_view user_id, std::string_view family,
                              std::int64_t expires_at = kT0 + 1'000'000) {
  RefreshTokenRecord t;
  t.id = std::string(id);
  t.user_id = std::string(user_id);
  t.family_id = std::string(family);
  t.token_hash = fmt::format("hash_{}", id);
  t.expires_at = expires_at;
  t.created_at = kT0;
  return t;
}

class StoreIdentityTest : public ::testing::TestWithParam<Dialect> {
 protected:
  void SetUp() override {
    std::string url;
    if (GetParam() == Dialect::kPostgres) {
      const char* env = std::getenv("PARLEY_TEST_POSTGRES_URL");
      if (env == nullptr || *env == '\0') {
        GTEST_SKIP() << "PostgreSQL backend skipped: PARLEY_TEST_POSTGRES_URL is not set";
      }
      url = env;
    }
    DatabaseOptions options;
    options.pool_size = 8;
    auto scratch = ScratchDatabase::open(GetParam(), url, options);
    ASSERT_TRUE(scratch) << scratch.error().message;
    scratch_ = std::move(*scratch);
    auto migrated = migrate(db());
    ASSERT_TRUE(migrated) << migrated.error().message;
  }

  Database& db() { return scratch_->db(); }

  UserRecord create_user(std::string_view name, std::int64_t created_at = kT0) {
    UserStore users(db());
    auto created = users.create(make_user(name, created_at));
    EXPECT_TRUE(created) << created.error().message;
    return created ? *created : UserRecord{};
  }

  std::unique_ptr<ScratchDatabase> scratch_;
};

// ---- users -----------------------------------------------------------------------------------

TEST_P(StoreIdentityTest, UserRoundTripsAndEmailIsLowerCased) {
  UserStore users(db());
  UserRecord in = make_user("Alice");
  in.phone_number = "+15551234567";
  in.role = "manager";
  auto created = users.create(in);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->email, "alice@example.com");

  auto got = users.get_by_id("usr_Alice");
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_TRUE(got->has_value());
  const UserRecord& u = **got;
  EXPECT_EQ(u.id, "usr_Alice");
  EXPECT_EQ(u.username, "Alice");
  EXPECT_EQ(u.email, "alice@example.com");
  EXPECT_EQ(u.phone_number, std::optional<std::string>("+15551234567"));
  EXPECT_EQ(u.password_hash, in.password_hash);
  EXPECT_EQ(u.role, "manager");
  EXPECT_TRUE(u.is_active);
  EXPECT_EQ(u.created_at, kT0);
  EXPECT_EQ(u.updated_at, kT0);

  auto missing = users.get_by_id("usr_nobody");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreIdentityTest, UsernameAndEmailLookupsIgnoreCase) {
  create_user("Alice");
  UserStore users(db());
  auto by_name = users.get_by_username("aLICE");
  ASSERT_TRUE(by_name);
  ASSERT_TRUE(by_name->has_value());
  EXPECT_EQ((*by_name)->username, "Alice");  // kept as typed

  auto by_email = users.get_by_email("ALICE@example.com");
  ASSERT_TRUE(by_email);
  ASSERT_TRUE(by_email->has_value());
  EXPECT_EQ((*by_email)->id, "usr_Alice");

  auto nobody = users.get_by_username("alic");
  ASSERT_TRUE(nobody);
  EXPECT_FALSE(nobody->has_value());
}

TEST_P(StoreIdentityTest, DuplicateUsernameOrEmailIsConflictNamingTheField) {
  create_user("bob");
  UserStore users(db());

  UserRecord same_name = make_user("BOB");
  same_name.id = "usr_other";
  same_name.email = "different@example.com";
  auto name_taken = users.create(same_name);
  ASSERT_FALSE(name_taken);
  EXPECT_EQ(name_taken.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(name_taken.error().param, std::optional<std::string>("username"));

  UserRecord same_email = make_user("robert");
  same_email.email = "BOB@example.com";
  auto email_taken = users.create(same_email);
  ASSERT_FALSE(email_taken);
  EXPECT_EQ(email_taken.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(email_taken.error().param, std::optional<std::string>("email"));

  UserRecord same_id = make_user("carol");
  same_id.id = "usr_bob";
  auto id_taken = users.create(same_id);
  ASSERT_FALSE(id_taken);
  EXPECT_EQ(id_taken.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(id_taken.error().param, std::optional<std::string>("id"));

  auto count = users.count_users();
  ASSERT_TRUE(count);
  EXPECT_EQ(*count, 1);
}

TEST_P(StoreIdentityTest, UnknownRoleIsRejectedByTheSchema) {
  UserRecord u = make_user("eve");
  u.role = "superuser";
  auto r = UserStore(db()).create(u);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kDatabase);
}

TEST_P(StoreIdentityTest, ListPaginatesSearchesAndCounts) {
  for (int i = 0; i < 25; ++i) {
    UserRecord u = make_user(fmt::format("user_{:02}", i), kT0 + i);
    if (i % 5 == 0) u.email = fmt::format("boss{}@Corp.example", i);
    ASSERT_TRUE(UserStore(db()).create(u));
  }
  UserStore users(db());

  auto first = users.list({.page = {.limit = 10, .offset = 0}});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->total, 25);
  ASSERT_EQ(first->items.size(), 10u);
  EXPECT_EQ(first->items.front().username, "user_00");  // oldest first
  EXPECT_EQ(first->items.back().username, "user_09");

  auto last = users.list({.page = {.limit = 10, .offset = 20}});
  ASSERT_TRUE(last);
  EXPECT_EQ(last->total, 25);
  ASSERT_EQ(last->items.size(), 5u);
  EXPECT_EQ(last->items.back().username, "user_24");

  auto search = users.list({.page = {.limit = 5, .offset = 0}, .search = "USER_1"});
  ASSERT_TRUE(search);
  EXPECT_EQ(search->total, 10);  // user_10 .. user_19
  ASSERT_EQ(search->items.size(), 5u);
  EXPECT_EQ(search->items.front().username, "user_10");

  auto by_domain = users.list({.page = {.limit = 50, .offset = 0}, .search = "corp.EXAMPLE"});
  ASSERT_TRUE(by_domain);
  EXPECT_EQ(by_domain->total, 5);
  EXPECT_EQ(by_domain->items.size(), 5u);

  // LIKE wildcards in the search are literal characters.
  auto percent = users.list({.page = {.limit = 50, .offset = 0}, .search = "%"});
  ASSERT_TRUE(percent);
  EXPECT_EQ(percent->total, 0);
  auto underscore = users.list({.page = {.limit = 50, .offset = 0}, .search = "r_0"});
  ASSERT_TRUE(underscore);
  EXPECT_EQ(underscore->total, 10);  // "user_0x" contains "r_0"; "_" matches only itself

  auto clamped = users.list({.page = {.limit = -3, .offset = -10}});
  ASSERT_TRUE(clamped);
  EXPECT_EQ(clamped->total, 25);
  EXPECT_TRUE(clamped->items.empty());
}

TEST_P(StoreIdentityTest, UpdateChangesOnlyGivenFields) {
  UserRecord alice = make_user("alice");
  alice.phone_number = "+15550000000";
  ASSERT_TRUE(UserStore(db()).create(alice));
  create_user("bob");
  UserStore users(db());

  UserUpdate patch;
  patch.username = "Alicia";
  patch.email = "ALICIA@Example.com";
  patch.phone_number = std::optional<std::string>();  // clear
  patch.role = "admin";
  patch.is_active = false;
  auto updated = users.update("usr_alice", patch, kT0 + 500);
  ASSERT_TRUE(updated) << updated.error().message;
  ASSERT_TRUE(updated->has_value());
  EXPECT_EQ((*updated)->username, "Alicia");
  EXPECT_EQ((*updated)->email, "alicia@example.com");
  EXPECT_EQ((*updated)->phone_number, std::nullopt);
  EXPECT_EQ((*updated)->role, "admin");
  EXPECT_FALSE((*updated)->is_active);
  EXPECT_EQ((*updated)->password_hash, alice.password_hash);
  EXPECT_EQ((*updated)->created_at, kT0);
  EXPECT_EQ((*updated)->updated_at, kT0 + 500);

  auto by_new_name = users.get_by_username("ALICIA");
  ASSERT_TRUE(by_new_name);
  EXPECT_TRUE(by_new_name->has_value());
  auto by_old_name = users.get_by_username("alice");
  ASSERT_TRUE(by_old_name);
  EXPECT_FALSE(by_old_name->has_value());

  UserUpdate password;
  password.password_hash = "new-hash";
  auto pw = users.update("usr_alice", password, kT0 + 600);
  ASSERT_TRUE(pw);
  EXPECT_EQ((*pw)->password_hash, "new-hash");
  EXPECT_EQ((*pw)->username, "Alicia");

  auto unchanged = users.update("usr_alice", UserUpdate{}, kT0 + 999);
  ASSERT_TRUE(unchanged);
  ASSERT_TRUE(unchanged->has_value());
  EXPECT_EQ((*unchanged)->updated_at, kT0 + 600);  // an empty patch writes nothing

  UserUpdate steal;
  steal.email = "Bob@example.com";
  auto conflict = users.update("usr_alice", steal, kT0 + 700);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(conflict.error().param, std::optional<std::string>("email"));

  auto missing = users.update("usr_nobody", patch, kT0);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreIdentityTest, RemoveDeletesOnceAndCountFollows) {
  create_user("alice");
  create_user("bob");
  UserStore users(db());
  auto before = users.count_users();
  ASSERT_TRUE(before);
  EXPECT_EQ(*before, 2);

  auto removed = users.remove("usr_alice");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  auto again = users.remove("usr_alice");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto gone = users.get_by_id("usr_alice");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
  auto after = users.count_users();
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, 1);
}

TEST_P(StoreIdentityTest, FirstUserBecomesAdminOthersKeepTheirRole) {
  UserStore users(db());
  auto first = users.create_first_as_admin(make_user("first"));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->role, "admin");
  auto second = users.create_first_as_admin(make_user("second"));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->role, "user");
  auto stored = users.get_by_id("usr_first");
  ASSERT_TRUE(stored);
  EXPECT_EQ((*stored)->role, "admin");
}

TEST_P(StoreIdentityTest, ConcurrentFirstRegistrationsMakeExactlyOneAdmin) {
  constexpr int kThreads = 6;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      UserStore users(db());
      if (!users.create_first_as_admin(make_user(fmt::format("racer{}", i)))) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto admins = db().query("SELECT COUNT(*) FROM users WHERE role = 'admin'");
  ASSERT_TRUE(admins);
  EXPECT_EQ(admins->rows.at(0).get_int(0), 1);
  EXPECT_EQ(*UserStore(db()).count_users(), kThreads);
}

TEST_P(StoreIdentityTest, StoresJoinTheCallersTransaction) {
  create_user("owner");
  ASSERT_TRUE(ApiKeyStore(db()).create(make_key("k1", "usr_owner")));
  Status st = db().transaction([](Connection& c) -> Status {
    UserStore users(c);
    ApiKeyStore keys(c);
    if (auto u = users.create(make_user("newbie")); !u) return std::unexpected(u.error());
    ApiKeyRecord clash = make_key("k2", "usr_newbie");
    clash.key_hash = "hash_k1";  // duplicate: the whole transaction must roll back
    if (auto k = keys.create(clash); !k) return std::unexpected(k.error());
    return {};
  });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(st.error().param, std::optional<std::string>("key_hash"));
  auto newbie = UserStore(db()).get_by_id("usr_newbie");
  ASSERT_TRUE(newbie);
  EXPECT_FALSE(newbie->has_value());
}

// ---- preferences -------------------------------------------------------------------------------

TEST_P(StoreIdentityTest, PreferencesUpsertInsertsThenReplaces) {
  create_user("alice");
  PreferenceStore prefs(db());
  auto none = prefs.get("usr_alice");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());

  PreferencesRecord p;
  p.user_id = "usr_alice";
  p.language = "es";
  p.tts_voice = "nova";
  p.auto_reply_enabled = true;
  p.conversation_timeout = 600;
  p.notifications = false;
  p.default_model = "gpt-4o-mini";
  p.system_prompt = "Be brief.";
  p.updated_at = kT0;
  auto inserted = prefs.upsert(p);
  ASSERT_TRUE(inserted) << inserted.error().message;
  EXPECT_EQ(inserted->language, "es");

  auto got = prefs.get("usr_alice");
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->tts_voice, "nova");
  EXPECT_TRUE((*got)->auto_reply_enabled);
  EXPECT_EQ((*got)->conversation_timeout, 600);
  EXPECT_FALSE((*got)->notifications);
  EXPECT_EQ((*got)->default_model, std::optional<std::string>("gpt-4o-mini"));
  EXPECT_EQ((*got)->system_prompt, std::optional<std::string>("Be brief."));
  EXPECT_EQ((*got)->updated_at, kT0);

  p.language = "en";
  p.default_model.reset();
  p.system_prompt.reset();
  p.notifications = true;
  p.updated_at = kT0 + 1;
  auto replaced = prefs.upsert(p);
  ASSERT_TRUE(replaced) << replaced.error().message;
  EXPECT_EQ(replaced->language, "en");
  EXPECT_EQ(replaced->default_model, std::nullopt);
  EXPECT_EQ(replaced->system_prompt, std::nullopt);
  EXPECT_TRUE(replaced->notifications);
  EXPECT_EQ(replaced->updated_at, kT0 + 1);
  auto rows = db().query("SELECT COUNT(*) FROM user_preferences");
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->rows.at(0).get_int(0), 1);
}

TEST_P(StoreIdentityTest, PreferencesForUnknownUserIsNotFound) {
  PreferencesRecord p;
  p.user_id = "usr_ghost";
  p.language = "en";
  p.tts_voice = "alloy";
  p.conversation_timeout = 300;
  auto r = PreferenceStore(db()).upsert(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kNotFound);
}

// ---- API keys ----------------------------------------------------------------------------------

TEST_P(StoreIdentityTest, ApiKeyCreateAndLookups) {
  create_user("alice");
  ApiKeyStore keys(db());
  ApiKeyRecord k = make_key("k1", "usr_alice");
  k.rate_limit_per_minute = 20;
  k.expires_at = kT0 + 86'400'000;
  auto created = keys.create(k);
  ASSERT_TRUE(created) << created.error().message;

  auto by_id = keys.get_by_id("k1");
  ASSERT_TRUE(by_id);
  ASSERT_TRUE(by_id->has_value());
  const ApiKeyRecord& got = **by_id;
  EXPECT_EQ(got.user_id, "usr_alice");
  EXPECT_EQ(got.name, "key k1");
  EXPECT_EQ(got.key_hash, "hash_k1");
  EXPECT_EQ(got.key_prefix, "ai_AbCd");
  EXPECT_EQ(got.rate_limit_per_minute, std::optional<std::int64_t>(20));
  EXPECT_TRUE(got.is_active);
  EXPECT_EQ(got.expires_at, std::optional<std::int64_t>(kT0 + 86'400'000));
  EXPECT_EQ(got.last_used_at, std::nullopt);
  EXPECT_EQ(got.revoked_at, std::nullopt);
  EXPECT_EQ(got.created_at, kT0);

  auto by_hash = keys.get_by_hash("hash_k1");
  ASSERT_TRUE(by_hash);
  ASSERT_TRUE(by_hash->has_value());
  EXPECT_EQ((*by_hash)->id, "k1");
  auto no_hash = keys.get_by_hash("hash_nope");
  ASSERT_TRUE(no_hash);
  EXPECT_FALSE(no_hash->has_value());

  ApiKeyRecord dup = make_key("k2", "usr_alice");
  dup.key_hash = "hash_k1";
  auto conflict = keys.create(dup);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(conflict.error().param, std::optional<std::string>("key_hash"));

  auto orphan = keys.create(make_key("k3", "usr_ghost"));
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().kind, ErrorKind::kNotFound);
}

TEST_P(StoreIdentityTest, ApiKeyListsAreNewestFirstAndPaginated) {
  create_user("alice");
  create_user("bob");
  ApiKeyStore keys(db());
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(keys.create(make_key(fmt::format("a{}", i), "usr_alice", kT0 + i)));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(keys.create(make_key(fmt::format("b{}", i), "usr_bob", kT0 + 100 + i)));

  auto alice_page = keys.list_for_user("usr_alice", {.limit = 3, .offset = 0});
  ASSERT_TRUE(alice_page) << alice_page.error().message;
  EXPECT_EQ(alice_page->total, 7);
  ASSERT_EQ(alice_page->items.size(), 3u);
  EXPECT_EQ(alice_page->items[0].id, "a6");
  EXPECT_EQ(alice_page->items[2].id, "a4");
  auto alice_rest = keys.list_for_user("usr_alice", {.limit = 10, .offset = 6});
  ASSERT_TRUE(alice_rest);
  ASSERT_EQ(alice_rest->items.size(), 1u);
  EXPECT_EQ(alice_rest->items[0].id, "a0");

  auto all = keys.list_all({.limit = 4, .offset = 0});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->total, 10);
  ASSERT_EQ(all->items.size(), 4u);
  EXPECT_EQ(all->items[0].id, "b2");

  auto nobody = keys.list_for_user("usr_ghost", {});
  ASSERT_TRUE(nobody);
  EXPECT_EQ(nobody->total, 0);
  EXPECT_TRUE(nobody->items.empty());
}

TEST_P(StoreIdentityTest, ApiKeyUpdateAndRevoke) {
  create_user("alice");
  ApiKeyStore keys(db());
  ApiKeyRecord k = make_key("k1", "usr_alice");
  k.rate_limit_per_minute = 10;
  ASSERT_TRUE(keys.create(k));

  ApiKeyUpdate patch;
  patch.name = "renamed";
  patch.rate_limit_per_minute = std::optional<std::int64_t>(99);
  auto updated = keys.update("k1", patch);
  ASSERT_TRUE(updated) << updated.error().message;
  ASSERT_TRUE(updated->has_value());
  EXPECT_EQ((*updated)->name, "renamed");
  EXPECT_EQ((*updated)->rate_limit_per_minute, std::optional<std::int64_t>(99));
  EXPECT_TRUE((*updated)->is_active);

  ApiKeyUpdate to_default;
  to_default.rate_limit_per_minute = std::optional<std::int64_t>();
  to_default.is_active = false;
  auto defaulted = keys.update("k1", to_default);
  ASSERT_TRUE(defaulted);
  EXPECT_EQ((*defaulted)->rate_limit_per_minute, std::nullopt);
  EXPECT_FALSE((*defaulted)->is_active);
  EXPECT_EQ((*defaulted)->name, "renamed");

  auto missing = keys.update("nope", patch);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());

  ASSERT_TRUE(keys.update("k1", ApiKeyUpdate{.is_active = true}));
  auto revoked = keys.revoke("k1", kT0 + 10);
  ASSERT_TRUE(revoked);
  EXPECT_TRUE(*revoked);
  auto again = keys.revoke("k1", kT0 + 20);
  ASSERT_TRUE(again);
  EXPECT_TRUE(*again);
  auto after = keys.get_by_id("k1");
  ASSERT_TRUE(after);
  EXPECT_FALSE((*after)->is_active);
  EXPECT_EQ((*after)->revoked_at, std::optional<std::int64_t>(kT0 + 10));  // first revocation kept
  auto unknown = keys.revoke("nope", kT0);
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
}

TEST_P(StoreIdentityTest, ApiKeyLastUsedIsWrittenInBatchesAndNeverMovesBack) {
  create_user("alice");
  ApiKeyStore keys(db());
  ASSERT_TRUE(keys.create(make_key("k1", "usr_alice")));
  ASSERT_TRUE(keys.create(make_key("k2", "usr_alice")));

  const std::vector<std::pair<std::string, std::int64_t>> batch = {
      {"k1", kT0 + 50}, {"k2", kT0 + 70}, {"ghost", kT0 + 80}, {"k1", kT0 + 40}};
  Status st = keys.update_last_used(batch);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ((*keys.get_by_id("k1"))->last_used_at, std::optional<std::int64_t>(kT0 + 50));
  EXPECT_EQ((*keys.get_by_id("k2"))->last_used_at, std::optional<std::int64_t>(kT0 + 70));

  const std::vector<std::pair<std::string, std::int64_t>> older = {{"k2", kT0 + 1}};
  ASSERT_TRUE(keys.update_last_used(older));
  EXPECT_EQ((*keys.get_by_id("k2"))->last_used_at, std::optional<std::int64_t>(kT0 + 70));
  EXPECT_TRUE(keys.update_last_used({}));
}

// ---- refresh tokens ----------------------------------------------------------------------------

TEST_P(StoreIdentityTest, RefreshTokenCreateAndFind) {
  create_user("alice");
  RefreshTokenStore tokens(db());
  ASSERT_TRUE(tokens.create(make_token("t1", "usr_alice", "fam1")));
  auto found = tokens.find_by_hash("hash_t1");
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, "t1");
  EXPECT_EQ((*found)->user_id, "usr_alice");
  EXPECT_EQ((*found)->family_id, "fam1");
  EXPECT_EQ((*found)->expires_at, kT0 + 1'000'000);
  EXPECT_EQ((*found)->created_at, kT0);
  EXPECT_EQ((*found)->rotated_at, std::nullopt);
  EXPECT_EQ((*found)->revoked_at, std::nullopt);

  auto none = tokens.find_by_hash("hash_zzz");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());

  RefreshTokenRecord dup = make_token("t2", "usr_alice", "fam1");
  dup.token_hash = "hash_t1";
  Status conflict = tokens.create(dup);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(conflict.error().param, std::optional<std::string>("token_hash"));
}

TEST_P(StoreIdentityTest, MarkRotatedWinsOnlyOnce) {
  create_user("alice");
  RefreshTokenStore tokens(db());
  ASSERT_TRUE(tokens.create(make_token("t1", "usr_alice", "fam1")));
  auto first = tokens.mark_rotated("t1", kT0 + 1);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(*first);
  auto second = tokens.mark_rotated("t1", kT0 + 2);
  ASSERT_TRUE(second);
  EXPECT_FALSE(*second);
  EXPECT_EQ((*tokens.find_by_hash("hash_t1"))->rotated_at, std::optional<std::int64_t>(kT0 + 1));

  ASSERT_TRUE(tokens.create(make_token("t2", "usr_alice", "fam2")));
  ASSERT_TRUE(tokens.revoke_family("fam2", kT0));
  auto revoked = tokens.mark_rotated("t2", kT0 + 3);
  ASSERT_TRUE(revoked);
  EXPECT_FALSE(*revoked);  // a revoked token cannot be rotated
  auto unknown = tokens.mark_rotated("nope", kT0);
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
}

TEST_P(StoreIdentityTest, ConcurrentMarkRotatedHasExactlyOneWinner) {
  create_user("alice");
  RefreshTokenStore setup(db());
  constexpr int kTokens = 5;
  constexpr int kThreads = 6;
  for (int t = 0; t < kTokens; ++t)
    ASSERT_TRUE(setup.create(make_token(fmt::format("t{}", t), "usr_alice", "f")));
  std::atomic<int> wins[kTokens] = {};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      RefreshTokenStore tokens(db());
      for (int t = 0; t < kTokens; ++t) {
        auto won = tokens.mark_rotated(fmt::format("t{}", t), kT0 + i);
        if (!won) {
          ++errors;
        } else if (*won) {
          ++wins[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  for (int t = 0; t < kTokens; ++t) EXPECT_EQ(wins[t].load(), 1) << "token " << t;
}

TEST_P(StoreIdentityTest, RevokeFamilyUserAndDeleteExpired) {
  create_user("alice");
  create_user("bob");
  RefreshTokenStore tokens(db());
  ASSERT_TRUE(tokens.create(make_token("a1", "usr_alice", "famA")));
  ASSERT_TRUE(tokens.create(make_token("a2", "usr_alice", "famA")));
  ASSERT_TRUE(tokens.create(make_token("a3", "usr_alice", "famB", kT0 - 1)));  // already expired
  ASSERT_TRUE(tokens.create(make_token("b1", "usr_bob", "famC")));

  auto family = tokens.revoke_family("famA", kT0 + 5);
  ASSERT_TRUE(family);
  EXPECT_EQ(*family, 2);
  auto family_again = tokens.revoke_family("famA", kT0 + 6);
  ASSERT_TRUE(family_again);
  EXPECT_EQ(*family_again, 0);
  EXPECT_EQ((*tokens.find_by_hash("hash_a1"))->revoked_at, std::optional<std::int64_t>(kT0 + 5));
  EXPECT_EQ((*tokens.find_by_hash("hash_a3"))->revoked_at, std::nullopt);

  auto user = tokens.revoke_all_for_user("usr_alice", kT0 + 7);
  ASSERT_TRUE(user);
  EXPECT_EQ(*user, 1);  // only a3 was still live
  EXPECT_EQ((*tokens.find_by_hash("hash_b1"))->revoked_at, std::nullopt);

  auto expired = tokens.delete_expired(kT0);
  ASSERT_TRUE(expired);
  EXPECT_EQ(*expired, 1);
  auto a3 = tokens.find_by_hash("hash_a3");
  ASSERT_TRUE(a3);
  EXPECT_FALSE(a3->has_value());
}

// ---- cascade -----------------------------------------------------------------------------------

TEST_P(StoreIdentityTest, DeletingAUserDeletesEverythingTheyOwn) {
  create_user("alice");
  create_user("bob");
  PreferencesRecord p;
  p.user_id = "usr_alice";
  p.language = "en";
  p.tts_voice = "alloy";
  p.conversation_timeout = 300;
  ASSERT_TRUE(PreferenceStore(db()).upsert(p));
  ApiKeyStore keys(db());
  ASSERT_TRUE(keys.create(make_key("ka", "usr_alice")));
  ASSERT_TRUE(keys.create(make_key("kb", "usr_bob")));
  RefreshTokenStore tokens(db());
  ASSERT_TRUE(tokens.create(make_token("ta", "usr_alice", "f1")));
  ASSERT_TRUE(tokens.create(make_token("tb", "usr_bob", "f2")));
  AuditStore audit(db());
  ASSERT_TRUE(audit.append(AuditEvent{
      .id = "ev1", .actor_user_id = "usr_alice", .action = "auth.login.succeeded", .created_at = kT0}));

  auto removed = UserStore(db()).remove("usr_alice");
  ASSERT_TRUE(removed);
  ASSERT_TRUE(*removed);

  EXPECT_FALSE(PreferenceStore(db()).get("usr_alice")->has_value());
  EXPECT_FALSE(keys.get_by_id("ka")->has_value());
  EXPECT_FALSE(keys.get_by_hash("hash_ka")->has_value());
  EXPECT_FALSE(tokens.find_by_hash("hash_ta")->has_value());
  // Bob's rows and the audit trail stay.
  EXPECT_TRUE(keys.get_by_id("kb")->has_value());
  EXPECT_TRUE(tokens.find_by_hash("hash_tb")->has_value());
  auto events = audit.list({});
  ASSERT_TRUE(events);
  EXPECT_EQ(events->total, 1);
}

// ---- audit -------------------------------------------------------------------------------------

TEST_P(StoreIdentityTest, AuditListsNewestFirstWithFiltersAndTotals) {
  AuditStore audit(db());
  for (int i = 0; i < 6; ++i) {
    AuditEvent e;
    e.id = fmt::format("ev{}", i);
    e.actor_user_id = i % 2 == 0 ? std::optional<std::string>("usr_admin") : std::nullopt;
    e.action = i < 4 ? "auth.login.failed" : "api_key.revoked";
    e.target_type = "user";
    e.target_id = fmt::format("usr_{}", i);
    e.ip = "127.0.0.1";
    e.request_id = fmt::format("req-{}", i);
    e.detail = R"({"reason":"bad password"})";
    e.created_at = kT0 + i;
    ASSERT_TRUE(audit.append(e));
  }
  AuditEvent minimal;
  minimal.id = "ev_min";
  minimal.action = "auth.logout";
  minimal.created_at = kT0 - 1;
  ASSERT_TRUE(audit.append(minimal));

  auto page = audit.list({.page = {.limit = 3, .offset = 0}});
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->total, 7);
  ASSERT_EQ(page->items.size(), 3u);
  EXPECT_EQ(page->items[0].id, "ev5");
  EXPECT_EQ(page->items[2].id, "ev3");
  const AuditEvent& e5 = page->items[0];
  EXPECT_EQ(e5.actor_user_id, std::nullopt);
  EXPECT_EQ(e5.action, "api_key.revoked");
  EXPECT_EQ(e5.target_type, std::optional<std::string>("user"));
  EXPECT_EQ(e5.target_id, std::optional<std::string>("usr_5"));
  EXPECT_EQ(e5.ip, std::optional<std::string>("127.0.0.1"));
  EXPECT_EQ(e5.request_id, std::optional<std::string>("req-5"));
  EXPECT_EQ(e5.detail, std::optional<std::string>(R"({"reason":"bad password"})"));
  EXPECT_EQ(e5.created_at, kT0 + 5);

  auto last = audit.list({.page = {.limit = 3, .offset = 6}});
  ASSERT_TRUE(last);
  ASSERT_EQ(last->items.size(), 1u);
  EXPECT_EQ(last->items[0].id, "ev_min");
  EXPECT_EQ(last->items[0].target_id, std::nullopt);

  auto by_actor = audit.list({.actor_user_id = "usr_admin"});
  ASSERT_TRUE(by_actor);
  EXPECT_EQ(by_actor->total, 3);
  auto by_both = audit.list({.actor_user_id = "usr_admin", .action = "auth.login.failed"});
  ASSERT_TRUE(by_both);
  EXPECT_EQ(by_both->total, 2);
  ASSERT_EQ(by_both->items.size(), 2u);
  EXPECT_EQ(by_both->items[0].id, "ev2");

  Status dup = audit.append(minimal);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().kind, ErrorKind::kConflict);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreIdentityTest, ::testing::Values(Dialect::kSqlite, Dialect::kPostgres),
                         [](const ::testing::TestParamInfo<Dialect>& param_info) {
                           return std::string(dialect_name(param_info.param));
                         });

}  // namespace
}  // namespace parley::store
