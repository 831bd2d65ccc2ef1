#include "crypto/secret.hpp"

#include <openssl/crypto.h>

#include <algorithm>

namespace parley::crypto {
namespace {

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // U+2026

// Overwrites the whole allocation, not just size(): bytes of an earlier, longer value may still
// sit between size() and capacity(). Growing to capacity() never reallocates.
void wipe(std::string& s) noexcept {
  s.resize(s.capacity());
  OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

}  // namespace

Secret::Secret(Secret&& other) noexcept : value_(std::move(other.value_)) {
  wipe(other.value_);
}

Secret& Secret::operator=(const Secret& other) {
  if (this != &other) {
    wipe(value_);
    value_ = other.value_;
  }
  return *this;
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    wipe(value_);
    value_ = std::move(other.value_);
    wipe(other.value_);
  }
  return *this;
}

Secret::~Secret() {
  wipe(value_);
}

void Secret::clear() noexcept {
  wipe(value_);
}

std::string mask_secret(std::string_view secret) {
  if (secret.empty()) return {};
  for (const char c : secret) {
    if (static_cast<unsigned char>(c) >= 0x80) return std::string(kEllipsis);
  }
  const std::size_t n = secret.size();
  std::size_t head = 0;
  std::size_t tail = 0;
  if (n >= 12) {
    const std::size_t shown = std::min<std::size_t>(7, n / 3);
    tail = std::min<std::size_t>(4, shown);
    head = shown - tail;  // at most 3
  } else if (n >= 6) {
    tail = 2;
  }
  std::string out;
  out.reserve(head + kEllipsis.size() + tail);
  out.append(secret.substr(0, head));
  out.append(kEllipsis);
  out.append(secret.substr(n - tail));
  return out;
}

}  // namespace parley::crypto
