#include "translate/stream_event.hpp"

#include <boost/json/serializer.hpp>

namespace parley::translate {

void append_sse(std::string& out, const StreamEvent& event) {
  out.append("event: ");
  out.append(event.name);
  out.append("\ndata: ");
  // Serialized straight into `out`: no intermediate string per event.
  boost::json::serializer serializer;
  serializer.reset(&event.data);
  while (!serializer.done()) {
    const std::size_t at = out.size();
    const std::size_t room = out.capacity() - at >= 256 ? out.capacity() - at : 1024;
    out.resize_and_overwrite(at + room, [&](char* data, std::size_t size) {
      return at + serializer.read(data + at, size - at).size();
    });
  }
  out.append("\n\n");
}

std::string to_sse(const StreamEvent& event) {
  std::string out;
  out.reserve(256);
  append_sse(out, event);
  return out;
}

}  // namespace parley::translate
