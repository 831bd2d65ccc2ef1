// Secret: a string that must not reach logs, error messages or JSON by accident (provider keys,
// service keys, passwords, signing keys).
//
// - No implicit conversion and no operator<<; fmt/spdlog print "[redacted]".
// - reveal() is the one, greppable way to read the value.
// - The buffer is wiped with OPENSSL_cleanse when the value is replaced or destroyed, and a
//   moved-from Secret is wiped and left empty.
// Ownership: owns its bytes. Thread-safety: like std::string (const use from many threads is
// safe). Errors: none; nothing throws except std::bad_alloc.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace parley::crypto {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) noexcept : value_(std::move(value)) {}
  explicit Secret(std::string_view value) : value_(value) {}
  explicit Secret(const char* value) : value_(value) {}

  Secret(const Secret& other) : value_(other.value_) {}
  Secret(Secret&& other) noexcept;
  Secret& operator=(const Secret& other);
  Secret& operator=(Secret&& other) noexcept;
  ~Secret();

  // The plaintext. The view is valid while this Secret lives and is not assigned to.
  [[nodiscard]] std::string_view reveal() const noexcept { return value_; }
  [[nodiscard]] bool empty() const noexcept { return value_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return value_.size(); }

  // Wipes the value and leaves the Secret empty.
  void clear() noexcept;

 private:
  std::string value_;
};

// "sk-…abcd": the most of a secret that may be shown to a person (API responses, the console).
// At most the first 3 and the last 4 characters, and never more than a third of the secret:
// 21+ chars: 3 + 4; 12..20: fewer leading characters; 6..11: "…" and the last 2; shorter: "…".
// Empty input gives "". Input with non-ASCII bytes gives "…" (no split UTF-8 sequences).
[[nodiscard]] std::string mask_secret(std::string_view secret);

}  // namespace parley::crypto

template <>
struct fmt::formatter<parley::crypto::Secret> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const parley::crypto::Secret&, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(std::string_view("[redacted]"), ctx);
  }
};
