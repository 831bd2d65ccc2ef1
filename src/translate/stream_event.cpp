#include "translate/stream_event.hpp"

#include <boost/json/serialize.hpp>

namespace parley::translate {

void append_sse(std::string& out, const StreamEvent& event) {
  out.append("event: ");
  out.append(event.name);
  out.append("\ndata: ");
  out.append(boost::json::serialize(event.data));
  out.append("\n\n");
}

std::string to_sse(const StreamEvent& event) {
  std::string out;
  out.reserve(64 + event.name.size());
  append_sse(out, event);
  return out;
}

}  // namespace parley::translate
