// Conversations and messages on both backends, against the real embedded migrations: CRUD,
// newest-first listing with offset and keyset paging, full-text search (title or message, all
// words, last word as a prefix, any script, FTS syntax inert), exchanges and regenerated
// siblings, answer checkpoints, message paging, model context, stats, stale answers and cascades
// that leave no rows and no search-index entries. PostgreSQL cases run when
// PARLEY_TEST_POSTGRES_URL is set and are skipped otherwise.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend_fixture.hpp"
#include "store/conversation_store.hpp"
#include "store/user_store.hpp"

namespace parley::store {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000;

UserRecord make_user(std::string_view name) {
  UserRecord u;
  u.id = fmt::format("usr_{}", name);
  u.username = std::string(name);
  u.email = fmt::format("{}@example.com", name);
  u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
  u.role = "user";
  u.created_at = kT0;
  u.updated_at = kT0;
  return u;
}

ConversationRecord make_conversation(std::string_view id, std::string_view user_id, std::string_view title,
                                     std::int64_t at = kT0) {
  ConversationRecord c;
  c.id = std::string(id);
  c.user_id = std::string(user_id);
  c.title = std::string(title);
  c.created_at = at;
  c.updated_at = at;
  return c;
}

MessageRecord user_message(std::string_view id, std::string_view conversation_id, std::string_view content,
                           std::int64_t at) {
  MessageRecord m;
  m.id = std::string(id);
  m.conversation_id = std::string(conversation_id);
  m.role = "user";
  m.sender_id = "usr_alice";
  m.content = std::string(content);
  m.created_at = at;
  m.updated_at = at;
  return m;
}

MessageRecord answer(std::string_view id, std::string_view conversation_id, std::string_view parent_id,
                     std::int64_t at) {
  MessageRecord m;
  m.id = std::string(id);
  m.conversation_id = std::string(conversation_id);
  m.parent_id = std::string(parent_id);
  m.role = "assistant";
  m.status = "generating";
  m.model = "gpt-4o-mini";
  m.created_at = at;
  m.updated_at = at;
  return m;
}

AnswerUpdate finished(std::string_view content, std::string_view status, std::int64_t at) {
  AnswerUpdate u;
  u.content = std::string(content);
  u.status = std::string(status);
  u.prompt_tokens = 10;
  u.completion_tokens = 20;
  u.latency_ms = 100;
  u.event_lengths = fmt::format("{}", content.size());
  u.now_ms = at;
  return u;
}

std::vector<std::string> ids(const std::vector<ConversationRecord>& items) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const ConversationRecord& c : items) out.push_back(c.id);
  return out;
}

std::vector<std::string> ids(const std::vector<MessageRecord>& items) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const MessageRecord& m : items) out.push_back(m.id);
  return out;
}

class StoreConversationTest : public test::BackendTest {
 protected:
  void SetUp() override {
    open_scratch(true);
    if (IsSkipped() || HasFatalFailure()) return;
    UserStore users(db());
    for (const char* name : {"alice", "bob"}) {
      auto created = users.create(make_user(name));
      ASSERT_TRUE(created) << created.error().message;
    }
  }

  void create(const ConversationRecord& c) {
    auto created = store().create_conversation(c);
    ASSERT_TRUE(created) << created.error().message;
  }

  // A finished exchange: the user's message and a complete answer to it.
  std::pair<MessageRecord, MessageRecord> exchange(std::string_view conversation_id, std::string_view tag,
                                                   std::string_view question, std::string_view reply,
                                                   std::int64_t at) {
    auto added = store().add_exchange(
        user_message(fmt::format("msg_{}_q", tag), conversation_id, question, at),
        answer(fmt::format("msg_{}_a", tag), conversation_id, fmt::format("msg_{}_q", tag), at + 1));
    EXPECT_TRUE(added) << added.error().message;
    if (!added) return {};
    auto done = store().update_answer(added->second.id, finished(reply, "complete", at + 2));
    EXPECT_TRUE(done && *done);
    return {*added->first, added->second};
  }

  std::vector<std::string> search(std::string_view words, std::string_view user_id = "usr_alice") {
    ConversationQuery q;
    q.user_id = std::string(user_id);
    q.search = std::string(words);
    auto page = store().list_conversations(q);
    EXPECT_TRUE(page) << words << ": " << page.error().message;
    if (!page) return {};
    EXPECT_EQ(page->total, static_cast<std::int64_t>(page->items.size())) << words;
    return ids(page->items);
  }

  std::int64_t count(std::string_view sql) {
    auto r = db().query(sql);
    EXPECT_TRUE(r) << sql << ": " << r.error().message;
    return r && !r->rows.empty() ? r->rows.front().get_int(0) : -1;
  }

  // Documents in the SQLite search indexes (their docsize shadow tables: an external-content
  // FTS5 table's own COUNT(*) would read the content table instead); 0 on PostgreSQL, where the
  // index is a column of the row itself.
  std::int64_t fts_documents() {
    if (GetParam() != Dialect::kSqlite) return 0;
    return count("SELECT COUNT(*) FROM messages_fts_docsize") +
           count("SELECT COUNT(*) FROM conversations_fts_docsize");
  }

  // SQLite: FTS5's own check that each index agrees with the rows it indexes.
  void expect_fts_consistent() {
    if (GetParam() != Dialect::kSqlite) return;
    for (const char* table : {"messages_fts", "conversations_fts"}) {
      auto checked = db().query(fmt::format("INSERT INTO {0} ({0}) VALUES ('integrity-check')", table));
      EXPECT_TRUE(checked) << table << ": " << checked.error().message;
    }
  }

  ConversationStore& store() {
    if (!store_) store_.emplace(db());
    return *store_;
  }

  std::optional<ConversationStore> store_;
};

// ---- full_text_query -------------------------------------------------------------------------

TEST(StoreFullTextQuery, QuotesEveryWordRequiresAllAndMakesTheLastAPrefix) {
  EXPECT_EQ(full_text_query("Hello, World!", Dialect::kSqlite), "\"hello\" AND \"world\"*");
  EXPECT_EQ(full_text_query("Hello, World!", Dialect::kPostgres), "'hello' & 'world':*");
  EXPECT_EQ(full_text_query("gpt4o", Dialect::kSqlite), "\"gpt4o\"*");
  EXPECT_EQ(full_text_query("gpt4o", Dialect::kPostgres), "'gpt4o':*");
  EXPECT_EQ(full_text_query("  Café  Überraschung ", Dialect::kSqlite), "\"café\" AND \"Überraschung\"*");
  EXPECT_EQ(full_text_query("Café Überraschung", Dialect::kPostgres), "'café' & 'Überraschung':*");
  EXPECT_EQ(full_text_query("東京 タワー", Dialect::kPostgres), "'東京' & 'タワー':*");
}

TEST(StoreFullTextQuery, QuerySyntaxCharactersOnlySeparateWords) {
  EXPECT_EQ(full_text_query("NEAR(x OR y*) title:\"z\" -w ^v", Dialect::kSqlite),
            "\"near\" AND \"x\" AND \"or\" AND \"y\" AND \"title\" AND \"z\" AND \"w\" AND \"v\"*");
  EXPECT_EQ(full_text_query("a'b\"c\\d & e | !f <-> g:*", Dialect::kPostgres),
            "'a' & 'b' & 'c' & 'd' & 'e' & 'f' & 'g':*");
  EXPECT_EQ(full_text_query("under_score", Dialect::kSqlite), "\"under\" AND \"score\"*");
}

TEST(StoreFullTextQuery, NoWordIsNoQuery) {
  for (Dialect d : {Dialect::kSqlite, Dialect::kPostgres}) {
    EXPECT_EQ(full_text_query("", d), std::nullopt);
    EXPECT_EQ(full_text_query("   ", d), std::nullopt);
    EXPECT_EQ(full_text_query("?!* \"\" '' () :-", d), std::nullopt);
  }
}

// ---- conversations ---------------------------------------------------------------------------

TEST_P(StoreConversationTest, CreatesAndReadsBackEveryField) {
  ConversationRecord c = make_conversation("cnv_1", "usr_alice", "First");
  c.system_message = "Be brief.";
  c.model = "gpt-4o-mini";
  c.metadata = R"({"topic":"x"})";
  auto created = store().create_conversation(c);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->id, "cnv_1");
  EXPECT_EQ(created->system_message, "Be brief.");

  auto got = store().get_conversation("cnv_1");
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_TRUE(got->has_value());
  const ConversationRecord& r = **got;
  EXPECT_EQ(r.user_id, "usr_alice");
  EXPECT_EQ(r.title, "First");
  EXPECT_EQ(r.model, "gpt-4o-mini");
  EXPECT_EQ(r.metadata, R"({"topic":"x"})");
  EXPECT_EQ(r.status, "active");
  EXPECT_EQ(r.message_count, 0);
  EXPECT_EQ(r.last_message_at, std::nullopt);
  EXPECT_EQ(r.created_at, kT0);
  EXPECT_EQ(r.updated_at, kT0);
  EXPECT_EQ(r.ended_at, std::nullopt);

  auto missing = store().get_conversation("cnv_nope");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreConversationTest, RefusesAnUnknownUserAndADuplicateId) {
  auto orphan = store().create_conversation(make_conversation("cnv_1", "usr_nobody", "x"));
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().kind, ErrorKind::kNotFound);

  create(make_conversation("cnv_1", "usr_alice", "x"));
  auto duplicate = store().create_conversation(make_conversation("cnv_1", "usr_bob", "y"));
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(duplicate.error().param, "id");
}

TEST_P(StoreConversationTest, UpdatesFieldsClearsOptionalsAndTracksEnding) {
  ConversationRecord c = make_conversation("cnv_1", "usr_alice", "Old");
  c.system_message = "sys";
  c.model = "m1";
  create(c);

  auto renamed = store().update_conversation("cnv_1", {.title = "New",
                                                       .system_message = std::optional<std::string>(),
                                                       .metadata = R"({"a":1})",
                                                       .now_ms = kT0 + 10});
  ASSERT_TRUE(renamed) << renamed.error().message;
  ASSERT_TRUE(renamed->has_value());
  EXPECT_EQ((*renamed)->title, "New");
  EXPECT_EQ((*renamed)->system_message, std::nullopt);
  EXPECT_EQ((*renamed)->model, "m1");
  EXPECT_EQ((*renamed)->metadata, R"({"a":1})");
  EXPECT_EQ((*renamed)->updated_at, kT0 + 10);

  auto ended = store().update_conversation(
      "cnv_1", {.model = std::optional<std::string>("m2"), .status = "ended", .now_ms = kT0 + 20});
  ASSERT_TRUE(ended && ended->has_value());
  EXPECT_EQ((*ended)->status, "ended");
  EXPECT_EQ((*ended)->ended_at, kT0 + 20);
  EXPECT_EQ((*ended)->model, "m2");

  auto again = store().update_conversation("cnv_1", {.status = "ended", .now_ms = kT0 + 30});
  ASSERT_TRUE(again && again->has_value());
  EXPECT_EQ((*again)->ended_at, kT0 + 20);  // still the first ending
  EXPECT_EQ((*again)->updated_at, kT0 + 30);

  auto reopened = store().update_conversation("cnv_1", {.status = "active", .now_ms = kT0 + 40});
  ASSERT_TRUE(reopened && reopened->has_value());
  EXPECT_EQ((*reopened)->status, "active");
  EXPECT_EQ((*reopened)->ended_at, std::nullopt);

  auto bad = store().update_conversation("cnv_1", {.status = "archived", .now_ms = kT0 + 50});
  EXPECT_FALSE(bad);  // the CHECK constraint

  auto missing = store().update_conversation("cnv_nope", {.title = "x", .now_ms = kT0});
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreConversationTest, ListsNewestFirstWithTotalsStatusFilterAndOffsetPages) {
  // Updated at 5, 4, 3, 3, 1: the tie is broken by id, descending.
  create(make_conversation("cnv_a", "usr_alice", "a", kT0 + 5));
  create(make_conversation("cnv_b", "usr_alice", "b", kT0 + 4));
  create(make_conversation("cnv_c", "usr_alice", "c", kT0 + 3));
  create(make_conversation("cnv_d", "usr_alice", "d", kT0 + 3));
  create(make_conversation("cnv_e", "usr_alice", "e", kT0 + 1));
  create(make_conversation("cnv_z", "usr_bob", "z", kT0 + 9));
  ASSERT_TRUE(store().update_conversation("cnv_b", {.status = "ended", .now_ms = kT0 + 4}));

  ConversationQuery q{.user_id = "usr_alice", .page = {.limit = 2, .offset = 0}};
  std::vector<std::string> seen;
  for (std::int64_t offset = 0; offset < 6; offset += 2) {
    q.page.offset = offset;
    auto page = store().list_conversations(q);
    ASSERT_TRUE(page) << page.error().message;
    EXPECT_EQ(page->total, 5);
    for (const auto& id : ids(page->items)) seen.push_back(id);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"cnv_a", "cnv_b", "cnv_d", "cnv_c", "cnv_e"}));

  auto ended = store().list_conversations({.user_id = "usr_alice", .status = "ended"});
  ASSERT_TRUE(ended);
  EXPECT_EQ(ids(ended->items), std::vector<std::string>{"cnv_b"});
  EXPECT_EQ(ended->total, 1);
  auto active = store().list_conversations({.user_id = "usr_alice", .status = "active"});
  ASSERT_TRUE(active);
  EXPECT_EQ(active->total, 4);

  auto count_only = store().list_conversations({.user_id = "usr_alice", .page = {.limit = 0}});
  ASSERT_TRUE(count_only);
  EXPECT_TRUE(count_only->items.empty());
  EXPECT_EQ(count_only->total, 5);

  auto nobody = store().list_conversations({.user_id = "usr_nobody"});
  ASSERT_TRUE(nobody);
  EXPECT_EQ(nobody->total, 0);
}

TEST_P(StoreConversationTest, KeysetPagesFollowTheSameOrderAndIgnoreOffset) {
  create(make_conversation("cnv_a", "usr_alice", "a", kT0 + 5));
  create(make_conversation("cnv_b", "usr_alice", "b", kT0 + 3));
  create(make_conversation("cnv_c", "usr_alice", "c", kT0 + 3));
  create(make_conversation("cnv_d", "usr_alice", "d", kT0 + 3));
  create(make_conversation("cnv_e", "usr_alice", "e", kT0 + 1));

  ConversationQuery q{.user_id = "usr_alice", .page = {.limit = 2, .offset = 0}};
  std::vector<std::string> seen;
  for (int round = 0; round < 4; ++round) {
    auto page = store().list_conversations(q);
    ASSERT_TRUE(page) << page.error().message;
    EXPECT_EQ(page->total, 5);  // the whole filter, not what is left after the cursor
    if (page->items.empty()) break;
    for (const auto& id : ids(page->items)) seen.push_back(id);
    q.after = std::pair{page->items.back().updated_at, page->items.back().id};
    q.page.offset = 99;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"cnv_a", "cnv_d", "cnv_c", "cnv_b", "cnv_e"}));
}

// ---- search ----------------------------------------------------------------------------------

TEST_P(StoreConversationTest, SearchFindsWordsInTitlesOrMessagesPrefixesAndAnyScript) {
  create(make_conversation("cnv_trip", "usr_alice", "Trip to Lisbon", kT0 + 3));
  create(make_conversation("cnv_shop", "usr_alice", "Groceries", kT0 + 2));
  create(make_conversation("cnv_food", "usr_alice", "Recipes", kT0 + 1));
  create(make_conversation("cnv_bob", "usr_bob", "Lisbon too", kT0));
  exchange("cnv_shop", "s1", "Remember the café au lait", "And the Überraschung for Sunday.", kT0 + 10);
  exchange("cnv_food", "f1", "Pancakes?", "Pancakes with maple syrup, 東京 style.", kT0 + 20);

  EXPECT_EQ(search("lisbon"), std::vector<std::string>{"cnv_trip"});  // title, case folded
  EXPECT_EQ(search("LISB"), std::vector<std::string>{"cnv_trip"});    // the last word as a prefix
  EXPECT_EQ(search("trip lisbon"), std::vector<std::string>{"cnv_trip"});
  EXPECT_EQ(search("lisbon", "usr_bob"), std::vector<std::string>{"cnv_bob"});
  EXPECT_EQ(search("café"), std::vector<std::string>{"cnv_shop"});          // a user's message
  EXPECT_EQ(search("Überraschung"), std::vector<std::string>{"cnv_shop"});  // an answer
  EXPECT_EQ(search("Überra"), std::vector<std::string>{"cnv_shop"});
  EXPECT_EQ(search("東京"), std::vector<std::string>{"cnv_food"});
  EXPECT_EQ(search("pancakes syrup"), std::vector<std::string>{"cnv_food"});  // all words, one message
  EXPECT_EQ(search("maple pan"), std::vector<std::string>{"cnv_food"});
  EXPECT_TRUE(search("syr pancakes").empty());      // only the last word is a prefix
  EXPECT_TRUE(search("pancakes lisbon").empty());   // every word must match
  EXPECT_TRUE(search("recipes pancakes").empty());  // ... in the title or in one message
  EXPECT_TRUE(search("xylophone").empty());

  // With the status filter and the paging of a plain listing.
  ASSERT_TRUE(store().update_conversation("cnv_food", {.status = "ended", .now_ms = kT0 + 30}));
  auto ended = store().list_conversations({.user_id = "usr_alice", .status = "ended", .search = "syrup"});
  ASSERT_TRUE(ended);
  EXPECT_EQ(ids(ended->items), std::vector<std::string>{"cnv_food"});
  auto active = store().list_conversations({.user_id = "usr_alice", .status = "active", .search = "syrup"});
  ASSERT_TRUE(active);
  EXPECT_EQ(active->total, 0);

  exchange("cnv_trip", "t1", "Any Recipes for pastel de nata?", "Yes.", kT0 + 40);
  auto recipes = store().list_conversations(
      {.user_id = "usr_alice", .search = "recipes", .page = {.limit = 1, .offset = 1}});
  ASSERT_TRUE(recipes);
  EXPECT_EQ(recipes->total, 2);
  EXPECT_EQ(ids(recipes->items), std::vector<std::string>{"cnv_food"});  // cnv_trip is newer
}

TEST_P(StoreConversationTest, SearchFollowsRenamedTitlesAndFinishedAnswers) {
  create(make_conversation("cnv_1", "usr_alice", "Lisbon"));
  ASSERT_TRUE(store().update_conversation("cnv_1", {.title = "Porto", .now_ms = kT0 + 1}));
  EXPECT_TRUE(search("lisbon").empty());
  EXPECT_EQ(search("porto"), std::vector<std::string>{"cnv_1"});

  auto added = store().add_exchange(user_message("msg_q", "cnv_1", "hi", kT0 + 2),
                                    answer("msg_a", "cnv_1", "msg_q", kT0 + 3));
  ASSERT_TRUE(added) << added.error().message;
  AnswerUpdate checkpoint = finished("partial", "generating", kT0 + 4);
  ASSERT_TRUE(store().update_answer("msg_a", checkpoint));
  EXPECT_EQ(search("partial"), std::vector<std::string>{"cnv_1"});
  ASSERT_TRUE(store().update_answer("msg_a", finished("francesinha", "complete", kT0 + 5)));
  EXPECT_TRUE(search("partial").empty());
  EXPECT_EQ(search("francesinha"), std::vector<std::string>{"cnv_1"});
  expect_fts_consistent();
}

TEST_P(StoreConversationTest, SearchWithoutWordsOrWithQuerySyntaxIsHarmless) {
  create(make_conversation("cnv_1", "usr_alice", "Trip to Lisbon"));
  exchange("cnv_1", "x", "near the river", "ok", kT0 + 1);

  EXPECT_TRUE(search("?!.,;:-").empty());
  EXPECT_TRUE(search("   ").empty());
  EXPECT_TRUE(search("\"\" '' ** ()").empty());
  // Operators of FTS5 and to_tsquery are plain words (or separators) here.
  EXPECT_TRUE(search("lisbon OR xylophone").empty());  // "or" is a word that must match too
  EXPECT_EQ(search("\"lisbon"), std::vector<std::string>{"cnv_1"});
  EXPECT_EQ(search("(trip) AND* lisbon"), std::vector<std::string>{});  // "and" is nowhere
  EXPECT_EQ(search("NEAR(river)"), std::vector<std::string>{"cnv_1"});  // "near" and "river"
  EXPECT_EQ(search("title:lisbon"), std::vector<std::string>{});
  EXPECT_EQ(search("lisbon:*"), std::vector<std::string>{"cnv_1"});
  EXPECT_EQ(search("'trip' & !lisbon | x <-> y"), std::vector<std::string>{});
  EXPECT_EQ(search("^trip -lisbon* \\"), std::vector<std::string>{"cnv_1"});
  EXPECT_EQ(search("it's"), std::vector<std::string>{});
}

// ---- exchanges and answers -------------------------------------------------------------------

TEST_P(StoreConversationTest, AddExchangeStoresBothMessagesAndBumpsTheConversation) {
  create(make_conversation("cnv_1", "usr_alice", "t"));
  auto added = store().add_exchange(user_message("msg_q", "cnv_1", "Hello", kT0 + 5),
                                    answer("msg_a", "cnv_1", "msg_q", kT0 + 6));
  ASSERT_TRUE(added) << added.error().message;
  ASSERT_TRUE(added->first.has_value());
  EXPECT_EQ(added->first->content, "Hello");
  EXPECT_EQ(added->first->sender_id, "usr_alice");
  EXPECT_GT(added->first->seq, 0);
  EXPECT_GT(added->second.seq, added->first->seq);
  EXPECT_EQ(added->second.status, "generating");
  EXPECT_EQ(added->second.parent_id, "msg_q");
  EXPECT_TRUE(added->second.active);

  auto c = store().get_conversation("cnv_1");
  ASSERT_TRUE(c && c->has_value());
  EXPECT_EQ((*c)->message_count, 2);
  EXPECT_EQ((*c)->last_message_at, kT0 + 6);
  EXPECT_EQ((*c)->updated_at, kT0 + 6);

  auto stored = store().get_message("msg_q");
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_EQ((*stored)->seq, added->first->seq);
  EXPECT_EQ((*stored)->role, "user");
  EXPECT_EQ((*stored)->status, "complete");
  auto missing = store().get_message("msg_nope");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreConversationTest, AddExchangeFailsWholeForAMissingConversationOrADuplicateId) {
  auto orphan = store().add_exchange(user_message("msg_q", "cnv_nope", "Hello", kT0),
                                     answer("msg_a", "cnv_nope", "msg_q", kT0));
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages"), 0);

  create(make_conversation("cnv_1", "usr_alice", "t"));
  exchange("cnv_1", "x", "q", "a", kT0 + 1);
  auto duplicate = store().add_exchange(user_message("msg_new", "cnv_1", "again", kT0 + 5),
                                        answer("msg_x_a", "cnv_1", "msg_new", kT0 + 6));
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(duplicate.error().param, "id");
  // Rolled back: no new message, the conversation's counters unchanged.
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages"), 2);
  auto c = store().get_conversation("cnv_1");
  ASSERT_TRUE(c && c->has_value());
  EXPECT_EQ((*c)->message_count, 2);
  EXPECT_EQ((*c)->last_message_at, kT0 + 3);
}

TEST_P(StoreConversationTest, RegeneratedAnswersAreSiblingsAndOnlyTheNewestIsActive) {
  create(make_conversation("cnv_1", "usr_alice", "t"));
  auto [question, first] = exchange("cnv_1", "x", "Tell me a joke", "joke one", kT0);
  auto second = store().add_exchange(std::nullopt, answer("msg_a2", "cnv_1", question.id, kT0 + 10));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(second->first.has_value());
  auto third = store().add_exchange(std::nullopt, answer("msg_a3", "cnv_1", question.id, kT0 + 20));
  ASSERT_TRUE(third) << third.error().message;

  auto siblings = store().siblings(question.id);
  ASSERT_TRUE(siblings) << siblings.error().message;
  EXPECT_EQ(ids(*siblings), (std::vector<std::string>{first.id, "msg_a2", "msg_a3"}));
  ASSERT_EQ(siblings->size(), 3u);
  EXPECT_FALSE((*siblings)[0].active);
  EXPECT_FALSE((*siblings)[1].active);
  EXPECT_TRUE((*siblings)[2].active);
  EXPECT_EQ((*siblings)[0].content, "joke one");  // superseded answers stay stored

  auto c = store().get_conversation("cnv_1");
  ASSERT_TRUE(c && c->has_value());
  EXPECT_EQ((*c)->message_count, 4);  // superseded siblings count
  EXPECT_EQ((*c)->last_message_at, kT0 + 20);

  auto listed = store().list_messages({.conversation_id = "cnv_1"});
  ASSERT_TRUE(listed);
  EXPECT_EQ(ids(listed->items), (std::vector<std::string>{question.id, "msg_a3"}));
  auto everything = store().list_messages({.conversation_id = "cnv_1", .include_inactive = true});
  ASSERT_TRUE(everything);
  EXPECT_EQ(ids(everything->items), (std::vector<std::string>{question.id, first.id, "msg_a2", "msg_a3"}));

  auto none = store().siblings("msg_nope");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreConversationTest, UpdateAnswerCheckpointsThenFinishesOnceAndNeverAgain) {
  create(make_conversation("cnv_1", "usr_alice", "t"));
  auto added = store().add_exchange(user_message("msg_q", "cnv_1", "q", kT0 + 1),
                                    answer("msg_a", "cnv_1", "msg_q", kT0 + 2));
  ASSERT_TRUE(added) << added.error().message;

  AnswerUpdate checkpoint;
  checkpoint.content = "Hel";
  checkpoint.status = "generating";
  checkpoint.event_lengths = "1,2";
  checkpoint.now_ms = kT0 + 3;
  auto saved = store().update_answer("msg_a", checkpoint);
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_TRUE(*saved);
  auto partial = store().get_message("msg_a");
  ASSERT_TRUE(partial && partial->has_value());
  EXPECT_EQ((*partial)->content, "Hel");
  EXPECT_EQ((*partial)->event_lengths, "1,2");
  EXPECT_EQ((*partial)->status, "generating");
  EXPECT_EQ((*partial)->model, "gpt-4o-mini");  // kept: the checkpoint named no model
  EXPECT_EQ((*partial)->updated_at, kT0 + 3);
  auto c = store().get_conversation("cnv_1");
  ASSERT_TRUE(c && c->has_value());
  EXPECT_EQ((*c)->last_message_at, kT0 + 2);  // a checkpoint is not a new message

  AnswerUpdate done = finished("Hello!", "complete", kT0 + 9);
  done.model = "gpt-4o";
  auto finished_ok = store().update_answer("msg_a", done);
  ASSERT_TRUE(finished_ok) << finished_ok.error().message;
  EXPECT_TRUE(*finished_ok);
  auto final_state = store().get_message("msg_a");
  ASSERT_TRUE(final_state && final_state->has_value());
  const MessageRecord& m = **final_state;
  EXPECT_EQ(m.content, "Hello!");
  EXPECT_EQ(m.status, "complete");
  EXPECT_EQ(m.model, "gpt-4o");
  EXPECT_EQ(m.prompt_tokens, 10);
  EXPECT_EQ(m.completion_tokens, 20);
  EXPECT_EQ(m.latency_ms, 100);
  EXPECT_EQ(m.event_lengths, "6");
  EXPECT_EQ(m.updated_at, kT0 + 9);
  c = store().get_conversation("cnv_1");
  ASSERT_TRUE(c && c->has_value());
  EXPECT_EQ((*c)->last_message_at, kT0 + 9);
  EXPECT_EQ((*c)->updated_at, kT0 + 9);

  // Finished: neither a late checkpoint nor a second final state changes it.
  auto late = store().update_answer("msg_a", checkpoint);
  ASSERT_TRUE(late);
  EXPECT_FALSE(*late);
  auto twice = store().update_answer("msg_a", finished("other", "failed", kT0 + 20));
  ASSERT_TRUE(twice);
  EXPECT_FALSE(*twice);
  auto unchanged = store().get_message("msg_a");
  ASSERT_TRUE(unchanged && unchanged->has_value());
  EXPECT_EQ((*unchanged)->content, "Hello!");
  EXPECT_EQ((*unchanged)->status, "complete");
  c = store().get_conversation("cnv_1");
  ASSERT_TRUE(c && c->has_value());
  EXPECT_EQ((*c)->last_message_at, kT0 + 9);

  auto gone = store().update_answer("msg_nope", done);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone);
}

TEST_P(StoreConversationTest, FailedAnswersKeepTheirErrorCode) {
  create(make_conversation("cnv_1", "usr_alice", "t"));
  ASSERT_TRUE(store().add_exchange(std::nullopt, answer("msg_a", "cnv_1", "msg_q", kT0)));
  AnswerUpdate failed = finished("half an ans", "failed", kT0 + 5);
  failed.error_code = "UPSTREAM_ERROR";
  failed.latency_ms = std::nullopt;
  ASSERT_TRUE(store().update_answer("msg_a", failed));
  auto m = store().get_message("msg_a");
  ASSERT_TRUE(m && m->has_value());
  EXPECT_EQ((*m)->status, "failed");
  EXPECT_EQ((*m)->error_code, "UPSTREAM_ERROR");
  EXPECT_EQ((*m)->latency_ms, std::nullopt);
}

// ---- reading messages ------------------------------------------------------------------------

TEST_P(StoreConversationTest, PagesMessagesForwardBackwardAndBetweenCursors) {
  create(make_conversation("cnv_1", "usr_alice", "t"));
  create(make_conversation("cnv_2", "usr_alice", "other"));
  std::vector<MessageRecord> all;
  for (std::int64_t i = 0; i < 4; ++i) {
    auto [q, a] = exchange("cnv_1", fmt::format("{}", i), "q", "a", kT0 + 10 * i);
    all.push_back(q);
    all.push_back(a);
    exchange("cnv_2", fmt::format("other{}", i), "q", "a", kT0 + 10 * i);  // interleaved seqs
  }
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i].seq, all[i - 1].seq);
  auto slice = [&](std::size_t from, std::size_t to) {
    std::vector<std::string> out;
    for (std::size_t i = from; i < to; ++i) out.push_back(all[i].id);
    return out;
  };

  // Forward from the start, three at a time.
  MessageQuery q{.conversation_id = "cnv_1", .limit = 3};
  std::vector<std::string> forward;
  for (int round = 0; round < 5; ++round) {
    auto page = store().list_messages(q);
    ASSERT_TRUE(page) << page.error().message;
    for (const auto& id : ids(page->items)) forward.push_back(id);
    if (!page->has_more) break;
    q.after_seq = page->items.back().seq;
  }
  EXPECT_EQ(forward, slice(0, 8));

  // Backward from the end: each page is the messages just before the cursor, oldest first.
  auto newest =
      store().list_messages({.conversation_id = "cnv_1", .before_seq = all[7].seq + 1000, .limit = 3});
  ASSERT_TRUE(newest);
  EXPECT_EQ(ids(newest->items), slice(5, 8));
  EXPECT_TRUE(newest->has_more);
  auto older = store().list_messages({.conversation_id = "cnv_1", .before_seq = all[5].seq, .limit = 3});
  ASSERT_TRUE(older);
  EXPECT_EQ(ids(older->items), slice(2, 5));
  EXPECT_TRUE(older->has_more);
  auto oldest = store().list_messages({.conversation_id = "cnv_1", .before_seq = all[2].seq, .limit = 3});
  ASSERT_TRUE(oldest);
  EXPECT_EQ(ids(oldest->items), slice(0, 2));
  EXPECT_FALSE(oldest->has_more);
  auto before_first = store().list_messages({.conversation_id = "cnv_1", .before_seq = all[0].seq});
  ASSERT_TRUE(before_first);
  EXPECT_TRUE(before_first->items.empty());
  EXPECT_FALSE(before_first->has_more);

  // Between two cursors, read forward.
  auto between = store().list_messages(
      {.conversation_id = "cnv_1", .before_seq = all[6].seq, .after_seq = all[1].seq, .limit = 2});
  ASSERT_TRUE(between);
  EXPECT_EQ(ids(between->items), slice(2, 4));
  EXPECT_TRUE(between->has_more);

  // The limit is clamped to at least one.
  auto tiny = store().list_messages({.conversation_id = "cnv_1", .limit = 0});
  ASSERT_TRUE(tiny);
  EXPECT_EQ(ids(tiny->items), slice(0, 1));
  EXPECT_TRUE(tiny->has_more);
  auto unknown = store().list_messages({.conversation_id = "cnv_nope"});
  ASSERT_TRUE(unknown);
  EXPECT_TRUE(unknown->items.empty());
}

TEST_P(StoreConversationTest, RecentForContextTakesTheNewestUsableActiveMessages) {
  create(make_conversation("cnv_1", "usr_alice", "t"));
  auto [q1, a1] = exchange("cnv_1", "1", "first question", "first answer", kT0);
  // A regenerated answer: the superseded sibling is left out.
  ASSERT_TRUE(store().add_exchange(std::nullopt, answer("msg_1_b", "cnv_1", q1.id, kT0 + 5)));
  ASSERT_TRUE(store().update_answer("msg_1_b", finished("better answer", "complete", kT0 + 6)));
  // A failed answer with content is kept; a cancelled one without content is not.
  auto e2 = store().add_exchange(user_message("msg_2_q", "cnv_1", "second", kT0 + 10),
                                 answer("msg_2_a", "cnv_1", "msg_2_q", kT0 + 11));
  ASSERT_TRUE(e2);
  ASSERT_TRUE(store().update_answer("msg_2_a", finished("half", "failed", kT0 + 12)));
  auto e3 = store().add_exchange(user_message("msg_3_q", "cnv_1", "third", kT0 + 20),
                                 answer("msg_3_a", "cnv_1", "msg_3_q", kT0 + 21));
  ASSERT_TRUE(e3);
  ASSERT_TRUE(store().update_answer("msg_3_a", finished("", "cancelled", kT0 + 22)));
  // An answer still being generated is not context yet.
  auto e4 = store().add_exchange(user_message("msg_4_q", "cnv_1", "fourth", kT0 + 30),
                                 answer("msg_4_a", "cnv_1", "msg_4_q", kT0 + 31));
  ASSERT_TRUE(e4);

  auto recent = store().recent_for_context("cnv_1", 50);
  ASSERT_TRUE(recent) << recent.error().message;
  EXPECT_EQ(ids(*recent),
            (std::vector<std::string>{"msg_4_q", "msg_3_q", "msg_2_a", "msg_2_q", "msg_1_b", q1.id}));
  auto last_three = store().recent_for_context("cnv_1", 3);
  ASSERT_TRUE(last_three);
  EXPECT_EQ(ids(*last_three), (std::vector<std::string>{"msg_4_q", "msg_3_q", "msg_2_a"}));
  auto nothing = store().recent_for_context("cnv_1", 0);
  ASSERT_TRUE(nothing);
  EXPECT_TRUE(nothing->empty());
}

TEST_P(StoreConversationTest, StatsCountActiveRolesFailuresTokensTimesAndLatency) {
  create(make_conversation("cnv_1", "usr_alice", "t"));
  auto empty = store().stats("cnv_1");
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_EQ(empty->user_messages, 0);
  EXPECT_EQ(empty->prompt_tokens, 0);
  EXPECT_EQ(empty->first_message_at, std::nullopt);
  EXPECT_EQ(empty->last_message_at, std::nullopt);
  EXPECT_EQ(empty->average_latency_ms, std::nullopt);

  MessageRecord system = user_message("msg_sys", "cnv_1", "be nice", kT0);
  system.role = "system";
  system.sender_id = std::nullopt;
  ASSERT_TRUE(store().add_exchange(system, answer("msg_0_a", "cnv_1", "msg_sys", kT0 + 1)));
  AnswerUpdate slow = finished("hello", "complete", kT0 + 2);
  slow.latency_ms = 300;
  ASSERT_TRUE(store().update_answer("msg_0_a", slow));
  auto [q, a] = exchange("cnv_1", "1", "q", "a", kT0 + 10);  // latency 100
  ASSERT_TRUE(store().add_exchange(std::nullopt, answer("msg_1_b", "cnv_1", q.id, kT0 + 20)));
  ASSERT_TRUE(store().update_answer("msg_1_b", finished("x", "cancelled", kT0 + 21)));

  auto s = store().stats("cnv_1");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->user_messages, 1);
  EXPECT_EQ(s->assistant_messages, 2);  // msg_0_a and msg_1_b; a was superseded
  EXPECT_EQ(s->system_messages, 1);
  EXPECT_EQ(s->failed_messages, 1);
  EXPECT_EQ(s->prompt_tokens, 30);  // every answer
  EXPECT_EQ(s->completion_tokens, 60);
  EXPECT_EQ(s->first_message_at, kT0);
  EXPECT_EQ(s->last_message_at, kT0 + 20);
  ASSERT_TRUE(s->average_latency_ms.has_value());
  EXPECT_DOUBLE_EQ(*s->average_latency_ms, 200.0);  // complete answers only
}

TEST_P(StoreConversationTest, FailsOnlyStaleGeneratingAnswersAndKeepsTheirContent) {
  create(make_conversation("cnv_1", "usr_alice", "t"));
  ASSERT_TRUE(store().add_exchange(user_message("msg_q", "cnv_1", "q", kT0),
                                   answer("msg_old", "cnv_1", "msg_q", kT0)));
  AnswerUpdate checkpoint = finished("so far", "generating", kT0 + 5);
  ASSERT_TRUE(store().update_answer("msg_old", checkpoint));
  ASSERT_TRUE(store().add_exchange(std::nullopt, answer("msg_fresh", "cnv_1", "msg_other", kT0 + 100)));
  auto [q, done] = exchange("cnv_1", "d", "q", "complete long ago", kT0 - 1000);

  auto failed = store().fail_stale_answers(kT0 + 50, kT0 + 200);
  ASSERT_TRUE(failed) << failed.error().message;
  EXPECT_EQ(*failed, 1);
  auto old = store().get_message("msg_old");
  ASSERT_TRUE(old && old->has_value());
  EXPECT_EQ((*old)->status, "failed");
  EXPECT_EQ((*old)->error_code, "INTERRUPTED");
  EXPECT_EQ((*old)->content, "so far");
  EXPECT_EQ((*old)->updated_at, kT0 + 200);
  auto fresh = store().get_message("msg_fresh");
  ASSERT_TRUE(fresh && fresh->has_value());
  EXPECT_EQ((*fresh)->status, "generating");
  auto untouched = store().get_message(done.id);
  ASSERT_TRUE(untouched && untouched->has_value());
  EXPECT_EQ((*untouched)->status, "complete");
  EXPECT_EQ((*untouched)->error_code, std::nullopt);

  // A late writer of the interrupted answer is refused; running again finds nothing more.
  auto late = store().update_answer("msg_old", finished("late", "complete", kT0 + 300));
  ASSERT_TRUE(late);
  EXPECT_FALSE(*late);
  auto again = store().fail_stale_answers(kT0 + 50, kT0 + 400);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0);
}

// ---- deletion --------------------------------------------------------------------------------

TEST_P(StoreConversationTest, DeletingAConversationLeavesNoMessagesAndNoIndexEntries) {
  create(make_conversation("cnv_1", "usr_alice", "Lisbon"));
  create(make_conversation("cnv_2", "usr_alice", "Porto"));
  exchange("cnv_1", "1", "pastel de nata", "yes", kT0 + 1);
  exchange("cnv_1", "2", "more", "sure", kT0 + 2);
  ASSERT_TRUE(store().add_exchange(std::nullopt, answer("msg_2_b", "cnv_1", "msg_2_q", kT0 + 3)));
  exchange("cnv_2", "3", "francesinha", "ok", kT0 + 4);
  if (GetParam() == Dialect::kSqlite) {
    EXPECT_EQ(fts_documents(), 5 + 2 + 2);  // 5 + 2 messages, 2 titles
  }

  auto deleted = store().delete_conversation("cnv_1");
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_TRUE(*deleted);
  EXPECT_EQ(count("SELECT COUNT(*) FROM conversations"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages WHERE conversation_id = 'cnv_1'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages"), 2);
  if (GetParam() == Dialect::kSqlite) {
    EXPECT_EQ(fts_documents(), 2 + 1);
  }
  expect_fts_consistent();
  EXPECT_TRUE(search("nata").empty());
  EXPECT_TRUE(search("lisbon").empty());
  EXPECT_EQ(search("francesinha"), std::vector<std::string>{"cnv_2"});

  auto again = store().delete_conversation("cnv_1");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
}

TEST_P(StoreConversationTest, DeletingAUserLeavesNoneOfTheirConversationsMessagesOrIndexEntries) {
  create(make_conversation("cnv_a", "usr_alice", "Lisbon"));
  create(make_conversation("cnv_b", "usr_alice", "Porto"));
  create(make_conversation("cnv_bob", "usr_bob", "Faro"));
  exchange("cnv_a", "1", "one", "two", kT0 + 1);
  exchange("cnv_b", "2", "three", "four", kT0 + 2);
  exchange("cnv_bob", "3", "five", "six", kT0 + 3);

  UserStore users(db());
  auto removed = users.remove("usr_alice");
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(*removed);
  EXPECT_EQ(count("SELECT COUNT(*) FROM conversations WHERE user_id = 'usr_alice'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages WHERE conversation_id IN ('cnv_a', 'cnv_b')"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages"), 2);
  if (GetParam() == Dialect::kSqlite) {
    EXPECT_EQ(fts_documents(), 2 + 1);  // bob's two messages and one title
  }
  expect_fts_consistent();
  EXPECT_EQ(search("faro", "usr_bob"), std::vector<std::string>{"cnv_bob"});
  EXPECT_TRUE(search("two").empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConversationTest,
                         ::testing::Values(Dialect::kSqlite, Dialect::kPostgres), test::backend_name);

}  // namespace
}  // namespace parley::store
