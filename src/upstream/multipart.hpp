// multipart/form-data (RFC 7578) read without copying: the boundary from a Content-Type value,
// then each part's name, filename, content type and bytes as views into the body. Used by the
// /v1/audio/transcriptions relay (to find the model and check the upload before relaying the
// body untouched) and by the demo provider. Pure logic: no I/O, never throws.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace parley::upstream {

struct FormPart {
  std::string name;
  std::optional<std::string> filename;
  std::string content_type;  // empty when the part has none
  std::string_view data;     // a view into the body passed to parse_form
};

// The boundary of a `multipart/form-data; boundary=…` Content-Type (quoted or not); nullopt when
// the type is not multipart/form-data or the boundary is missing or invalid (1 to 70 characters).
std::optional<std::string> form_boundary(std::string_view content_type);

// The parts of a form body. kValidation when the body is not a well-formed multipart body with
// this boundary (no closing delimiter, a part without a Content-Disposition form-data name, more
// than `max_parts` parts, a part head over 8 KiB).
Result<std::vector<FormPart>> parse_form(std::string_view body, std::string_view boundary,
                                         std::size_t max_parts = 64);

// The first part named `name`, or null.
const FormPart* find_part(const std::vector<FormPart>& parts, std::string_view name);

}  // namespace parley::upstream
