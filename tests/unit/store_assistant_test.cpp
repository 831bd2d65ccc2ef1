// The assistant's records on both backends, against the real embedded migrations: every field of
// turns, SMS decisions and calls read back (optional fields set and unset), unknown users and
// conversations refused as kNotFound, the schema's CHECKs, a deleted conversation's link cleared,
// a deleted user's records gone, and the merged history: order across kinds with ties broken by
// id, the kinds mask, since/until bounds, keyset pages that return every item exactly once, and
// limit clamping. PostgreSQL cases run when PARLEY_TEST_POSTGRES_URL is set and are skipped
// otherwise.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "backend_fixture.hpp"
#include "store/assistant_store.hpp"
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

TurnRecord make_turn(std::string_view id, std::int64_t at, std::string_view user_id = "usr_alice") {
  TurnRecord t;
  t.id = std::string(id);
  t.user_id = std::string(user_id);
  t.input_text = "What is the capital of France?";
  t.gpt_response = "The capital of France is Paris.";
  t.input_tokens = 10;
  t.output_tokens = 8;
  t.processing_time_ms = 1250.5;
  t.model_used = "gpt-4o-mini";
  t.tts_voice = "nova";
  t.language = "en";
  t.request_id = "req_turn";
  t.created_at = at;
  return t;
}

SmsRecord make_sms(std::string_view id, std::int64_t at, std::string_view user_id = "usr_alice") {
  SmsRecord s;
  s.id = std::string(id);
  s.user_id = std::string(user_id);
  s.incoming_text = "Can you help me tomorrow?";
  s.decision = "yes";
  s.reply_text = "Yes, I can help you tomorrow.";
  s.model_used = "gpt-4o-mini";
  s.input_tokens = 40;
  s.output_tokens = 12;
  s.request_id = "req_sms";
  s.created_at = at;
  return s;
}

// A call started at `at` and recorded a minute later (history orders calls by started_at).
CallRecord make_call(std::string_view id, std::int64_t at, std::string_view user_id = "usr_alice") {
  CallRecord c;
  c.id = std::string(id);
  c.user_id = std::string(user_id);
  c.direction = "inbound";
  c.from_number = "+14155550123";
  c.to_number = "+14155550199";
  c.status = "missed";
  c.started_at = at;
  c.created_at = at + 60'000;
  return c;
}

void expect_same(const TurnRecord& a, const TurnRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.user_id, b.user_id);
  EXPECT_EQ(a.conversation_id, b.conversation_id);
  EXPECT_EQ(a.message_id, b.message_id);
  EXPECT_EQ(a.input_text, b.input_text);
  EXPECT_EQ(a.gpt_response, b.gpt_response);
  EXPECT_EQ(a.input_tokens, b.input_tokens);
  EXPECT_EQ(a.output_tokens, b.output_tokens);
  EXPECT_EQ(a.processing_time_ms, b.processing_time_ms);  // exactly
  EXPECT_EQ(a.model_used, b.model_used);
  EXPECT_EQ(a.tts_voice, b.tts_voice);
  EXPECT_EQ(a.language, b.language);
  EXPECT_EQ(a.speech, b.speech);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.created_at, b.created_at);
}

void expect_same(const SmsRecord& a, const SmsRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.user_id, b.user_id);
  EXPECT_EQ(a.incoming_text, b.incoming_text);
  EXPECT_EQ(a.decision, b.decision);
  EXPECT_EQ(a.reply_text, b.reply_text);
  EXPECT_EQ(a.send_reply, b.send_reply);
  EXPECT_EQ(a.model_used, b.model_used);
  EXPECT_EQ(a.input_tokens, b.input_tokens);
  EXPECT_EQ(a.output_tokens, b.output_tokens);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.created_at, b.created_at);
}

void expect_same(const CallRecord& a, const CallRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.user_id, b.user_id);
  EXPECT_EQ(a.direction, b.direction);
  EXPECT_EQ(a.from_number, b.from_number);
  EXPECT_EQ(a.to_number, b.to_number);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.ended_at, b.ended_at);
  EXPECT_EQ(a.duration_seconds, b.duration_seconds);
  EXPECT_EQ(a.conversation_id, b.conversation_id);
  EXPECT_EQ(a.created_at, b.created_at);
}

std::vector<std::string> ids(const std::vector<HistoryItem>& items) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const HistoryItem& item : items) out.push_back(item.id);
  return out;
}

constexpr unsigned kAll = 7;
constexpr auto kTurns = static_cast<unsigned>(HistoryKind::kConversation);
constexpr auto kCalls = static_cast<unsigned>(HistoryKind::kCall);
constexpr auto kSms = static_cast<unsigned>(HistoryKind::kSms);

class StoreAssistantTest : public test::BackendTest {
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

  AssistantStore& store() {
    if (!store_) store_.emplace(db());
    return *store_;
  }

  void add(const TurnRecord& t) {
    auto added = store().add_turn(t);
    ASSERT_TRUE(added) << t.id << ": " << added.error().message;
  }
  void add(const SmsRecord& s) {
    auto added = store().add_sms(s);
    ASSERT_TRUE(added) << s.id << ": " << added.error().message;
  }
  void add(const CallRecord& c) {
    auto added = store().add_call(c);
    ASSERT_TRUE(added) << c.id << ": " << added.error().message;
  }

  void create_conversation(std::string_view id, std::string_view user_id = "usr_alice") {
    ConversationRecord c;
    c.id = std::string(id);
    c.user_id = std::string(user_id);
    c.title = "chat";
    c.created_at = kT0;
    c.updated_at = kT0;
    auto created = ConversationStore(db()).create_conversation(c);
    ASSERT_TRUE(created) << created.error().message;
  }

  std::vector<HistoryItem> history(HistoryQuery q) {
    if (q.user_id.empty()) q.user_id = "usr_alice";
    auto items = store().history(q);
    EXPECT_TRUE(items) << items.error().message;
    return items ? std::move(*items) : std::vector<HistoryItem>{};
  }

  std::vector<std::string> history_ids(unsigned kinds, std::optional<std::int64_t> since = std::nullopt,
                                       std::optional<std::int64_t> until = std::nullopt) {
    HistoryQuery q;
    q.kinds = kinds;
    q.since = since;
    q.until = until;
    q.limit = kMaxPageLimit;
    return ids(history(q));
  }

  // The one record of `id` in alice's whole history.
  template <class Record>
  std::optional<Record> find(std::string_view id) {
    for (HistoryItem& item : history(HistoryQuery{.limit = kMaxPageLimit})) {
      if (item.id == id) {
        const Record* record = std::get_if<Record>(&item.record);
        EXPECT_NE(record, nullptr) << id;
        if (record == nullptr) return std::nullopt;
        return *record;
      }
    }
    return std::nullopt;
  }

  std::int64_t count(std::string_view sql) {
    auto r = db().query(sql);
    EXPECT_TRUE(r) << sql << ": " << r.error().message;
    return r && !r->rows.empty() ? r->rows.front().get_int(0) : -1;
  }

  // A mix of the three kinds with shared times: (at, id) pairs, listed in history order.
  std::vector<std::string> add_mixed() {
    add(make_turn("turn_a", kT0 + 30));
    add(make_sms("sms_a", kT0 + 30));
    add(make_call("call_a", kT0 + 30));
    add(make_turn("turn_b", kT0 + 30));
    add(make_call("call_b", kT0 + 20));
    add(make_sms("sms_b", kT0 + 20));
    add(make_sms("sms_c", kT0 + 10));
    add(make_turn("turn_c", kT0 + 10));
    add(make_turn("turn_d", kT0 + 5));
    add(make_call("call_c", kT0 + 1));
    add(make_call("call_d", kT0 + 1));
    return {"turn_b", "turn_a", "sms_a",  "call_a", "sms_b", "call_b",
            "turn_c", "sms_c",  "turn_d", "call_d", "call_c"};
  }

  std::optional<AssistantStore> store_;
};

// ---- records ---------------------------------------------------------------------------------

TEST_P(StoreAssistantTest, RoundTripsEveryFieldOfATurn) {
  create_conversation("cnv_1");
  TurnRecord full = make_turn("turn_full", kT0 + 2);
  full.conversation_id = "cnv_1";
  full.message_id = "msg_answer";
  full.speech = true;
  full.processing_time_ms = 0.1 + 0.2;  // 0.30000000000000004: no digit lost
  full.input_text = "¿Qué tal? 東京 \"quoted\" 'single' \\ back";
  TurnRecord bare = make_turn("turn_bare", kT0 + 1);
  bare.input_tokens = 0;
  bare.processing_time_ms = 1e-3;
  add(full);
  add(bare);

  std::optional<TurnRecord> read_full = find<TurnRecord>("turn_full");
  ASSERT_TRUE(read_full);
  expect_same(*read_full, full);
  std::optional<TurnRecord> read_bare = find<TurnRecord>("turn_bare");
  ASSERT_TRUE(read_bare);
  expect_same(*read_bare, bare);
  EXPECT_FALSE(read_bare->conversation_id);
  EXPECT_FALSE(read_bare->message_id);
  EXPECT_FALSE(read_bare->speech);
}

TEST_P(StoreAssistantTest, RoundTripsEveryFieldOfAnSmsDecision) {
  SmsRecord yes = make_sms("sms_yes", kT0);
  yes.send_reply = true;
  SmsRecord no = make_sms("sms_no", kT0 + 1);
  no.decision = "no";
  no.reply_text = "";
  no.send_reply = false;
  add(yes);
  add(no);

  std::optional<SmsRecord> read_yes = find<SmsRecord>("sms_yes");
  ASSERT_TRUE(read_yes);
  expect_same(*read_yes, yes);
  std::optional<SmsRecord> read_no = find<SmsRecord>("sms_no");
  ASSERT_TRUE(read_no);
  expect_same(*read_no, no);
}

TEST_P(StoreAssistantTest, RoundTripsEveryFieldOfACall) {
  create_conversation("cnv_1");
  CallRecord full = make_call("call_full", kT0);
  full.direction = "outbound";
  full.status = "completed";
  full.ended_at = kT0 + 125'000;
  full.duration_seconds = 125;
  full.conversation_id = "cnv_1";
  CallRecord bare = make_call("call_bare", kT0 + 1);
  add(full);
  add(bare);

  auto read_full = store().get_call("call_full");
  ASSERT_TRUE(read_full) << read_full.error().message;
  ASSERT_TRUE(*read_full);
  expect_same(**read_full, full);
  auto read_bare = store().get_call("call_bare");
  ASSERT_TRUE(read_bare && *read_bare);
  expect_same(**read_bare, bare);
  EXPECT_FALSE((*read_bare)->ended_at);
  EXPECT_FALSE((*read_bare)->conversation_id);

  std::optional<CallRecord> listed = find<CallRecord>("call_full");
  ASSERT_TRUE(listed);
  expect_same(*listed, full);
}

TEST_P(StoreAssistantTest, GetCallOfAnUnknownIdIsEmpty) {
  add(make_call("call_1", kT0));
  auto missing = store().get_call("call_nope");
  ASSERT_TRUE(missing) << missing.error().message;
  EXPECT_FALSE(*missing);
}

TEST_P(StoreAssistantTest, RefusesAnUnknownUserOrConversationAsNotFound) {
  auto turn = store().add_turn(make_turn("turn_1", kT0, "usr_nobody"));
  ASSERT_FALSE(turn);
  EXPECT_EQ(turn.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(turn.error().param, "user_id");
  auto sms = store().add_sms(make_sms("sms_1", kT0, "usr_nobody"));
  ASSERT_FALSE(sms);
  EXPECT_EQ(sms.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(sms.error().param, "user_id");
  auto call = store().add_call(make_call("call_1", kT0, "usr_nobody"));
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(call.error().param, "user_id");

  TurnRecord linked_turn = make_turn("turn_2", kT0);
  linked_turn.conversation_id = "cnv_nope";
  auto bad_turn = store().add_turn(linked_turn);
  ASSERT_FALSE(bad_turn);
  EXPECT_EQ(bad_turn.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(bad_turn.error().param, "conversation_id");
  CallRecord linked_call = make_call("call_2", kT0);
  linked_call.conversation_id = "cnv_nope";
  auto bad_call = store().add_call(linked_call);
  ASSERT_FALSE(bad_call);
  EXPECT_EQ(bad_call.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(bad_call.error().param, "conversation_id");

  // Both missing: the user is named.
  TurnRecord orphan = make_turn("turn_3", kT0, "usr_nobody");
  orphan.conversation_id = "cnv_nope";
  auto both = store().add_turn(orphan);
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(both.error().param, "user_id");

  EXPECT_TRUE(history({}).empty());
  EXPECT_EQ(count("SELECT COUNT(*) FROM assistant_turns"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM sms_decisions"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM calls"), 0);
}

TEST_P(StoreAssistantTest, RefusesADuplicateIdAsConflict) {
  add(make_turn("turn_1", kT0));
  add(make_sms("sms_1", kT0));
  add(make_call("call_1", kT0));
  auto turn = store().add_turn(make_turn("turn_1", kT0 + 1, "usr_bob"));
  ASSERT_FALSE(turn);
  EXPECT_EQ(turn.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(turn.error().param, "id");
  auto sms = store().add_sms(make_sms("sms_1", kT0 + 1));
  ASSERT_FALSE(sms);
  EXPECT_EQ(sms.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(sms.error().param, "id");
  auto call = store().add_call(make_call("call_1", kT0 + 1));
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(call.error().param, "id");
  auto empty = store().add_call(make_call("", kT0));
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().kind, ErrorKind::kInternal);
}

TEST_P(StoreAssistantTest, TheSchemaRefusesValuesOutsideItsVocabulary) {
  SmsRecord maybe = make_sms("sms_1", kT0);
  maybe.decision = "maybe";
  EXPECT_FALSE(store().add_sms(maybe));
  CallRecord sideways = make_call("call_1", kT0);
  sideways.direction = "sideways";
  EXPECT_FALSE(store().add_call(sideways));
  CallRecord ringing = make_call("call_2", kT0);
  ringing.status = "ringing";
  EXPECT_FALSE(store().add_call(ringing));
  for (const char* status : {"completed", "missed", "failed", "busy", "rejected", "no_answer"}) {
    CallRecord c = make_call(fmt::format("call_{}", status), kT0);
    c.status = status;
    add(c);
  }
  EXPECT_EQ(history_ids(kAll).size(), 6u);
}

TEST_P(StoreAssistantTest, DeletingAConversationKeepsTheRecordsAndClearsTheLink) {
  create_conversation("cnv_gone");
  create_conversation("cnv_kept");
  TurnRecord linked = make_turn("turn_linked", kT0);
  linked.conversation_id = "cnv_gone";
  linked.message_id = "msg_1";
  TurnRecord other = make_turn("turn_other", kT0 + 1);
  other.conversation_id = "cnv_kept";
  other.message_id = "msg_2";
  CallRecord call = make_call("call_linked", kT0);
  call.conversation_id = "cnv_gone";
  add(linked);
  add(other);
  add(call);

  auto deleted = ConversationStore(db()).delete_conversation("cnv_gone");
  ASSERT_TRUE(deleted && *deleted);

  std::optional<TurnRecord> turn = find<TurnRecord>("turn_linked");
  ASSERT_TRUE(turn);
  EXPECT_FALSE(turn->conversation_id);
  EXPECT_FALSE(turn->message_id);
  EXPECT_EQ(turn->gpt_response, linked.gpt_response);
  std::optional<TurnRecord> untouched = find<TurnRecord>("turn_other");
  ASSERT_TRUE(untouched);
  EXPECT_EQ(untouched->conversation_id, "cnv_kept");
  EXPECT_EQ(untouched->message_id, "msg_2");
  auto read_call = store().get_call("call_linked");
  ASSERT_TRUE(read_call && *read_call);
  EXPECT_FALSE((*read_call)->conversation_id);
}

TEST_P(StoreAssistantTest, DeletingAUserRemovesTheirTurnsDecisionsAndCalls) {
  create_conversation("cnv_1");
  TurnRecord turn = make_turn("turn_alice", kT0);
  turn.conversation_id = "cnv_1";
  turn.message_id = "msg_1";
  add(turn);
  add(make_sms("sms_alice", kT0));
  CallRecord call = make_call("call_alice", kT0);
  call.conversation_id = "cnv_1";
  add(call);
  add(make_turn("turn_bob", kT0, "usr_bob"));
  add(make_sms("sms_bob", kT0, "usr_bob"));
  add(make_call("call_bob", kT0, "usr_bob"));

  auto removed = UserStore(db()).remove("usr_alice");
  ASSERT_TRUE(removed && *removed);

  EXPECT_TRUE(history({}).empty());
  EXPECT_EQ(count("SELECT COUNT(*) FROM assistant_turns WHERE user_id = 'usr_alice'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM sms_decisions WHERE user_id = 'usr_alice'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM calls WHERE user_id = 'usr_alice'"), 0);
  auto gone = store().get_call("call_alice");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone);
  EXPECT_EQ(history(HistoryQuery{.user_id = "usr_bob"}).size(), 3u);
}

// ---- history ---------------------------------------------------------------------------------

TEST_P(StoreAssistantTest, HistoryMergesTheKindsNewestFirstWithTiesByIdDescending) {
  const std::vector<std::string> expected = add_mixed();
  add(make_turn("turn_bob", kT0 + 30, "usr_bob"));
  add(make_call("call_bob", kT0 + 25, "usr_bob"));

  const std::vector<HistoryItem> items = history({});
  EXPECT_EQ(ids(items), expected);
  for (const HistoryItem& item : items) {
    switch (item.kind) {
      case HistoryKind::kConversation: {
        const auto* t = std::get_if<TurnRecord>(&item.record);
        ASSERT_NE(t, nullptr) << item.id;
        EXPECT_EQ(item.at, t->created_at);
        EXPECT_EQ(item.id, t->id);
        break;
      }
      case HistoryKind::kCall: {
        const auto* c = std::get_if<CallRecord>(&item.record);
        ASSERT_NE(c, nullptr) << item.id;
        EXPECT_EQ(item.at, c->started_at);  // not created_at
        EXPECT_EQ(item.id, c->id);
        break;
      }
      case HistoryKind::kSms: {
        const auto* s = std::get_if<SmsRecord>(&item.record);
        ASSERT_NE(s, nullptr) << item.id;
        EXPECT_EQ(item.at, s->created_at);
        EXPECT_EQ(item.id, s->id);
        break;
      }
    }
  }
  for (std::size_t i = 1; i < items.size(); ++i) {
    EXPECT_TRUE(items[i - 1].at > items[i].at ||
                (items[i - 1].at == items[i].at && items[i - 1].id > items[i].id))
        << i;
  }

  EXPECT_EQ(ids(history(HistoryQuery{.user_id = "usr_bob"})),
            (std::vector<std::string>{"turn_bob", "call_bob"}));
  EXPECT_TRUE(history(HistoryQuery{.user_id = "usr_nobody"}).empty());
}

TEST_P(StoreAssistantTest, HistoryKeepsOnlyTheKindsAskedFor) {
  const std::vector<std::string> all = add_mixed();
  auto only = [&](std::string_view prefix) {
    std::vector<std::string> out;
    for (const std::string& id : all) {
      if (id.starts_with(prefix)) out.push_back(id);
    }
    return out;
  };
  auto without = [&](std::string_view prefix) {
    std::vector<std::string> out;
    for (const std::string& id : all) {
      if (!id.starts_with(prefix)) out.push_back(id);
    }
    return out;
  };
  EXPECT_EQ(history_ids(kTurns), only("turn_"));
  EXPECT_EQ(history_ids(kCalls), only("call_"));
  EXPECT_EQ(history_ids(kSms), only("sms_"));
  EXPECT_EQ(history_ids(kCalls | kSms), without("turn_"));
  EXPECT_EQ(history_ids(kTurns | kSms), without("call_"));
  EXPECT_EQ(history_ids(kTurns | kCalls), without("sms_"));
  EXPECT_EQ(history_ids(kAll), all);
  EXPECT_TRUE(history_ids(0).empty());
  EXPECT_TRUE(history_ids(8).empty());  // no kind's bit
}

TEST_P(StoreAssistantTest, HistoryBoundsAreSinceInclusiveAndUntilExclusive) {
  add_mixed();
  EXPECT_EQ(history_ids(kAll, kT0 + 20),
            (std::vector<std::string>{"turn_b", "turn_a", "sms_a", "call_a", "sms_b", "call_b"}));
  EXPECT_EQ(history_ids(kAll, std::nullopt, kT0 + 10),
            (std::vector<std::string>{"turn_d", "call_d", "call_c"}));
  EXPECT_EQ(history_ids(kAll, kT0 + 10, kT0 + 30),
            (std::vector<std::string>{"sms_b", "call_b", "turn_c", "sms_c"}));
  EXPECT_EQ(history_ids(kAll, kT0 + 20, kT0 + 21), (std::vector<std::string>{"sms_b", "call_b"}));
  EXPECT_EQ(history_ids(kCalls, kT0 + 1, kT0 + 30), (std::vector<std::string>{"call_b", "call_d", "call_c"}));
  EXPECT_TRUE(history_ids(kAll, kT0 + 20, kT0 + 20).empty());
  EXPECT_TRUE(history_ids(kAll, kT0 + 31).empty());
  EXPECT_TRUE(history_ids(kAll, std::nullopt, kT0 + 1).empty());
}

TEST_P(StoreAssistantTest, CursorPagesReturnEveryItemOnceInOrder) {
  const std::vector<std::string> all = add_mixed();
  struct Case {
    unsigned kinds;
    std::optional<std::int64_t> since;
    std::optional<std::int64_t> until;
  };
  for (const Case& c :
       {Case{kAll, std::nullopt, std::nullopt}, Case{kCalls | kSms, std::nullopt, std::nullopt},
        Case{kAll, kT0 + 5, kT0 + 30}, Case{kTurns, kT0 + 10, std::nullopt}}) {
    const std::vector<std::string> expected = history_ids(c.kinds, c.since, c.until);
    ASSERT_FALSE(expected.empty());
    for (std::int64_t limit : {1, 2, 3}) {
      std::vector<std::string> walked;
      std::set<std::string> seen;
      HistoryQuery q;
      q.kinds = c.kinds;
      q.since = c.since;
      q.until = c.until;
      q.limit = limit;
      for (int page = 0; page < 100; ++page) {
        const std::vector<HistoryItem> items = history(q);
        ASSERT_LE(static_cast<std::int64_t>(items.size()), limit);
        if (items.empty()) break;
        for (const HistoryItem& item : items) {
          EXPECT_TRUE(seen.insert(item.id).second) << "repeated " << item.id << " at limit " << limit;
          walked.push_back(item.id);
        }
        q.after = HistoryCursor{items.back().at, items.back().id};
      }
      EXPECT_EQ(walked, expected) << "kinds " << c.kinds << ", limit " << limit;
    }
  }
  EXPECT_EQ(history_ids(kAll), all);
}

// Ids order bytewise (upper case before lower case), in SQL as in the merge, whatever the
// PostgreSQL database's default collation.
TEST_P(StoreAssistantTest, IdsCompareBytewise) {
  add(make_turn("turn_B", kT0));
  add(make_turn("turn_a", kT0));
  add(make_sms("sms_Z", kT0));
  add(make_sms("sms_y", kT0));
  add(make_call("call_z", kT0));
  add(make_call("call_A", kT0));
  const std::vector<std::string> expected = {"turn_a", "turn_B", "sms_y", "sms_Z", "call_z", "call_A"};
  EXPECT_EQ(history_ids(kAll), expected);
  std::vector<std::string> walked;
  HistoryQuery q;
  q.limit = 1;
  for (int page = 0; page < 10; ++page) {
    const std::vector<HistoryItem> items = history(q);
    if (items.empty()) break;
    walked.push_back(items.front().id);
    q.after = HistoryCursor{items.front().at, items.front().id};
  }
  EXPECT_EQ(walked, expected);
}

TEST_P(StoreAssistantTest, ItemsAddedMeanwhileDoNotShiftTheNextPage) {
  add_mixed();
  HistoryQuery q;
  q.limit = 4;
  const std::vector<HistoryItem> first = history(q);
  ASSERT_EQ(first.size(), 4u);
  add(make_sms("sms_new", kT0 + 100));
  add(make_turn("turn_zz", kT0 + 30));  // the newest of the first page's time: before the cursor
  q.after = HistoryCursor{first.back().at, first.back().id};
  EXPECT_EQ(ids(history(q)), (std::vector<std::string>{"sms_b", "call_b", "turn_c", "sms_c"}));
}

TEST_P(StoreAssistantTest, HistoryClampsTheLimit) {
  add_mixed();
  EXPECT_TRUE(history(HistoryQuery{.limit = 0}).empty());
  EXPECT_TRUE(history(HistoryQuery{.limit = -5}).empty());
  EXPECT_EQ(history(HistoryQuery{.limit = 4}).size(), 4u);

  // kMaxPageLimit + 1 items over the three kinds: the largest page is kMaxPageLimit.
  Status filled = db().transaction([&](Connection& c) -> Status {
    AssistantStore in_tx(c);
    for (std::int64_t i = 0; i < kMaxPageLimit + 1 - 11; ++i) {
      const std::int64_t at = kT0 + 1000 + i;
      Status added = i % 3 == 0   ? in_tx.add_turn(make_turn(fmt::format("turn_n{:05}", i), at))
                     : i % 3 == 1 ? in_tx.add_sms(make_sms(fmt::format("sms_n{:05}", i), at))
                                  : in_tx.add_call(make_call(fmt::format("call_n{:05}", i), at));
      if (!added) return added;
    }
    return {};
  });
  ASSERT_TRUE(filled) << filled.error().message;
  const std::vector<HistoryItem> page = history(HistoryQuery{.limit = kMaxPageLimit * 5});
  ASSERT_EQ(static_cast<std::int64_t>(page.size()), kMaxPageLimit);
  EXPECT_EQ(page.front().at, kT0 + 1000 + kMaxPageLimit - 11);
  // The one item left out is the oldest.
  EXPECT_EQ(page.back().id, "call_d");
  HistoryQuery rest;
  rest.limit = kMaxPageLimit;
  rest.after = HistoryCursor{page.back().at, page.back().id};
  EXPECT_EQ(ids(history(rest)), (std::vector<std::string>{"call_c"}));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreAssistantTest,
                         ::testing::Values(Dialect::kSqlite, Dialect::kPostgres), test::backend_name);

}  // namespace
}  // namespace parley::store
