// libFuzzer target for relaying a provider's stream (upstream::StreamRelay): no crash, no
// sanitizer report, nothing relayed after [DONE], the right verdict, and the same events and
// verdict however the body is split. Build and run: see README.md.
#include <boost/json/src.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "sse_relay_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (const auto violation = parley::upstream::fuzz::check_relay_input(data, size)) {
    std::fprintf(stderr, "stream relay invariant violated: %s\n", violation->c_str());
    std::abort();
  }
  return 0;
}
