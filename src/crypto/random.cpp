#include "crypto/random.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace parley::crypto {
namespace {

// Largest multiple of 62 that fits in a byte: bytes at or above it are rejected so that every
// alphabet character is equally likely.
constexpr unsigned kBase62Limit = 256 - (256 % kBase62Alphabet.size());  // 248

void fill_random(unsigned char* out, std::size_t n) {
  while (n > 0) {
    const int chunk = n > static_cast<std::size_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
    if (RAND_bytes(out, chunk) != 1) {
      std::fputs("parley: fatal: the OpenSSL CSPRNG failed\n", stderr);
      std::abort();
    }
    out += chunk;
    n -= static_cast<std::size_t>(chunk);
  }
}

// random_base62's draws come from a per-thread pool refilled 1 KiB at a time: one RAND_bytes call
// serves a dozen ids, where a call per id cost microseconds (OpenSSL 3 locks its DRBG and checks the
// process id on every call). Each byte is wiped from the pool as it is taken, so a drawn secret stays
// only with its caller. parley never forks, so no two processes share a pool.
struct Pool {
  unsigned char bytes[1024];
  std::size_t used = sizeof bytes;
  Pool() = default;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() { OPENSSL_cleanse(bytes, sizeof bytes); }
};

void draw(unsigned char* out, std::size_t n) {
  thread_local Pool pool;
  while (n > 0) {
    if (pool.used == sizeof pool.bytes) {
      fill_random(pool.bytes, sizeof pool.bytes);
      pool.used = 0;
    }
    const std::size_t k = std::min(n, sizeof pool.bytes - pool.used);
    std::memcpy(out, pool.bytes + pool.used, k);
    OPENSSL_cleanse(pool.bytes + pool.used, k);
    pool.used += k;
    out += k;
    n -= k;
  }
}

}  // namespace

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  fill_random(reinterpret_cast<unsigned char*>(out.data()), n);
  return out;
}

std::string random_base62(std::size_t n) {
  std::string out;
  out.reserve(n);
  // 248/256 of the bytes are accepted, so a batch a little larger than what is missing usually
  // finishes in one round.
  unsigned char buffer[64];
  while (out.size() < n) {
    const std::size_t missing = n - out.size();
    const std::size_t want = std::min(sizeof buffer, missing + missing / 8 + 2);
    draw(buffer, want);
    for (std::size_t i = 0; i < want && out.size() < n; ++i) {
      if (buffer[i] < kBase62Limit) out.push_back(kBase62Alphabet[buffer[i] % kBase62Alphabet.size()]);
    }
  }
  OPENSSL_cleanse(buffer, sizeof buffer);  // the draws are the secret when the caller makes a key
  return out;
}

std::string new_public_id() {
  return random_base62(kPublicIdLength);
}

}  // namespace parley::crypto
