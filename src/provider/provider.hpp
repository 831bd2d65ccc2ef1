// A model provider: something that answers OpenAI-style chat completion requests. Two kinds:
// OpenAiCompatibleProvider (HTTP to an OpenAI-compatible API, with retries) and DemoProvider (in
// process, offline, deterministic). The registry maps model names to providers and says whose
// key each uses.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "crypto/secret.hpp"
#include "provider/http_client.hpp"

namespace parley::provider {

enum class Credentials { kByok, kSystem, kByokOrSystem };

struct CallContext {
  std::string request_id;
  std::optional<crypto::Secret> api_key;  // the key to send, when the provider needs one
};

// A complete answer from the provider, relayed as received.
struct ProviderResponse {
  unsigned status = 200;
  std::string body;
  std::vector<Header> headers;  // x-ratelimit-* and friends, lower-case names
};

// Receives each SSE `data:` payload of a streamed answer (not the final "[DONE]"). Returns false
// when the consumer is gone (stop reading).
using EventSink = std::function<boost::asio::awaitable<bool>(std::string_view data)>;

// Outcome of a streamed call: an error after the first event means the stream broke mid-way
// (never retried: bytes already reached the client).
struct StreamOutcome {
  std::vector<Header> headers;
  std::size_t events = 0;
};

class Provider {
 public:
  virtual ~Provider() = default;
  [[nodiscard]] virtual const std::string& name() const = 0;
  [[nodiscard]] virtual bool needs_key() const = 0;

  // POST {base}/chat/completions with `body` (JSON, "stream" false).
  virtual boost::asio::awaitable<Result<ProviderResponse>> chat(const CallContext& ctx, std::string body) = 0;
  // Same with "stream": true; events go to `sink` as they arrive.
  virtual boost::asio::awaitable<Result<StreamOutcome>> chat_stream(const CallContext& ctx, std::string body,
                                                                    EventSink sink) = 0;
  // GET {base}/models with the given key: is the key accepted? (kInvalidApiKey when not.)
  virtual boost::asio::awaitable<Status> verify_key(const CallContext& ctx) = 0;
};

struct ProviderEntry {
  std::shared_ptr<Provider> provider;
  Credentials credentials = Credentials::kByok;
  std::optional<crypto::Secret> system_key;  // from the environment variable the config names
  std::vector<std::string> models;           // exact names, or prefixes ending in '*'
};

class ProviderRegistry {
 public:
  void add(ProviderEntry entry) { entries_.push_back(std::move(entry)); }
  // The first provider serving `model`, or nullptr.
  [[nodiscard]] const ProviderEntry* find_by_model(std::string_view model) const;
  [[nodiscard]] const ProviderEntry* find_by_name(std::string_view name) const;
  // "gpt-4o-mini, mock-*, demo" for error messages.
  [[nodiscard]] std::string allowed_models() const;
  [[nodiscard]] const std::vector<ProviderEntry>& entries() const { return entries_; }

 private:
  std::vector<ProviderEntry> entries_;
};

bool model_matches(std::string_view pattern, std::string_view model);

}  // namespace parley::provider
