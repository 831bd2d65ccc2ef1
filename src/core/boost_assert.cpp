// Boost's assertions (BOOST_ASSERT in Asio, Beast, JSON) with BOOST_ENABLE_ASSERT_HANDLER, which the
// build defines everywhere: the release build compiles them out (NDEBUG), and the debug build
// reports them and carries on as the release build would, instead of aborting.
//
// Why: Beast 1.81 asserts `n >= 5` when the last chunk of a chunked body ("0\r\n\r\n") arrives
// split after its first CRLF — a legitimate client, or a provider's answer, could abort every
// sanitizer build. The code after the assertion handles the case correctly (found by the
// request_reader fuzz target; tests/fuzz/corpus/request_reader/last_chunk_split). Memory errors
// still stop the debug build: that is AddressSanitizer's job, not these assertions'.
#include <boost/assert.hpp>
#include <cstdio>

namespace boost {

void assertion_failed(char const* expr, char const* function, char const* file, long line) {
  std::fprintf(stderr, "library assertion failed (continuing as a release build would): %s in %s at %s:%ld\n",
               expr, function, file, line);
}

void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file,
                          long line) {
  std::fprintf(stderr,
               "library assertion failed (continuing as a release build would): %s (%s) in %s at %s:%ld\n",
               expr, msg, function, file, line);
}

}  // namespace boost
