// parley-mock's command line. Everything else is in server.cpp (HTTP) and logic.cpp (replies).

#include <CLI/CLI.hpp>

#include "mock.hpp"

int main(int argc, char** argv) {
  parley::mock::ServerOptions options;
  options.models = {"gpt-4o-mini", "gpt-4o", "mock-1", "text-embedding-3-small"};
  std::int64_t ttfb_ms = 0;
  std::int64_t chunk_delay_ms = 0;

  CLI::App app{
      "parley-mock: a fake OpenAI-compatible (and Anthropic Messages API) provider for tests and benchmarks "
      "(loopback only)"};
  app.add_option("--listen", options.listen, "HOST:PORT on a loopback address; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--threads", options.threads, "event loop threads")
      ->check(CLI::Range(1U, 64U))
      ->capture_default_str();
  app.add_option("--models", options.models, "models listed by GET /v1/models (comma list)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option(
         "--require-key", options.keys,
         "accept only these keys on /v1/* (bearer; x-api-key too on /v1/messages; repeatable or comma "
         "list; default: any)")
      ->delimiter(',');
  app.add_option("--embedding-dim", options.embedding_dimensions, "embedding vector size")
      ->check(CLI::Range(1U, 4096U))
      ->capture_default_str();
  app.add_option("--ttfb-ms", ttfb_ms, "delay before the response headers of every /v1 request")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3'600'000}));
  app.add_option("--chunk-delay-ms", chunk_delay_ms, "delay between stream events")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3'600'000}));
  app.add_option("--chunks", options.chunks, "content deltas per streamed choice (default: one per word)");
  app.add_option("--record-limit", options.record_limit,
                 "requests kept for GET /_mock/requests (newest win; 0 records nothing)")
      ->capture_default_str();
  app.add_flag("--log-requests", options.log_requests, "print each request line on stderr");
  CLI11_PARSE(app, argc, argv);

  options.ttfb = std::chrono::milliseconds(ttfb_ms);
  options.chunk_delay = std::chrono::milliseconds(chunk_delay_ms);
  return parley::mock::run_server(options);
}
