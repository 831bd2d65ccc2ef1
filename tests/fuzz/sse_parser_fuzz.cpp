// libFuzzer target for the SSE parser: no crash, no sanitizer report, bounded events, and the same
// events however the input is split across feed() calls. Build and run: see README.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "sse_parser_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (const auto violation = parley::upstream::fuzz::check_sse_input(data, size)) {
    std::fprintf(stderr, "SSE parser invariant violated: %s\n", violation->c_str());
    std::abort();
  }
  return 0;
}
