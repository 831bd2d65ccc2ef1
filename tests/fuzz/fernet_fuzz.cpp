// libFuzzer target for Fernet tokens (crypto/fernet): no crash, no sanitizer report (TTL arithmetic
// included), only valid tokens decrypt, plaintexts round-trip, no single-byte change is accepted. Build and
// run: see README.md.
#include <boost/json/src.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "fernet_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (const auto violation = parley::crypto::fuzz::check_fernet_input(data, size)) {
    std::fprintf(stderr, "Fernet invariant violated: %s\n", violation->c_str());
    std::abort();
  }
  return 0;
}
