#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace parley::config {
namespace {

struct FakeEnv {
  std::map<std::string, std::string> vars;
  std::function<const char*(const char*)> fn() {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

std::string write_temp(const std::string& content) {
  auto path = std::filesystem::temp_directory_path() /
              ("parley_config_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".toml");
  std::ofstream(path) << content;
  return path.string();
}

TEST(ConfigLoad, DefaultsAreDocumentedValues) {
  FakeEnv env;
  auto r = load({std::nullopt, {}, env.fn()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->config.listen, "127.0.0.1:8080");
  EXPECT_EQ(r->config.listen_host, "127.0.0.1");
  EXPECT_EQ(r->config.listen_port, 8080);
  EXPECT_EQ(r->config.data_dir, "./data");
  EXPECT_EQ(r->config.effective_database_url(), "sqlite://./data/parley.db");
  EXPECT_EQ(r->config.http.max_header_bytes, 16U * 1024);
  EXPECT_EQ(r->config.http.max_body_bytes, 1024U * 1024);
  EXPECT_GE(r->config.workers, 1U);
  EXPECT_EQ(r->sources.at("listen"), Source::kDefault);
}

TEST(ConfigLoad, FileThenEnvThenFlagsPrecedence) {
  std::string path = write_temp(R"(
listen = "127.0.0.1:9000"
data_dir = "/tmp/from-file"
[log]
level = "debug"
format = "json"
[http]
max_body_bytes = 2048
cors_origins = ["https://app.example"]
)");
  FakeEnv env;
  env.vars["PARLEY_LISTEN"] = "127.0.0.1:9001";
  env.vars["PARLEY_LOG_LEVEL"] = "warn";
  auto r = load({path, {{"listen", "127.0.0.1:9002"}}, env.fn()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->config.listen, "127.0.0.1:9002");
  EXPECT_EQ(r->sources.at("listen"), Source::kFlag);
  EXPECT_EQ(r->config.log_level, "warn");
  EXPECT_EQ(r->sources.at("log.level"), Source::kEnv);
  EXPECT_EQ(r->config.log_format, "json");
  EXPECT_EQ(r->sources.at("log.format"), Source::kFile);
  EXPECT_EQ(r->config.data_dir, "/tmp/from-file");
  EXPECT_EQ(r->config.http.max_body_bytes, 2048U);
  ASSERT_EQ(r->config.cors_origins.size(), 1U);
  EXPECT_EQ(r->config.cors_origins[0], "https://app.example");
  std::remove(path.c_str());
}

TEST(ConfigLoad, ConfigPathFromEnvironment) {
  std::string path = write_temp("workers = 3\n");
  FakeEnv env;
  env.vars["PARLEY_CONFIG"] = path;
  auto r = load({std::nullopt, {}, env.fn()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->config.workers, 3U);
  std::remove(path.c_str());
}

TEST(ConfigLoad, InvalidValuesNameTheKey) {
  FakeEnv env;
  auto bad_port = load({std::nullopt, {{"listen", "127.0.0.1:99999"}}, env.fn()});
  ASSERT_FALSE(bad_port);
  EXPECT_EQ(bad_port.error().param.value_or(""), "listen");

  env.vars["PARLEY_HTTP_MAX_BODY_BYTES"] = "lots";
  auto bad_env = load({std::nullopt, {}, env.fn()});
  ASSERT_FALSE(bad_env);
  EXPECT_EQ(bad_env.error().param.value_or(""), "http.max_body_bytes");
  EXPECT_NE(bad_env.error().message.find("PARLEY_HTTP_MAX_BODY_BYTES"), std::string::npos);

  FakeEnv env2;
  auto bad_level = load({std::nullopt, {{"log.level", "loud"}}, env2.fn()});
  ASSERT_FALSE(bad_level);
  EXPECT_EQ(bad_level.error().param.value_or(""), "log.level");

  auto bad_db = load({std::nullopt, {{"database.url", "mysql://x"}}, env2.fn()});
  ASSERT_FALSE(bad_db);
  EXPECT_EQ(bad_db.error().param.value_or(""), "database.url");

  auto bad_origin = load({std::nullopt, {{"http.cors_origins", "example.com"}}, env2.fn()});
  ASSERT_FALSE(bad_origin);
  EXPECT_EQ(bad_origin.error().param.value_or(""), "http.cors_origins");
}

TEST(ConfigLoad, UnknownFileKeyIsRejected) {
  std::string path = write_temp("[http]\nmax_bodyy_bytes = 1\n");
  FakeEnv env;
  auto r = load({path, {}, env.fn()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().param.value_or(""), "http.max_bodyy_bytes");
  std::remove(path.c_str());
}

TEST(ConfigLoad, ProviderKindAndAnthropicVersion) {
  const std::string base =
      "[[providers]]\nname = \"claude\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"claude-*\"]\n";
  FakeEnv env;
  std::string path = write_temp(base + "kind = \"anthropic\"\nanthropic_version = \"2024-01-01\"\n");
  auto ok = load({path, {}, env.fn()});
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_EQ(ok->config.providers.size(), 1U);
  EXPECT_EQ(ok->config.providers[0].kind, "anthropic");
  EXPECT_EQ(ok->config.providers[0].anthropic_version, "2024-01-01");
  std::remove(path.c_str());

  path = write_temp(base);
  auto plain = load({path, {}, env.fn()});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->config.providers[0].kind, "openai");
  EXPECT_EQ(plain->config.providers[0].anthropic_version, "");
  std::remove(path.c_str());

  for (const auto& [extra, param] : std::vector<std::pair<std::string, std::string>>{
           {"kind = \"gemini\"\n", "providers[0].kind"},
           {"kind = \"anthropic\"\nanthropic_version = \"latest\"\n", "providers[0].anthropic_version"},
           {"anthropic_version = \"2023-06-01\"\n", "providers[0].anthropic_version"}}) {
    path = write_temp(base + extra);
    auto bad = load({path, {}, env.fn()});
    ASSERT_FALSE(bad) << extra;
    EXPECT_EQ(bad.error().param.value_or(""), param) << extra;
    std::remove(path.c_str());
  }
}

TEST(ConfigLoad, MalformedTomlReportsPosition) {
  std::string path = write_temp("listen = \n");
  FakeEnv env;
  auto r = load({path, {}, env.fn()});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(":1:"), std::string::npos) << r.error().message;
  std::remove(path.c_str());
}

TEST(ConfigDescribe, MasksSecrets) {
  FakeEnv env;
  env.vars["PARLEY_JWT_SECRET"] = "super-secret-value-123";
  env.vars["PARLEY_DATABASE_URL"] = "postgresql://parley:pa55word@127.0.0.1:5432/parley";
  auto r = load({std::nullopt, {}, env.fn()});
  ASSERT_TRUE(r) << r.error().message;
  std::string text = describe(*r);
  EXPECT_EQ(text.find("super-secret-value-123"), std::string::npos);
  EXPECT_EQ(text.find("pa55word"), std::string::npos);
  EXPECT_NE(text.find("secrets.jwt_secret"), std::string::npos);
  EXPECT_NE(text.find("127.0.0.1:5432"), std::string::npos);
}

TEST(ConfigKeys, EveryKeyHasAnEnvironmentVariable) {
  for (const auto& k : keys()) {
    EXPECT_TRUE(k.env.starts_with("PARLEY_")) << k.key;
    EXPECT_FALSE(k.help.empty()) << k.key;
  }
}

}  // namespace
}  // namespace parley::config

namespace parley::config {
namespace {

TEST(ConfigRouting, WeightsCooldownAndFallbacksFromTheFile) {
  std::string path = write_temp(R"(
[[providers]]
name = "east"
base_url = "http://127.0.0.1:9100/v1"
credentials = "byok"
models = ["gpt-4o"]
weight = 3
[[providers]]
name = "west"
base_url = "http://127.0.0.1:9101/v1"
credentials = "byok"
models = ["gpt-4o"]
weight = 0
[routing]
cooldown_ms = 1500
[routing.fallbacks]
"gpt-4o" = ["gpt-4o-mini", "claude-x"]
"o1" = ["gpt-4o"]
)");
  FakeEnv env;
  auto r = load({path, {}, env.fn()});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->config.providers.size(), 2U);
  EXPECT_EQ(r->config.providers[0].weight, 3U);
  EXPECT_EQ(r->config.providers[1].weight, 0U);
  EXPECT_EQ(r->config.routing.cooldown_ms, 1500U);
  EXPECT_EQ(r->sources.at("routing.fallbacks"), Source::kFile);
  auto chains = parse_fallbacks(r->config.routing.fallbacks);
  ASSERT_TRUE(chains);
  ASSERT_EQ(chains->size(), 2U);
  EXPECT_EQ((*chains)[0].model, "gpt-4o");
  EXPECT_EQ((*chains)[0].fallbacks, (std::vector<std::string>{"gpt-4o-mini", "claude-x"}));
  EXPECT_EQ((*chains)[1].model, "o1");
}

TEST(ConfigRouting, EnvironmentAndValidation) {
  FakeEnv env;
  env.vars["PARLEY_ROUTING_COOLDOWN_MS"] = "0";
  env.vars["PARLEY_ROUTING_FALLBACKS"] = "a=b|c, d = e";
  auto r = load({std::nullopt, {}, env.fn()});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->config.routing.cooldown_ms, 0U);
  auto chains = parse_fallbacks(r->config.routing.fallbacks);
  ASSERT_TRUE(chains);
  ASSERT_EQ(chains->size(), 2U);
  EXPECT_EQ((*chains)[1].model, "d");
  EXPECT_EQ((*chains)[1].fallbacks, std::vector<std::string>{"e"});
  EXPECT_TRUE(parse_fallbacks(""));
  for (const char* bad : {"a", "=b", "a=", "a=a", "a=b|b", "a=b,a=c", "a=b||c"}) {
    auto p = parse_fallbacks(bad);
    EXPECT_FALSE(p) << bad;
    if (!p) EXPECT_EQ(p.error().param, "routing.fallbacks");
  }
  env.vars["PARLEY_ROUTING_COOLDOWN_MS"] = "3600001";
  EXPECT_FALSE(load({std::nullopt, {}, env.fn()}));
  std::string path = write_temp(R"(
[[providers]]
name = "east"
base_url = "http://127.0.0.1:9100/v1"
credentials = "byok"
models = ["gpt-4o"]
weight = 1001
)");
  FakeEnv none;
  auto w = load({path, {}, none.fn()});
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().param, "providers[0].weight");
}

}  // namespace
}  // namespace parley::config
