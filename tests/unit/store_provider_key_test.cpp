// The provider key vault's table on both backends, against the real embedded migrations.
// PostgreSQL cases run when PARLEY_TEST_POSTGRES_URL is set and are skipped otherwise.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backend_fixture.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "store/provider_key_store.hpp"
#include "store/scratch_database.hpp"
#include "store/user_store.hpp"

namespace parley::store {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000;

ProviderKeyRecord make_key(std::string_view user_id, std::string_view provider, std::string_view token,
                           std::int64_t at = kT0) {
  return ProviderKeyRecord{
      std::string(user_id), std::string(provider), std::string(token), "sk-…abcd", at, at};
}

class StoreProviderKeyTest : public test::BackendTest {
 protected:
  void create_user(std::string_view id) {
    UserRecord u;
    u.id = std::string(id);
    u.username = fmt::format("name_{}", id);
    u.email = fmt::format("{}@example.com", id);
    u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    u.role = "user";
    u.created_at = kT0;
    u.updated_at = kT0;
    UserStore users(db());
    auto created = users.create(u);
    ASSERT_TRUE(created) << created.error().message;
  }
};

TEST_P(StoreProviderKeyTest, UpsertInsertsThenReplacesTokenHintAndUpdatedAtButKeepsCreatedAt) {
  create_user("u1");
  ProviderKeyStore keys(db());
  auto first = keys.upsert(make_key("u1", "openai", "tok-1", kT0));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->token, "tok-1");
  EXPECT_EQ(first->created_at, kT0);

  ProviderKeyRecord second = make_key("u1", "openai", "tok-2", kT0 + 5000);
  second.key_hint = "sk-…wxyz";
  auto replaced = keys.upsert(second);
  ASSERT_TRUE(replaced) << replaced.error().message;
  EXPECT_EQ(replaced->token, "tok-2");
  EXPECT_EQ(replaced->key_hint, "sk-…wxyz");
  EXPECT_EQ(replaced->created_at, kT0);
  EXPECT_EQ(replaced->updated_at, kT0 + 5000);

  auto got = keys.get("u1", "openai");
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->token, "tok-2");
  EXPECT_EQ((*got)->key_hint, "sk-…wxyz");
  EXPECT_EQ(*keys.count(), 1);
}

TEST_P(StoreProviderKeyTest, KeysAreSeparatePerUserAndProvider) {
  create_user("u1");
  create_user("u2");
  ProviderKeyStore keys(db());
  ASSERT_TRUE(keys.upsert(make_key("u1", "openai", "a")));
  ASSERT_TRUE(keys.upsert(make_key("u1", "mock", "b")));
  ASSERT_TRUE(keys.upsert(make_key("u2", "openai", "c")));
  EXPECT_EQ((*keys.get("u1", "mock"))->token, "b");
  EXPECT_EQ((*keys.get("u2", "openai"))->token, "c");
  EXPECT_FALSE(*keys.get("u2", "mock"));
  auto listed = keys.list_for_user("u1");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].provider, "mock");
  EXPECT_EQ((*listed)[1].provider, "openai");
}

TEST_P(StoreProviderKeyTest, KeyForUnknownUserIsNotFound) {
  ProviderKeyStore keys(db());
  auto r = keys.upsert(make_key("ghost", "openai", "t"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kNotFound);
  auto i = keys.insert_if_absent(make_key("ghost", "openai", "t"));
  ASSERT_FALSE(i);
  EXPECT_EQ(i.error().kind, ErrorKind::kNotFound);
}

TEST_P(StoreProviderKeyTest, InsertIfAbsentNeverReplaces) {
  create_user("u1");
  ProviderKeyStore keys(db());
  auto first = keys.insert_if_absent(make_key("u1", "openai", "one"));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(*first);
  auto second = keys.insert_if_absent(make_key("u1", "openai", "two"));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(*second);
  EXPECT_EQ((*keys.get("u1", "openai"))->token, "one");
}

TEST_P(StoreProviderKeyTest, RemoveDeletesOnce) {
  create_user("u1");
  ProviderKeyStore keys(db());
  ASSERT_TRUE(keys.upsert(make_key("u1", "openai", "t")));
  EXPECT_TRUE(*keys.remove("u1", "openai"));
  EXPECT_FALSE(*keys.remove("u1", "openai"));
  EXPECT_FALSE(*keys.get("u1", "openai"));
}

TEST_P(StoreProviderKeyTest, DeletingTheUserDeletesTheirKeys) {
  create_user("u1");
  create_user("u2");
  ProviderKeyStore keys(db());
  ASSERT_TRUE(keys.upsert(make_key("u1", "openai", "a")));
  ASSERT_TRUE(keys.upsert(make_key("u1", "mock", "b")));
  ASSERT_TRUE(keys.upsert(make_key("u2", "openai", "c")));
  UserStore users(db());
  ASSERT_TRUE(*users.remove("u1"));
  EXPECT_EQ(*keys.count(), 1);
  EXPECT_FALSE(*keys.get("u1", "openai"));
  EXPECT_TRUE(*keys.get("u2", "openai"));
}

TEST_P(StoreProviderKeyTest, UpdateTokenIfUnchangedIsACompareAndSet) {
  create_user("u1");
  ProviderKeyStore keys(db());
  ASSERT_TRUE(keys.upsert(make_key("u1", "openai", "old", kT0)));
  auto stale = keys.update_token_if_unchanged("u1", "openai", "not-the-token", "new");
  ASSERT_TRUE(stale);
  EXPECT_FALSE(*stale);
  EXPECT_EQ((*keys.get("u1", "openai"))->token, "old");

  auto swapped = keys.update_token_if_unchanged("u1", "openai", "old", "new");
  ASSERT_TRUE(swapped);
  EXPECT_TRUE(*swapped);
  auto row = *keys.get("u1", "openai");
  EXPECT_EQ(row->token, "new");
  EXPECT_EQ(row->updated_at, kT0);  // re-encryption is not a change of key
  EXPECT_EQ(row->key_hint, "sk-…abcd");

  auto again = keys.update_token_if_unchanged("u1", "openai", "old", "newer");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto missing = keys.update_token_if_unchanged("u1", "mock", "old", "new");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
}

TEST_P(StoreProviderKeyTest, ListBatchWalksEveryRowOnceInKeyOrder) {
  std::vector<std::pair<std::string, std::string>> expected;
  for (int u = 0; u < 7; ++u) {
    std::string user = fmt::format("u{}", u);
    create_user(user);
    for (std::string provider : {"mock", "openai", "z-other"}) {
      ProviderKeyStore keys(db());
      ASSERT_TRUE(keys.upsert(make_key(user, provider, fmt::format("t-{}-{}", user, provider))));
      expected.emplace_back(user, provider);
    }
  }
  std::sort(expected.begin(), expected.end());
  ProviderKeyStore keys(db());
  std::vector<std::pair<std::string, std::string>> seen;
  std::optional<ProviderKeyCursor> cursor;
  int batches = 0;
  for (;;) {
    auto batch = keys.list_batch(cursor, 4);
    ASSERT_TRUE(batch) << batch.error().message;
    if (batch->empty()) break;
    ++batches;
    ASSERT_LE(batch->size(), 4u);
    for (const auto& row : *batch) {
      seen.emplace_back(row.user_id, row.provider);
      // Updating rows mid-walk must not disturb it.
      ASSERT_TRUE(keys.update_token_if_unchanged(row.user_id, row.provider, row.token, row.token + "-r"));
    }
    cursor = ProviderKeyCursor{batch->back().user_id, batch->back().provider};
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(batches, 6);  // 21 rows in batches of 4
  auto after_last = keys.list_batch(ProviderKeyCursor{"u6", "z-other"}, 4);
  ASSERT_TRUE(after_last);
  EXPECT_TRUE(after_last->empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreProviderKeyTest,
                         ::testing::Values(Dialect::kSqlite, Dialect::kPostgres), test::backend_name);

}  // namespace
}  // namespace parley::store
