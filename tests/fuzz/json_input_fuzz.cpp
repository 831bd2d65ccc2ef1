// libFuzzer target for reading JSON request bodies (http::parse_json_body, api/json_input,
// upstream::outline): no crash, no sanitizer report, only 4xx failures, and agreement with boost::json and a
// strict UTF-8 decoder. Build and run: see README.md.
#include <boost/json/src.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "json_input_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (const auto violation = parley::api::fuzz::check_json_input(data, size)) {
    std::fprintf(stderr, "reading JSON request bodies invariant violated: %s\n", violation->c_str());
    std::abort();
  }
  return 0;
}
