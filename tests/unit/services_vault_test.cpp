// The provider key vault service (issue 4): encryption at rest with MultiFernet, masked reads,
// authorization, the decrypted-key cache, rotation and the CSV import of Python-made tokens
// (tests/unit/data/vault/python_tokens.json was produced by Python's cryptography.fernet; see its
// "generated_by"). Runs on SQLite; PostgreSQL too when PARLEY_TEST_POSTGRES_URL is set.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "auth/principal.hpp"
#include "backend_fixture.hpp"
#include "core/clock.hpp"
#include "crypto/fernet.hpp"
#include "crypto/secret.hpp"
#include "services/audit_log.hpp"
#include "services/vault_service.hpp"
#include "store/audit_store.hpp"
#include "store/migrations.hpp"
#include "store/provider_key_store.hpp"
#include "store/scratch_database.hpp"
#include "store/user_store.hpp"

namespace parley::services {
namespace {

namespace json = boost::json;
using store::Dialect;

constexpr std::int64_t kT0 = 1'700'000'500'000;  // unix ms, after every fixture token's timestamp
const RequestMeta kMeta{"req-test", "127.0.0.1"};

std::filesystem::path data_dir() {
  if (const char* root = std::getenv("PARLEY_SOURCE_DIR"); root != nullptr && *root != '\0') {
    return std::filesystem::path(root) / "tests/unit/data";
  }
  return std::filesystem::path(__FILE__).parent_path() / "data";
}

json::value load_json(const std::filesystem::path& relative) {
  std::ifstream in(data_dir() / relative);
  if (!in) ADD_FAILURE() << "cannot open " << (data_dir() / relative);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return json::parse(buffer.str());
}

// The Python-made fixture: keys and tokens.
struct PythonFixture {
  std::string old_key;    // the key the "Python service" used
  std::string other_key;  // a key parley is never given
  struct Row {
    std::string username, key, plaintext, token;
    std::int64_t timestamp = 0;
  };
  std::vector<Row> rows;

  static PythonFixture load() {
    json::object o = load_json("vault/python_tokens.json").as_object();
    PythonFixture f;
    f.old_key = std::string(o.at("old_key").as_string());
    f.other_key = std::string(o.at("other_key").as_string());
    for (const auto& r : o.at("rows").as_array()) {
      const auto& ro = r.as_object();
      f.rows.push_back(Row{std::string(ro.at("username").as_string()), std::string(ro.at("key").as_string()),
                           std::string(ro.at("plaintext").as_string()),
                           std::string(ro.at("token").as_string()), ro.at("timestamp").as_int64()});
    }
    return f;
  }
  const Row& row(std::string_view username) const {
    for (const auto& r : rows) {
      if (r.username == username) return r;
    }
    ADD_FAILURE() << "no fixture row " << username;
    return rows.front();
  }
};

auth::Principal principal(std::string_view user_id, auth::Role role = auth::Role::kUser) {
  auth::Principal p;
  p.user_id = std::string(user_id);
  p.username = std::string(user_id);
  p.role = role;
  return p;
}

crypto::MultiFernet fernet_of(const std::vector<std::string>& keys) {
  std::vector<crypto::FernetKey> parsed;
  for (const auto& k : keys) parsed.push_back(*crypto::FernetKey::parse(k));
  return *crypto::MultiFernet::create(std::move(parsed));
}

// Every substring of `secret` of `n` characters (the integration scan uses 8).
std::vector<std::string> fragments(std::string_view secret, std::size_t n = 8) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i + n <= secret.size(); ++i) out.emplace_back(secret.substr(i, n));
  return out;
}

void expect_no_fragment(std::string_view text, std::string_view secret, std::string_view where) {
  for (const auto& f : fragments(secret)) {
    EXPECT_EQ(text.find(f), std::string_view::npos) << where << " contains a fragment of the key: " << text;
  }
}

class VaultServiceTest : public test::BackendTest {
 protected:
  void SetUp() override {
    open_scratch(true);
    if (IsSkipped() || HasFatalFailure()) return;
    audit_ = std::make_unique<AuditLog>(db(), clock_);
    fixture_ = PythonFixture::load();
    new_key_ = crypto::generate_fernet_key();
  }

  // A vault whose encryption keys are `keys` (the first encrypts).
  std::unique_ptr<VaultService> vault(const std::vector<std::string>& keys, VaultOptions options = {}) {
    return std::make_unique<VaultService>(db(), clock_, *audit_, fernet_of(keys), options);
  }

  std::string create_user(std::string_view username, std::string_view role = "user") {
    store::UserRecord u;
    u.id = fmt::format("id_{}", username);
    u.username = std::string(username);
    u.email = fmt::format("{}@example.com", username);
    u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    u.role = std::string(role);
    u.created_at = kT0;
    u.updated_at = kT0;
    store::UserStore users(db());
    auto created = users.create(u);
    EXPECT_TRUE(created) << created.error().message;
    return u.id;
  }

  // Stores `token` as the user's key directly (what an earlier deployment left behind).
  void put_token(std::string_view user_id, std::string_view provider, std::string_view token) {
    store::ProviderKeyStore keys(db());
    auto saved = keys.upsert(store::ProviderKeyRecord{std::string(user_id), std::string(provider),
                                                      std::string(token), "sk-…", kT0, kT0});
    ASSERT_TRUE(saved) << saved.error().message;
  }

  std::string token_of(std::string_view user_id, std::string_view provider = "openai") {
    store::ProviderKeyStore keys(db());
    auto row = keys.get(user_id, provider);
    EXPECT_TRUE(row && *row);
    return row && *row ? (*row)->token : std::string();
  }

  std::string plaintext_under(const std::string& key, std::string_view token) {
    auto plain = crypto::fernet_decrypt(*crypto::FernetKey::parse(key), token, clock_.now_s());
    return plain ? *plain : std::string("<does not open>");
  }

  std::string decrypted(VaultService& v, std::string_view user_id, std::string_view provider = "openai") {
    auto r = v.decrypted(user_id, provider);
    EXPECT_TRUE(r) << r.error().message;
    if (!r || !*r) return "<none>";
    return std::string((*r)->reveal());
  }

  ManualClock clock_{kT0};
  std::unique_ptr<AuditLog> audit_;
  PythonFixture fixture_;
  std::string new_key_;
};

// ---- input rules -----------------------------------------------------------------------------

TEST(VaultRules, ParseEncryptionKeysTakesCommaSeparatedKeysFirstEncrypts) {
  const std::string a = crypto::generate_fernet_key();
  const std::string b = crypto::generate_fernet_key();
  auto keys = parse_encryption_keys(fmt::format(" {} ,, {} ,", a, b));
  ASSERT_TRUE(keys) << keys.error().message;
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_EQ(keys->primary().encoded(), a);
  auto token = keys->encrypt("payload", 1'700'000'000);
  ASSERT_TRUE(token);
  EXPECT_TRUE(crypto::fernet_decrypt(*crypto::FernetKey::parse(a), *token, 1'700'000'000));
}

TEST(VaultRules, ParseEncryptionKeysRejectsMalformedOrMissingKeysWithoutEchoingThem) {
  const std::string good = crypto::generate_fernet_key();
  const std::string bad = good.substr(0, 40) + "!!!!";
  auto r = parse_encryption_keys(good + "," + bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kValidation);
  EXPECT_EQ(r.error().param, "secrets.encryption_keys");
  EXPECT_NE(r.error().message.find("entry 2"), std::string::npos) << r.error().message;
  expect_no_fragment(r.error().message, bad, "error message");
  expect_no_fragment(r.error().message, good, "error message");
  for (std::string_view empty : {"", " , ,", ","}) {
    auto none = parse_encryption_keys(empty);
    ASSERT_FALSE(none) << empty;
    EXPECT_EQ(none.error().param, "secrets.encryption_keys");
  }
}

TEST(VaultRules, ProviderKeyMustBe8To512PrintableAsciiWithoutWhitespace) {
  EXPECT_TRUE(check_provider_key("12345678"));
  EXPECT_TRUE(check_provider_key(std::string(512, 'k')));
  EXPECT_TRUE(check_provider_key("sk-proj-AbC_123-~!@#$%^&*()"));
  for (std::string bad :
       {std::string("1234567"), std::string(513, 'k'), std::string("sk-abc def1"),
        std::string("sk-abcdef1\n"), std::string("sk-abc\tdef1"), std::string("sk-ключ-12345"),
        std::string("sk-abc\x01"
                    "def1")}) {
    auto s = check_provider_key(bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().kind, ErrorKind::kValidation);
    EXPECT_EQ(s.error().param, "api_key");
  }
}

TEST(VaultRules, ProviderNameIsLowerCaseAsciiUpTo64) {
  EXPECT_TRUE(check_provider_name("openai"));
  EXPECT_TRUE(check_provider_name("my_provider-2"));
  EXPECT_TRUE(check_provider_name(std::string(64, 'p')));
  for (std::string bad : {std::string(), std::string(65, 'p'), std::string("OpenAI"), std::string("open ai"),
                          std::string("a/b"), std::string("x.y")}) {
    auto s = check_provider_name(bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_EQ(s.error().param, "provider");
  }
}

TEST(VaultRules, CsvLinesFollowRfc4180Quoting) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*parse_csv_line("alice,gAAAA"), (V{"alice", "gAAAA"}));
  EXPECT_EQ(*parse_csv_line(" alice , gAAAA "), (V{"alice", "gAAAA"}));
  EXPECT_EQ(*parse_csv_line(R"("alice","gAAAA")"), (V{"alice", "gAAAA"}));
  EXPECT_EQ(*parse_csv_line(R"("al,ice" , "say ""hi""")"), (V{"al,ice", R"(say "hi")"}));
  EXPECT_EQ(*parse_csv_line("a,,b"), (V{"a", "", "b"}));
  EXPECT_EQ(*parse_csv_line("a,"), (V{"a", ""}));
  EXPECT_EQ(*parse_csv_line("only"), (V{"only"}));
  EXPECT_FALSE(parse_csv_line(R"("unterminated,x)"));
  EXPECT_FALSE(parse_csv_line(R"("a"b,c)"));
}

// ---- set, read, delete -------------------------------------------------------------------------

TEST_P(VaultServiceTest, SetStoresOnlyAFernetTokenAndTheMaskedHint) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_});
  const crypto::Secret key("sk-proj-abcdefghijklmnopqrstuvwxyz0123");
  auto saved = v->set(principal(alice), alice, "openai", key, kMeta);
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_EQ(saved->provider, "openai");
  EXPECT_EQ(saved->masked, crypto::mask_secret(key.reveal()));
  EXPECT_EQ(saved->masked,
            "sk-\xE2\x80\xA6"
            "0123");
  EXPECT_EQ(saved->updated_at, kT0);

  store::ProviderKeyStore keys(db());
  auto row = *keys.get(alice, "openai");
  ASSERT_TRUE(row);
  expect_no_fragment(row->token, key.reveal(), "stored token");
  EXPECT_EQ(row->key_hint, saved->masked);
  EXPECT_EQ(plaintext_under(new_key_, row->token), key.reveal());  // a standard Fernet token

  auto masked = v->get_masked(principal(alice), alice, "openai");
  ASSERT_TRUE(masked) << masked.error().message;
  EXPECT_EQ(masked->masked, saved->masked);
  EXPECT_EQ(masked->created_at, kT0);
}

TEST_P(VaultServiceTest, SettingAgainReplacesTheKeyAndKeepsCreatedAt) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_});
  ASSERT_TRUE(v->set(principal(alice), alice, "openai", crypto::Secret("sk-first-key-0001"), kMeta));
  clock_.advance_ms(5000);
  auto second = v->set(principal(alice), alice, "openai", crypto::Secret("sk-second-key-0002"), kMeta);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->created_at, kT0);
  EXPECT_EQ(second->updated_at, kT0 + 5000);
  EXPECT_EQ(decrypted(*v, alice), "sk-second-key-0002");
}

TEST_P(VaultServiceTest, KeysArePerProvider) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_});
  ASSERT_TRUE(v->set(principal(alice), alice, "openai", crypto::Secret("sk-openai-key-0001"), kMeta));
  ASSERT_TRUE(v->set(principal(alice), alice, "mock", crypto::Secret("mock-key-00000002"), kMeta));
  EXPECT_EQ(decrypted(*v, alice, "openai"), "sk-openai-key-0001");
  EXPECT_EQ(decrypted(*v, alice, "mock"), "mock-key-00000002");
  ASSERT_TRUE(v->remove(principal(alice), alice, "mock", kMeta));
  EXPECT_EQ(decrypted(*v, alice, "mock"), "<none>");
  EXPECT_EQ(decrypted(*v, alice, "openai"), "sk-openai-key-0001");
}

TEST_P(VaultServiceTest, MissingKeyIsNotFoundOnReadAndDelete) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_});
  auto got = v->get_masked(principal(alice), alice, "openai");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, ErrorKind::kNotFound);
  EXPECT_NE(got.error().message.find("No API key"), std::string::npos);
  auto removed = v->remove(principal(alice), alice, "openai", kMeta);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().kind, ErrorKind::kNotFound);
  auto none = v->decrypted(alice, "openai");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST_P(VaultServiceTest, InvalidInputIsRejectedAndNothingIsStored) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_});
  auto short_key = v->set(principal(alice), alice, "openai", crypto::Secret("sk-1234"), kMeta);
  ASSERT_FALSE(short_key);
  EXPECT_EQ(short_key.error().param, "api_key");
  auto spaced = v->set(principal(alice), alice, "openai", crypto::Secret("sk-1234 5678"), kMeta);
  ASSERT_FALSE(spaced);
  EXPECT_EQ(spaced.error().param, "api_key");
  expect_no_fragment(spaced.error().message, "sk-1234 5678", "error message");
  auto provider = v->set(principal(alice), alice, "Open AI", crypto::Secret("sk-12345678"), kMeta);
  ASSERT_FALSE(provider);
  EXPECT_EQ(provider.error().param, "provider");
  store::ProviderKeyStore keys(db());
  EXPECT_EQ(*keys.count(), 0);
}

TEST_P(VaultServiceTest, OwnerAndAdminWriteManagerReadsOthersSeeNothing) {
  const std::string alice = create_user("alice");
  const std::string bob = create_user("bobby");
  const std::string mgr = create_user("manager1", "manager");
  const std::string adm = create_user("admin1", "admin");
  auto v = vault({new_key_});
  const crypto::Secret key("sk-alice-key-12345678");

  // Another plain user: 404 for everything, so the key's existence is not revealed.
  auto by_bob = v->set(principal(bob), alice, "openai", key, kMeta);
  ASSERT_FALSE(by_bob);
  EXPECT_EQ(by_bob.error().kind, ErrorKind::kNotFound);
  ASSERT_TRUE(v->set(principal(alice), alice, "openai", key, kMeta));
  auto read_by_bob = v->get_masked(principal(bob), alice, "openai");
  ASSERT_FALSE(read_by_bob);
  EXPECT_EQ(read_by_bob.error().kind, ErrorKind::kNotFound);
  auto delete_by_bob = v->remove(principal(bob), alice, "openai", kMeta);
  ASSERT_FALSE(delete_by_bob);
  EXPECT_EQ(delete_by_bob.error().kind, ErrorKind::kNotFound);

  // A manager reads the masked form, changes nothing.
  auto read_by_mgr = v->get_masked(principal(mgr, auth::Role::kManager), alice, "openai");
  ASSERT_TRUE(read_by_mgr) << read_by_mgr.error().message;
  auto write_by_mgr = v->set(principal(mgr, auth::Role::kManager), alice, "openai", key, kMeta);
  ASSERT_FALSE(write_by_mgr);
  EXPECT_EQ(write_by_mgr.error().kind, ErrorKind::kForbidden);
  auto delete_by_mgr = v->remove(principal(mgr, auth::Role::kManager), alice, "openai", kMeta);
  ASSERT_FALSE(delete_by_mgr);
  EXPECT_EQ(delete_by_mgr.error().kind, ErrorKind::kForbidden);

  // An admin writes anyone's key; a user that does not exist is 404.
  auto by_admin =
      v->set(principal(adm, auth::Role::kAdmin), bob, "openai", crypto::Secret("sk-set-by-admin-1"), kMeta);
  ASSERT_TRUE(by_admin) << by_admin.error().message;
  EXPECT_EQ(decrypted(*v, bob), "sk-set-by-admin-1");
  auto ghost = v->set(principal(adm, auth::Role::kAdmin), "id_nobody", "openai", key, kMeta);
  ASSERT_FALSE(ghost);
  EXPECT_EQ(ghost.error().kind, ErrorKind::kNotFound);
  ASSERT_TRUE(v->remove(principal(adm, auth::Role::kAdmin), alice, "openai", kMeta));
  EXPECT_EQ(decrypted(*v, alice), "<none>");
}

TEST_P(VaultServiceTest, AuditRecordsSetAndDeleteWithoutTheKey) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_});
  const crypto::Secret key("sk-audited-key-987654321");
  ASSERT_TRUE(v->set(principal(alice), alice, "openai", key, kMeta));
  clock_.advance_ms(1000);
  ASSERT_TRUE(v->remove(principal(alice), alice, "openai", kMeta));
  store::AuditStore audit(db());
  auto events = audit.list({});
  ASSERT_TRUE(events) << events.error().message;
  ASSERT_EQ(events->items.size(), 2u);
  EXPECT_EQ(events->items[0].action, "provider_key.deleted");
  EXPECT_EQ(events->items[1].action, "provider_key.set");
  for (const auto& e : events->items) {
    EXPECT_EQ(e.actor_user_id, alice);
    EXPECT_EQ(e.target_id, alice);
    EXPECT_EQ(e.request_id, "req-test");
    EXPECT_EQ(e.detail, R"({"provider":"openai"})");
    expect_no_fragment(e.detail.value_or(""), key.reveal(), "audit detail");
  }
}

// ---- MultiFernet and Python compatibility ----------------------------------------------------

TEST_P(VaultServiceTest, KeysUnderAnOlderEncryptionKeyStillDecrypt) {
  const std::string alice = create_user("alice");
  const std::string old_key = crypto::generate_fernet_key();
  ASSERT_TRUE(
      vault({old_key})->set(principal(alice), alice, "openai", crypto::Secret("sk-under-old-key-1"), kMeta));
  auto rotated_config = vault({new_key_, old_key});
  EXPECT_EQ(decrypted(*rotated_config, alice), "sk-under-old-key-1");
  // New keys are written under the first key.
  ASSERT_TRUE(
      rotated_config->set(principal(alice), alice, "openai", crypto::Secret("sk-under-new-key-2"), kMeta));
  EXPECT_EQ(plaintext_under(new_key_, token_of(alice)), "sk-under-new-key-2");
}

TEST_P(VaultServiceTest, PythonMadeTokensDecrypt) {
  const auto& row = fixture_.row("alice");
  const std::string alice = create_user("alice");
  put_token(alice, "openai", row.token);
  auto v = vault({new_key_, fixture_.old_key});
  EXPECT_EQ(decrypted(*v, alice), row.plaintext);
}

TEST_P(VaultServiceTest, UndecryptableTokenAsksTheUserToSetTheKeyAgain) {
  const std::string alice = create_user("alice");
  const auto& carol = fixture_.row("carol");  // under a key this vault does not have
  put_token(alice, "openai", carol.token);
  auto v = vault({new_key_, fixture_.old_key});
  auto r = v->decrypted(alice, "openai");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kApiKeyDecryptionFailed);
  EXPECT_EQ(r.error().info().code, "API_KEY_DECRYPTION_FAILED");
  EXPECT_NE(r.error().message.find("set your API key again"), std::string::npos) << r.error().message;
  expect_no_fragment(r.error().message, carol.plaintext, "error message");
  expect_no_fragment(r.error().message, carol.token, "error message");
  // Garbage is no different.
  put_token(alice, "openai", "not-a-fernet-token");
  auto garbage = v->decrypted(alice, "openai");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().kind, ErrorKind::kApiKeyDecryptionFailed);
  // The masked form is still readable: it needs no decryption.
  EXPECT_TRUE(v->get_masked(principal(alice), alice, "openai"));
}

// ---- the decrypted-key cache -------------------------------------------------------------------

TEST_P(VaultServiceTest, DecryptedKeysAreCachedForTheTtlOnly) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_});
  ASSERT_TRUE(v->set(principal(alice), alice, "openai", crypto::Secret("sk-cached-key-0001"), kMeta));
  EXPECT_EQ(decrypted(*v, alice), "sk-cached-key-0001");
  EXPECT_EQ(v->cache_size(), 1u);

  // Changed behind the service's back (as another instance would): the cached answer holds...
  auto other_instance = vault({new_key_});
  ASSERT_TRUE(other_instance->set(principal(alice), alice, "openai", crypto::Secret("sk-changed-elsewhere-2"),
                                  kMeta));
  clock_.advance_ms(59'000);
  EXPECT_EQ(decrypted(*v, alice), "sk-cached-key-0001");
  // ...until the TTL (60 s) has passed.
  clock_.advance_ms(1'000);
  EXPECT_EQ(decrypted(*v, alice), "sk-changed-elsewhere-2");
}

TEST_P(VaultServiceTest, SetAndRemoveDropTheCachedKeyAtOnce) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_});
  EXPECT_EQ(decrypted(*v, alice), "<none>");  // "no key" is cached too...
  ASSERT_TRUE(v->set(principal(alice), alice, "openai", crypto::Secret("sk-first-key-0001"), kMeta));
  EXPECT_EQ(decrypted(*v, alice), "sk-first-key-0001");  // ...and dropped by set
  ASSERT_TRUE(v->set(principal(alice), alice, "openai", crypto::Secret("sk-second-key-0002"), kMeta));
  EXPECT_EQ(decrypted(*v, alice), "sk-second-key-0002");
  ASSERT_TRUE(v->remove(principal(alice), alice, "openai", kMeta));
  EXPECT_EQ(decrypted(*v, alice), "<none>");
  EXPECT_EQ(v->cache_size(), 1u);
}

TEST_P(VaultServiceTest, CacheIsBoundedAndForgetUserDropsTheirEntries) {
  VaultOptions options;
  options.cache_max_entries = 3;
  auto v = vault({new_key_}, options);
  std::vector<std::string> users;
  for (int i = 0; i < 5; ++i) {
    users.push_back(create_user(fmt::format("user{}", i)));
    ASSERT_TRUE(v->set(principal(users.back()), users.back(), "openai",
                       crypto::Secret(fmt::format("sk-user-key-000{}", i)), kMeta));
  }
  for (const auto& u : users) EXPECT_NE(decrypted(*v, u), "<none>");
  EXPECT_EQ(v->cache_size(), 3u);
  EXPECT_EQ(decrypted(*v, users[4], "mock"), "<none>");
  EXPECT_EQ(v->cache_size(), 3u);
  v->forget_user(users[4]);
  EXPECT_EQ(v->cache_size(), 1u);  // users[3]'s openai key is what remains
  EXPECT_EQ(decrypted(*v, users[0]), "sk-user-key-0000");
}

// ---- rotation -----------------------------------------------------------------------------------

TEST_P(VaultServiceTest, RotateReencryptsUnderTheFirstKeyAndIsIdempotent) {
  const std::string alice = create_user("alice");
  const std::string bob = create_user("Bob");
  const std::string carol = create_user("carol");
  const std::string dave = create_user("dave");
  put_token(alice, "openai", fixture_.row("alice").token);  // Python, old key
  put_token(bob, "openai", fixture_.row("Bob").token);      // Python, old key
  put_token(carol, "openai", fixture_.row("carol").token);  // a key we do not have
  auto v = vault({new_key_, fixture_.old_key});
  ASSERT_TRUE(
      v->set(principal(dave), dave, "openai", crypto::Secret("sk-dave-current-01"), kMeta));  // new key
  const std::string dave_token = token_of(dave);
  const std::string carol_token = token_of(carol);

  auto first = v->rotate_all();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->rotated, 2);
  EXPECT_EQ(first->already_current, 1);
  EXPECT_EQ(first->failed, 1);
  ASSERT_EQ(first->failures.size(), 1u);
  EXPECT_EQ(first->failures[0].user_id, carol);
  EXPECT_EQ(first->failures[0].provider, "openai");
  expect_no_fragment(first->failures[0].reason, fixture_.row("carol").plaintext, "failure reason");

  // Every rotated key now opens with the new key alone, unchanged, keeping its Fernet timestamp.
  EXPECT_EQ(plaintext_under(new_key_, token_of(alice)), fixture_.row("alice").plaintext);
  EXPECT_EQ(plaintext_under(new_key_, token_of(bob)), fixture_.row("Bob").plaintext);
  auto ts = crypto::fernet_extract_timestamp(*crypto::FernetKey::parse(new_key_), token_of(alice));
  ASSERT_TRUE(ts);
  EXPECT_EQ(static_cast<std::int64_t>(*ts), fixture_.row("alice").timestamp);
  EXPECT_EQ(token_of(dave), dave_token);    // already current: untouched
  EXPECT_EQ(token_of(carol), carol_token);  // failed: untouched
  EXPECT_EQ(decrypted(*vault({new_key_}), bob), fixture_.row("Bob").plaintext);

  auto second = v->rotate_all();
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->rotated, 0);
  EXPECT_EQ(second->already_current, 3);
  EXPECT_EQ(second->failed, 1);
}

TEST_P(VaultServiceTest, RotateWalksTheTableInBatchesAndResumesAfterAnInterruption) {
  const std::string old_key = crypto::generate_fernet_key();
  auto before = vault({old_key});
  std::vector<std::string> users;
  for (int i = 0; i < 7; ++i) {
    users.push_back(create_user(fmt::format("user{}", i)));
    for (std::string_view provider : {"openai", "mock"}) {
      ASSERT_TRUE(before->set(principal(users.back()), users.back(), provider,
                              crypto::Secret(fmt::format("sk-{}-{}-key", provider, i)), kMeta));
    }
  }
  // An interrupted earlier run re-encrypted a few rows and stopped.
  auto rotated_config = fernet_of({new_key_, old_key});
  store::ProviderKeyStore keys(db());
  for (int i : {0, 3}) {
    const std::string token = token_of(users[i]);
    ASSERT_TRUE(keys.update_token_if_unchanged(users[i], "openai", token, *rotated_config.rotate(token)));
  }

  VaultOptions options;
  options.rotate_batch_size = 3;
  auto v = vault({new_key_, old_key}, options);
  auto report = v->rotate_all();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->rotated, 12);
  EXPECT_EQ(report->already_current, 2);
  EXPECT_EQ(report->failed, 0);
  auto only_new = vault({new_key_});
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(decrypted(*only_new, users[i], "openai"), fmt::format("sk-openai-{}-key", i));
    EXPECT_EQ(decrypted(*only_new, users[i], "mock"), fmt::format("sk-mock-{}-key", i));
  }
}

TEST_P(VaultServiceTest, RotateWithASingleKeyChangesNothing) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_});
  ASSERT_TRUE(v->set(principal(alice), alice, "openai", crypto::Secret("sk-single-key-001"), kMeta));
  const std::string token = token_of(alice);
  auto report = v->rotate_all();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->rotated, 0);
  EXPECT_EQ(report->already_current, 1);
  EXPECT_EQ(token_of(alice), token);
  auto empty_table = vault({new_key_});
  ASSERT_TRUE(v->remove(principal(alice), alice, "openai", kMeta));
  auto none = empty_table->rotate_all();
  ASSERT_TRUE(none);
  EXPECT_EQ(none->rotated + none->already_current + none->failed, 0);
}

// ---- import -------------------------------------------------------------------------------------

TEST_P(VaultServiceTest, ImportStoresPythonTokensAndReportsEveryRow) {
  const std::string alice = create_user("alice");
  const std::string bob = create_user("Bob");
  const std::string carol = create_user("carol");
  const std::string dave = create_user("dave");
  const std::string erin = create_user("erin");
  const std::string frank = create_user("frank");
  auto v = vault({new_key_, fixture_.old_key});
  ASSERT_TRUE(v->set(principal(erin), erin, "openai", crypto::Secret("sk-erin-existing-01"), kMeta));
  const std::string erin_token = token_of(erin);
  const std::string frank_token = *fernet_of({new_key_}).encrypt("sk-frank-under-new-01", 1'700'000'000);
  const json::object vector = load_json("fernet/verify.json").as_array().at(0).as_object();
  ASSERT_EQ(std::string(vector.at("secret").as_string()), fixture_.old_key);

  const std::string csv = fmt::format(
      "\xEF\xBB\xBFusername,fernet_token\r\n"  // 1 header (with a byte-order mark)
      "alice,{}\r\n"                           // 2 imported (old key → re-encrypted)
      "\r\n"                                   // 3 skipped: blank
      "\"bob\",\"{}\"\n"                       // 4 imported (username ignores case; quoted)
      "nobody,{}\n"                            // 5 skipped: unknown user
      "carol,{}\n"                             // 6 failed: no configured key opens it
      "dave,{}\n"                              // 7 failed: the vector's "hello" is no API key
      "dave,{},extra\n"                        // 8 failed: three columns
      "erin,{}\n"                              // 9 skipped: already has a key
      "frank,{}\n"                             // 10 imported as is (already under the first key)
      "{},alice\n"                             // 11 failed (columns swapped): token not echoed
      "\"unterminated,x\n",                    // 12 failed: malformed
      fixture_.row("alice").token, fixture_.row("Bob").token, fixture_.row("alice").token,
      fixture_.row("carol").token, std::string(vector.at("token").as_string()), fixture_.row("alice").token,
      fixture_.row("alice").token, frank_token, fixture_.row("Bob").token);
  std::istringstream in(csv);
  ImportReport report = v->import_csv(in, ImportOptions{});
  EXPECT_EQ(report.imported, 3);
  EXPECT_EQ(report.skipped, 3);
  EXPECT_EQ(report.failed, 5);

  std::vector<std::pair<std::size_t, ImportOutcome>> lines;
  for (const auto& issue : report.issues) {
    lines.emplace_back(issue.line, issue.outcome);
    for (const auto& row : fixture_.rows) {
      expect_no_fragment(issue.reason, row.plaintext, "import reason");
      expect_no_fragment(issue.username + issue.reason, row.token, "import issue");
    }
  }
  using O = ImportOutcome;
  EXPECT_EQ(lines, (std::vector<std::pair<std::size_t, ImportOutcome>>{{3, O::kSkipped},
                                                                       {5, O::kSkipped},
                                                                       {6, O::kFailed},
                                                                       {7, O::kFailed},
                                                                       {8, O::kFailed},
                                                                       {9, O::kSkipped},
                                                                       {11, O::kFailed},
                                                                       {12, O::kFailed}}));
  ASSERT_EQ(report.issues.size(), 8u);
  EXPECT_EQ(report.issues[1].username, "nobody");
  EXPECT_NE(report.issues[1].reason.find("unknown user"), std::string::npos);
  EXPECT_NE(report.issues[2].reason.find("cannot be decrypted"), std::string::npos);
  EXPECT_NE(report.issues[3].reason.find("not a valid API key"), std::string::npos);
  EXPECT_NE(report.issues[4].reason.find("2 columns"), std::string::npos);
  EXPECT_NE(report.issues[5].reason.find("already has a key"), std::string::npos);
  EXPECT_EQ(report.issues[6].username, "");  // a token in the username column is not repeated

  // Imported keys are under the first key and decrypt to what Python encrypted.
  EXPECT_EQ(plaintext_under(new_key_, token_of(alice)), fixture_.row("alice").plaintext);
  EXPECT_EQ(plaintext_under(new_key_, token_of(bob)), fixture_.row("Bob").plaintext);
  EXPECT_EQ(token_of(frank), frank_token);
  EXPECT_EQ(token_of(erin), erin_token);
  auto masked = v->get_masked(principal(alice), alice, "openai");
  ASSERT_TRUE(masked);
  EXPECT_EQ(masked->masked, crypto::mask_secret(fixture_.row("alice").plaintext));
  store::ProviderKeyStore keys(db());
  EXPECT_FALSE(*keys.get(carol, "openai"));
  EXPECT_FALSE(*keys.get(dave, "openai"));
  EXPECT_EQ(*keys.count(), 4);  // alice, bob, erin, frank
}

TEST_P(VaultServiceTest, ImportWithOverwriteReplacesExistingKeysAndDropsTheCache) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_, fixture_.old_key});
  ASSERT_TRUE(v->set(principal(alice), alice, "openai", crypto::Secret("sk-alice-before-01"), kMeta));
  EXPECT_EQ(decrypted(*v, alice), "sk-alice-before-01");
  const std::string csv = "alice," + fixture_.row("alice").token + "\n";

  std::istringstream keep(csv);
  ImportReport kept = v->import_csv(keep, ImportOptions{});
  EXPECT_EQ(kept.imported, 0);
  EXPECT_EQ(kept.skipped, 1);
  EXPECT_EQ(decrypted(*v, alice), "sk-alice-before-01");

  std::istringstream replace(csv);
  ImportReport replaced = v->import_csv(replace, ImportOptions{"openai", true});
  EXPECT_EQ(replaced.imported, 1);
  EXPECT_EQ(replaced.skipped + replaced.failed, 0);
  EXPECT_EQ(decrypted(*v, alice), fixture_.row("alice").plaintext);
}

TEST_P(VaultServiceTest, ImportUsesTheGivenProviderAndReadsFiles) {
  const std::string alice = create_user("alice");
  auto v = vault({new_key_, fixture_.old_key});
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("parley-vault-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto file = dir / "export.csv";
  {
    std::ofstream out(file);
    out << "alice," << fixture_.row("alice").token;  // no trailing newline
  }
  auto report = v->import_csv(file, ImportOptions{"mock", false});
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->imported, 1);
  EXPECT_EQ(decrypted(*v, alice, "mock"), fixture_.row("alice").plaintext);
  EXPECT_EQ(decrypted(*v, alice, "openai"), "<none>");

  auto missing = v->import_csv(dir / "missing.csv", ImportOptions{});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::kNotFound);
  auto bad_provider = v->import_csv(file, ImportOptions{"Not Valid", false});
  ASSERT_FALSE(bad_provider);
  EXPECT_EQ(bad_provider.error().param, "provider");
  std::filesystem::remove_all(dir);
}

TEST_P(VaultServiceTest, ImportRecordsAnAuditEventPerKeyWithoutTheKey) {
  create_user("alice");
  auto v = vault({new_key_, fixture_.old_key});
  std::istringstream in("alice," + fixture_.row("alice").token + "\n");
  ASSERT_EQ(v->import_csv(in, ImportOptions{}).imported, 1);
  store::AuditStore audit(db());
  auto events = audit.list({});
  ASSERT_TRUE(events);
  ASSERT_EQ(events->items.size(), 1u);
  EXPECT_EQ(events->items[0].action, "provider_key.set");
  EXPECT_EQ(events->items[0].detail, R"({"provider":"openai","source":"import"})");
  EXPECT_FALSE(events->items[0].actor_user_id);
}

INSTANTIATE_TEST_SUITE_P(Backends, VaultServiceTest, ::testing::Values(Dialect::kSqlite, Dialect::kPostgres),
                         test::backend_name);

}  // namespace
}  // namespace parley::services
