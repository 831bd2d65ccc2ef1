// JSON helpers for the translate tests: objects from literals, and equality that prints both.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "translate/stream_event.hpp"

namespace parley::translate::testing {

namespace bj = boost::json;

inline bj::object obj(std::string_view json) {
  return bj::parse(json).as_object();
}
inline bj::array arr(std::string_view json) {
  return bj::parse(json).as_array();
}

inline ::testing::AssertionResult json_eq(const bj::value& actual, std::string_view expected) {
  const bj::value want = bj::parse(expected);
  if (actual == want) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\n  actual:   " << bj::serialize(actual) << "\n  expected: " << bj::serialize(want);
}

inline std::vector<std::string> names(const std::vector<StreamEvent>& events) {
  std::vector<std::string> out;
  out.reserve(events.size());
  for (const StreamEvent& e : events) out.emplace_back(e.name);
  return out;
}

}  // namespace parley::translate::testing
