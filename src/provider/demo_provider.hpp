// The built-in offline provider: models "demo" and "demo-*". Deterministic replies derived from
// the last user message, streamed word by word, with token counts (words) in `usage`; embeddings
// derived from the input text. Lets the
// console, the API and every SDK work before any provider key exists.
#pragma once

#include "provider/provider.hpp"

namespace parley::provider {

class DemoProvider final : public Provider {
 public:
  DemoProvider() : name_("demo") {}
  [[nodiscard]] const std::string& name() const override { return name_; }
  [[nodiscard]] bool needs_key() const override { return false; }
  // "/chat/completions" and "/embeddings" (deterministic unit vectors derived from the input).
  boost::asio::awaitable<Result<ProviderResponse>> post(const CallContext& ctx, std::string_view path,
                                                        std::string body) override;
  boost::asio::awaitable<Result<StreamOutcome>> post_stream(const CallContext& ctx, std::string_view path,
                                                            std::string body, EventSink sink) override;
  // "/audio/speech": a WAV file made offline (demo_audio.hpp); "/audio/transcriptions": the text a
  // demo WAV carries, else a sentence naming the upload's size.
  boost::asio::awaitable<Result<ProviderResponse>> post_raw(const CallContext& ctx, std::string_view path,
                                                            std::string body,
                                                            std::string content_type) override;
  boost::asio::awaitable<Status> verify_key(const CallContext&) override { co_return Status{}; }

  // The reply text for a request body (exposed for tests).
  static Result<std::string> reply_for(std::string_view body, std::string& model, std::size_t& prompt_words);

 private:
  std::string name_;
};

}  // namespace parley::provider
