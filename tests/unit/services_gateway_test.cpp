// The /v1 gateway's request preparation and model listing, with the in-process demo provider and
// stand-in OpenAI-compatible providers (never called here): what is forwarded, what is refused,
// and which models each caller may use under each credential mode.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <string>

#include "provider/demo_provider.hpp"
#include "run_awaitable.hpp"
#include "services/gateway_service.hpp"

namespace parley::services {
namespace {

namespace asio = boost::asio;
namespace bj = boost::json;

using test::run;

// A provider that needs a key and is never reached in these tests.
class KeyedProvider final : public provider::Provider {
 public:
  explicit KeyedProvider(std::string name) : name_(std::move(name)) {}
  [[nodiscard]] const std::string& name() const override { return name_; }
  [[nodiscard]] bool needs_key() const override { return true; }
  asio::awaitable<Result<provider::ProviderResponse>> post(const provider::CallContext&, std::string_view,
                                                           std::string) override {
    co_return fail(ErrorKind::kInternal, "not reached");
  }
  asio::awaitable<Result<provider::StreamOutcome>> post_stream(const provider::CallContext&, std::string_view,
                                                               std::string, provider::EventSink) override {
    co_return fail(ErrorKind::kInternal, "not reached");
  }
  asio::awaitable<Result<provider::ProviderResponse>> post_raw(const provider::CallContext&, std::string_view,
                                                               std::string, std::string) override {
    co_return fail(ErrorKind::kInternal, "not reached");
  }
  asio::awaitable<Status> verify_key(const provider::CallContext&) override { co_return Status{}; }

 private:
  std::string name_;
};

// The vault as a map of "user/provider" → key.
class MapOwnKeys final : public OwnKeys {
 public:
  explicit MapOwnKeys(const std::map<std::string, std::string>& keys) : keys_(keys) {}
  asio::awaitable<Result<std::optional<crypto::Secret>>> find(std::string user_id,
                                                              std::string provider) override {
    auto it = keys_.find(user_id + "/" + provider);
    if (it == keys_.end()) co_return std::optional<crypto::Secret>{};
    co_return std::optional<crypto::Secret>(crypto::Secret(it->second));
  }

 private:
  const std::map<std::string, std::string>& keys_;
};

class GatewayTest : public ::testing::Test {
 protected:
  GatewayTest() {
    provider::ProviderEntry system;
    system.provider = std::make_shared<KeyedProvider>("sys");
    system.credentials = provider::Credentials::kSystem;
    system.system_key = crypto::Secret(std::string("sk-system-0123456789"));
    system.models = {"gpt-4o-mini", "text-embedding-3-small", "mock-*"};
    registry_.add(std::move(system));
    provider::ProviderEntry byok;
    byok.provider = std::make_shared<KeyedProvider>("own");
    byok.credentials = provider::Credentials::kByok;
    byok.models = {"own-model", "gpt-4o-mini"};
    registry_.add(std::move(byok));
    provider::ProviderEntry demo;
    demo.provider = std::make_shared<provider::DemoProvider>();
    demo.credentials = provider::Credentials::kSystem;
    demo.models = {"demo", "demo-*"};
    registry_.add(std::move(demo));
    chat_ = std::make_unique<ChatService>(registry_, own_keys_, "demo");
    gateway_ = std::make_unique<GatewayService>(*chat_, 1'700'000'000);
    alice_.user_id = "alice";
    bob_.user_id = "bob";
    vault_["bob/own"] = "sk-bob-own-key-0123";
  }

  Result<GatewayCall> prepare(const std::string& body, GatewayEndpoint ep = GatewayEndpoint::kChatCompletions,
                              const auth::Principal* who = nullptr) {
    return run(gateway_->prepare(who != nullptr ? *who : alice_, ep, body, "req-1"));
  }

  provider::ProviderRegistry registry_;
  std::map<std::string, std::string> vault_;
  MapOwnKeys own_keys_{vault_};
  std::unique_ptr<ChatService> chat_;
  std::unique_ptr<GatewayService> gateway_;
  auth::Principal alice_;
  auth::Principal bob_;
};

TEST_F(GatewayTest, ANonStreamedBodyIsForwardedByteForByteWithTheSystemKey) {
  std::string body =
      R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"seed":7,"temperature":0.70,)"
      R"("tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"x_custom":{"a":[1,2]}})";
  auto call = prepare(body);
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_EQ(call->body, body);
  EXPECT_EQ(call->path, "/chat/completions");
  EXPECT_FALSE(call->stream);
  EXPECT_EQ(call->route.entry->provider->name(), "sys");
  ASSERT_TRUE(call->route.call.api_key);
  EXPECT_EQ(call->route.call.api_key->reveal(), "sk-system-0123456789");
  EXPECT_EQ(call->route.call.request_id, "req-1");
}

TEST_F(GatewayTest, AStreamAlwaysAsksForUsageAndRemembersWhetherTheClientDid) {
  auto plain =
      prepare(R"({"model":"mock-1","messages":[{"role":"user","content":"hi"}],"stream":true,"n":2})");
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->stream);
  EXPECT_FALSE(plain->client_wants_usage);
  bj::value sent = bj::parse(plain->body);
  EXPECT_EQ(sent.at("stream_options").at("include_usage"), true);
  EXPECT_EQ(sent.at("n"), 2);

  auto off = prepare(
      R"({"model":"mock-1","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false,"other":1}})");
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->client_wants_usage);
  sent = bj::parse(off->body);
  EXPECT_EQ(sent.at("stream_options").at("include_usage"), true);
  EXPECT_EQ(sent.at("stream_options").at("other"), 1);

  std::string asked =
      R"({"model":"mock-1","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}})";
  auto on = prepare(asked);
  ASSERT_TRUE(on);
  EXPECT_TRUE(on->client_wants_usage);
  EXPECT_EQ(on->body, asked) << "nothing to change: forwarded as sent";
}

TEST_F(GatewayTest, BadRequestsAreRefusedBeforeAnyProviderCall) {
  auto expect = [&](const std::string& body, ErrorKind kind, const char* param,
                    GatewayEndpoint ep = GatewayEndpoint::kChatCompletions) {
    auto call = prepare(body, ep);
    ASSERT_FALSE(call) << body;
    EXPECT_EQ(call.error().kind, kind) << body;
    if (param != nullptr) {
      EXPECT_EQ(call.error().param, param) << body;
    }
  };
  expect("{not json", ErrorKind::kInvalidJson, nullptr);
  expect("[1]", ErrorKind::kBadRequest, nullptr);
  expect(R"({"messages":[{"role":"user","content":"x"}]})", ErrorKind::kValidation, "model");
  expect(R"({"model":5,"messages":[{"role":"user","content":"x"}]})", ErrorKind::kValidation, "model");
  expect(R"({"model":"gpt-4o-mini"})", ErrorKind::kValidation, "messages");
  expect(R"({"model":"gpt-4o-mini","messages":[]})", ErrorKind::kValidation, "messages");
  expect(R"({"model":"gpt-4o-mini","messages":[{}],"stream":"yes"})", ErrorKind::kValidation, "stream");
  expect(R"({"model":"gpt-4o-mini","messages":[{}],"stream":true,"stream_options":3})",
         ErrorKind::kValidation, "stream_options");
  expect(R"({"model":"nope","messages":[{"role":"user","content":"x"}]})", ErrorKind::kModelNotFound,
         "model");
  expect(R"({"model":"text-embedding-3-small"})", ErrorKind::kValidation, "input",
         GatewayEndpoint::kEmbeddings);
  expect(R"({"model":"text-embedding-3-small","input":"x","stream":true})", ErrorKind::kValidation, "stream",
         GatewayEndpoint::kEmbeddings);
}

TEST_F(GatewayTest, AnUnknownModelIs404AndNamesTheConfiguredOnes) {
  auto call = prepare(R"({"model":"gpt-5-ultra","messages":[{"role":"user","content":"x"}]})");
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().status(), 404);
  EXPECT_NE(call.error().message.find("gpt-4o-mini"), std::string::npos);
}

TEST_F(GatewayTest, EmbeddingsGoToTheEmbeddingsPath) {
  auto call =
      prepare(R"({"model":"text-embedding-3-small","input":["a","b"]})", GatewayEndpoint::kEmbeddings);
  ASSERT_TRUE(call);
  EXPECT_EQ(call->path, "/embeddings");
}

TEST_F(GatewayTest, ModelsListExactNamesOfProvidersTheCallerCanUse) {
  auto ids = [&](const auth::Principal& who) {
    auto models = run(gateway_->models(who));
    EXPECT_TRUE(models);
    std::vector<std::string> out;
    for (const auto& m : *models) out.push_back(m.id + "@" + m.owned_by);
    return out;
  };
  // alice has no key for the byok provider: its models are not hers to use.
  EXPECT_EQ(ids(alice_),
            (std::vector<std::string>{"gpt-4o-mini@sys", "text-embedding-3-small@sys", "demo@demo"}));
  // bob has one: own-model appears, gpt-4o-mini still routes to (and is owned by) the first provider.
  EXPECT_EQ(ids(bob_), (std::vector<std::string>{"gpt-4o-mini@sys", "text-embedding-3-small@sys",
                                                 "own-model@own", "demo@demo"}));
}

TEST_F(GatewayTest, RetrievingAModelFollowsPrefixesAndCredentials) {
  auto m = run(gateway_->model(alice_, "mock-large"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->owned_by, "sys");
  auto own = run(gateway_->model(alice_, "own-model"));
  ASSERT_FALSE(own);
  EXPECT_EQ(own.error().kind, ErrorKind::kModelNotFound);
  EXPECT_TRUE(run(gateway_->model(bob_, "own-model")));
  auto byok = prepare(R"({"model":"own-model","messages":[{"role":"user","content":"x"}]})");
  ASSERT_FALSE(byok);
  EXPECT_EQ(byok.error().kind, ErrorKind::kApiKeyNotConfigured);
}

}  // namespace
}  // namespace parley::services
