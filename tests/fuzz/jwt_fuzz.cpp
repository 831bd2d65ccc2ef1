// libFuzzer target for HS256 JSON Web Tokens (crypto/jwt): no crash, no sanitizer report, re-signed claims
// verify the same, no single-byte change, other key or other algorithm is accepted.
// Build and run: see README.md.
#include <boost/json/src.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "jwt_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (const auto violation = parley::crypto::fuzz::check_jwt_input(data, size)) {
    std::fprintf(stderr, "HS256 JWT invariant violated: %s\n", violation->c_str());
    std::abort();
  }
  return 0;
}
