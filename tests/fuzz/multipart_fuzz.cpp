// libFuzzer target for the multipart/form-data reader (the /v1/audio/transcriptions upload): no
// crash, no sanitizer report, every part's bytes inside the body, names never empty, the part
// count bounded. The input's first line is the Content-Type value; the rest is the body. Build
// and run: see README.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "upstream/multipart.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "multipart invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t eol = input.find('\n');
  std::string_view content_type = input.substr(0, eol);
  std::string_view body = eol == std::string_view::npos ? std::string_view() : input.substr(eol + 1);
  auto boundary = parley::upstream::form_boundary(content_type);
  if (!boundary) boundary = "B";
  if (boundary->empty() || boundary->size() > 70) violated("boundary length");
  constexpr std::size_t kMaxParts = 16;
  auto parts = parley::upstream::parse_form(body, *boundary, kMaxParts);
  if (!parts) {
    if (parts.error().message.empty()) violated("an error without a message");
    return 0;
  }
  if (parts->size() > kMaxParts) violated("more parts than allowed");
  for (const auto& part : *parts) {
    if (part.name.empty()) violated("a part without a name");
    if (part.data.data() < body.data() || part.data.data() + part.data.size() > body.data() + body.size())
      violated("a part's bytes outside the body");
    if (parley::upstream::find_part(*parts, part.name) == nullptr) violated("find_part misses a part");
  }
  return 0;
}
