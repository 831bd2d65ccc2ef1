// libFuzzer target for reading a request (head, checks, fixed or chunked body, trailer) with
// parley's limits: no crash, no sanitizer report, no exception, the same outcome however the bytes
// arrive, and no body the head did not declare. Build and run: see README.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "request_reader_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (const auto violation = parley::http::fuzz::check_request_input(data, size)) {
    std::fprintf(stderr, "request reader invariant violated: %s\n", violation->c_str());
    std::abort();
  }
  return 0;
}
