// Byte <-> text encodings: base64 (RFC 4648 §4), base64url (§5) and lower-case hex.
//
// Decoders are strict: they reject characters outside the alphabet (including whitespace),
// impossible lengths, misplaced or missing padding, and non-canonical input whose unused trailing
// bits are not zero. So every byte string has exactly one accepted text form per padding mode,
// which matters when the text is signed (JWT) or compared.
//
// Thread-safety: pure functions. Errors: decoders return ErrorKind::kBadRequest with a short
// reason that never echoes the input.
#pragma once

#include <string>
#include <string_view>

#include "core/error.hpp"

namespace parley::crypto {

enum class Padding {
  kRequired,   // text length is a multiple of 4, padded with '='
  kForbidden,  // no '=' at all (JWT segments)
  kOptional,   // either of the above, but if '=' is present it must be exactly right
};

[[nodiscard]] std::string base64_encode(std::string_view bytes);
[[nodiscard]] Result<std::string> base64_decode(std::string_view text, Padding padding = Padding::kRequired);

// `pad` false gives the unpadded form used by JWT; true the form Python's urlsafe_b64encode emits.
[[nodiscard]] std::string base64url_encode(std::string_view bytes, bool pad = false);
[[nodiscard]] Result<std::string> base64url_decode(std::string_view text,
                                                   Padding padding = Padding::kForbidden);

[[nodiscard]] std::string hex_encode(std::string_view bytes);
// Accepts upper or lower case; rejects odd lengths and non-hex characters.
[[nodiscard]] Result<std::string> hex_decode(std::string_view text);

}  // namespace parley::crypto
