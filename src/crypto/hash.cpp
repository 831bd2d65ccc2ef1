#include "crypto/hash.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <cstdlib>

namespace parley::crypto {
namespace {

constexpr std::size_t kSha256BlockSize = 64;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "parley: fatal: OpenSSL %s failed\n", what);
  std::abort();
}

// OpenSSL wants a non-null pointer even for zero-length input.
const unsigned char* bytes_of(std::string_view s) {
  static constexpr unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

// Fetched once: EVP_sha256() makes every digest look the algorithm up again by name under a
// lock, which cost several times the hashing itself (service keys are hashed on every call).
const EVP_MD* sha256_md() {
  static EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
    if (fetched == nullptr) die("SHA-256 fetch");
    return fetched;
  }();
  return md;
}

}  // namespace

std::string sha256(std::string_view data) {
  // One context per thread, re-initialised for each digest: no allocation per call.
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    Context() {
      if (ctx == nullptr) die("SHA-256 context");
    }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Context context;
  std::string out(kSha256Size, '\0');
  unsigned int len = 0;
  if (EVP_DigestInit_ex2(context.ctx, sha256_md(), nullptr) != 1 ||
      EVP_DigestUpdate(context.ctx, bytes_of(data), data.size()) != 1 ||
      EVP_DigestFinal_ex(context.ctx, reinterpret_cast<unsigned char*>(out.data()), &len) != 1 ||
      len != kSha256Size) {
    die("SHA-256");
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  // RFC 2104 replaces a key longer than the hash block (64 bytes) by its digest; doing it here
  // gives the same MAC and keeps the length within OpenSSL's int parameter.
  std::string hashed_key;
  if (key.size() > kSha256BlockSize) {
    hashed_key = sha256(key);
    key = hashed_key;
  }
  std::string out(kSha256Size, '\0');
  unsigned int len = 0;
  if (HMAC(sha256_md(), bytes_of(key), static_cast<int>(key.size()), bytes_of(data), data.size(),
           reinterpret_cast<unsigned char*>(out.data()), &len) == nullptr ||
      len != kSha256Size) {
    die("HMAC-SHA256");
  }
  if (!hashed_key.empty()) OPENSSL_cleanse(hashed_key.data(), hashed_key.size());
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace parley::crypto
