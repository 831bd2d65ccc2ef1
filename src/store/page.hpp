// Pagination vocabulary shared by the domain stores.
#pragma once

#include <cstdint>
#include <vector>

namespace parley::store {

// Stores clamp limit to [0, kMaxPageLimit] and offset to >= 0; rejecting out-of-range page sizes
// with a clear message is the service's job (422), this is only the last line of defence.
inline constexpr std::int64_t kMaxPageLimit = 1000;

struct PageRequest {
  std::int64_t limit = 50;
  std::int64_t offset = 0;
};

template <class T>
struct Page {
  std::vector<T> items;
  std::int64_t total = 0;  // rows matching the filter, ignoring limit and offset
};

}  // namespace parley::store
