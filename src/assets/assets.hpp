// Static files linked into the binary: "openapi_json", "docs_html", "docs_init_js", "swagger_ui_js",
// "swagger_ui_css", and each gzip-compressed at build time as "<name>.gz". get() returns an empty
// view for an unknown name. The data lives for the process and never changes.
#pragma once

#include <cstddef>
#include <string_view>

namespace parley::assets {
std::string_view get(std::string_view name);
}  // namespace parley::assets
