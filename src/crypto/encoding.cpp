#include "crypto/encoding.hpp"

#include <array>
#include <cstdint>

namespace parley::crypto {
namespace {

constexpr std::string_view kStandard = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrlSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint8_t kInvalid = 0xff;

using DecodeTable = std::array<std::uint8_t, 256>;

constexpr DecodeTable make_table(std::string_view alphabet) {
  DecodeTable table{};
  table.fill(kInvalid);
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
  }
  return table;
}

constexpr DecodeTable kStandardTable = make_table(kStandard);
constexpr DecodeTable kUrlSafeTable = make_table(kUrlSafe);

std::string encode(std::string_view bytes, std::string_view alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                            static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                            static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(alphabet[v >> 18 & 63]);
    out.push_back(alphabet[v >> 12 & 63]);
    out.push_back(alphabet[v >> 6 & 63]);
    out.push_back(alphabet[v & 63]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    out.push_back(alphabet[v >> 18 & 63]);
    out.push_back(alphabet[v >> 12 & 63]);
    if (pad) out.append("==");
  } else if (rest == 2) {
    const std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                            static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out.push_back(alphabet[v >> 18 & 63]);
    out.push_back(alphabet[v >> 12 & 63]);
    out.push_back(alphabet[v >> 6 & 63]);
    if (pad) out.push_back('=');
  }
  return out;
}

Result<std::string> decode(std::string_view text, const DecodeTable& table, Padding padding) {
  // Split off the padding, then check it agrees with the length of what it pads.
  std::size_t pad_count = 0;
  while (pad_count < text.size() && pad_count < 3 && text[text.size() - 1 - pad_count] == '=') ++pad_count;
  const std::string_view body = text.substr(0, text.size() - pad_count);
  const std::size_t tail = body.size() % 4;  // characters in the last, partial quantum

  if (tail == 1) return fail(ErrorKind::kBadRequest, "invalid base64 length");
  if (pad_count > 0) {
    if (padding == Padding::kForbidden) return fail(ErrorKind::kBadRequest, "unexpected base64 padding");
    if (tail == 0 || pad_count != 4 - tail) return fail(ErrorKind::kBadRequest, "invalid base64 padding");
  } else if (padding == Padding::kRequired && tail != 0) {
    return fail(ErrorKind::kBadRequest, "missing base64 padding");
  }

  std::string out;
  out.reserve(body.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : body) {
    const std::uint8_t v = table[static_cast<unsigned char>(c)];
    if (v == kInvalid) return fail(ErrorKind::kBadRequest, "invalid base64 character");
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits (2 or 4) must be zero, otherwise two texts would decode to the same bytes.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return fail(ErrorKind::kBadRequest, "non-canonical base64");
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  return encode(bytes, kStandard, true);
}

Result<std::string> base64_decode(std::string_view text, Padding padding) {
  return decode(text, kStandardTable, padding);
}

std::string base64url_encode(std::string_view bytes, bool pad) {
  return encode(bytes, kUrlSafe, pad);
}

Result<std::string> base64url_decode(std::string_view text, Padding padding) {
  return decode(text, kUrlSafeTable, padding);
}

std::string hex_encode(std::string_view bytes) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  char* at = out.data();
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    *at++ = kDigits[b >> 4];
    *at++ = kDigits[b & 15];
  }
  return out;
}

Result<std::string> hex_decode(std::string_view text) {
  if (text.size() % 2 != 0) return fail(ErrorKind::kBadRequest, "invalid hex length");
  std::string out;
  out.reserve(text.size() / 2);
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int hi = hex_value(text[i]);
    const int lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return fail(ErrorKind::kBadRequest, "invalid hex character");
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

}  // namespace parley::crypto
