#include "upstream/multipart.hpp"

#include <algorithm>
#include <cctype>

#include "core/text.hpp"

namespace parley::upstream {

namespace {

constexpr std::size_t kMaxPartHead = 8192;

// The parameters of a header value after its first ';': name=value or name="value" (backslash
// escapes the next character in a quoted value). Calls `on(name, value)` for each.
template <class F>
bool each_param(std::string_view value, F&& on) {
  std::size_t i = value.find(';');
  while (i != std::string_view::npos && i < value.size()) {
    ++i;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    std::size_t eq = value.find('=', i);
    if (eq == std::string_view::npos) return true;
    std::string_view name = trim_blanks(value.substr(i, eq - i));
    std::size_t j = eq + 1;
    while (j < value.size() && (value[j] == ' ' || value[j] == '\t')) ++j;
    std::string v;
    if (j < value.size() && value[j] == '"') {
      ++j;
      bool closed = false;
      while (j < value.size()) {
        char c = value[j++];
        if (c == '\\' && j < value.size()) {
          v.push_back(value[j++]);
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          v.push_back(c);
        }
      }
      if (!closed) return false;
      i = value.find(';', j);
    } else {
      std::size_t end = value.find(';', j);
      v = std::string(
          trim_blanks(value.substr(j, end == std::string_view::npos ? std::string_view::npos : end - j)));
      i = end;
    }
    on(name, std::move(v));
  }
  return true;
}

Error malformed(std::string_view why) {
  return {ErrorKind::kValidation, "The multipart/form-data body is malformed: " + std::string(why)};
}

}  // namespace

std::optional<std::string> form_boundary(std::string_view content_type) {
  std::string_view type = trim_blanks(content_type.substr(0, content_type.find(';')));
  if (!iequals(type, "multipart/form-data")) return std::nullopt;
  std::optional<std::string> boundary;
  bool ok = each_param(content_type, [&](std::string_view name, std::string value) {
    if (iequals(name, "boundary")) boundary = std::move(value);
  });
  if (!ok || !boundary || boundary->empty() || boundary->size() > 70) return std::nullopt;
  for (char c : *boundary) {
    if (c == '\r' || c == '\n' || c == '\0') return std::nullopt;
  }
  return boundary;
}

Result<std::vector<FormPart>> parse_form(std::string_view body, std::string_view boundary,
                                         std::size_t max_parts) {
  std::vector<FormPart> parts;
  const std::string dash = "--" + std::string(boundary);
  const std::string delimiter = "\r\n" + dash;
  // The first delimiter may open the body without the CRLF before it.
  std::size_t pos = 0;
  if (body.starts_with(dash)) {
    pos = dash.size();
  } else {
    std::size_t first = body.find(delimiter);
    if (first == std::string_view::npos) return std::unexpected(malformed("no boundary delimiter"));
    pos = first + delimiter.size();
  }
  for (;;) {
    // After a delimiter: "--" closes the body; otherwise transport padding, then CRLF.
    if (body.substr(pos, 2) == "--") return parts;
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n")
      return std::unexpected(malformed("a delimiter is not followed by CRLF"));
    pos += 2;
    std::size_t head_end = body.find("\r\n\r\n", pos);
    std::size_t blank_head = body.substr(pos, 2) == "\r\n" ? pos : std::string_view::npos;
    std::string_view head;
    std::size_t data_start = 0;
    if (blank_head != std::string_view::npos) {
      data_start = pos + 2;
    } else {
      if (head_end == std::string_view::npos || head_end - pos > kMaxPartHead)
        return std::unexpected(malformed("a part's headers do not end"));
      head = body.substr(pos, head_end - pos);
      data_start = head_end + 4;
    }
    std::size_t data_end = body.find(delimiter, data_start);
    if (data_end == std::string_view::npos)
      return std::unexpected(malformed("no closing boundary delimiter"));
    FormPart part;
    bool disposition = false;
    while (!head.empty()) {
      std::size_t eol = head.find("\r\n");
      std::string_view line = head.substr(0, eol);
      head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) return std::unexpected(malformed("a part header has no colon"));
      std::string_view name = trim_blanks(line.substr(0, colon));
      std::string_view value = trim_blanks(line.substr(colon + 1));
      if (iequals(name, "Content-Disposition")) {
        if (!iequals(trim_blanks(value.substr(0, value.find(';'))), "form-data"))
          return std::unexpected(malformed("a part is not form-data"));
        disposition = true;
        bool ok = each_param(value, [&](std::string_view pname, std::string pvalue) {
          if (iequals(pname, "name")) {
            part.name = std::move(pvalue);
          } else if (iequals(pname, "filename")) {
            part.filename = std::move(pvalue);
          }
        });
        if (!ok) return std::unexpected(malformed("a Content-Disposition value is cut short"));
      } else if (iequals(name, "Content-Type")) {
        part.content_type = std::string(value);
      }
    }
    if (!disposition || part.name.empty()) return std::unexpected(malformed("a part has no form-data name"));
    if (parts.size() >= max_parts) return std::unexpected(malformed("too many parts"));
    part.data = body.substr(data_start, data_end - data_start);
    parts.push_back(std::move(part));
    pos = data_end + delimiter.size();
  }
}

const FormPart* find_part(const std::vector<FormPart>& parts, std::string_view name) {
  for (const auto& p : parts) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

}  // namespace parley::upstream
