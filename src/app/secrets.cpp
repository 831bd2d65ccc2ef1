#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/app.hpp"
#include "crypto/encoding.hpp"
#include "crypto/fernet.hpp"
#include "crypto/random.hpp"

namespace parley::app {
namespace {

namespace fs = std::filesystem;

// Reads `path`, or creates it with `make()` (mode 0600, never overwriting a file that appeared meanwhile).
Result<std::string> load_or_create(const fs::path& path, const std::function<std::string()>& make,
                                   bool& created) {
  created = false;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    std::string value = make();
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::fchmod(fd, 0600);
      std::string line = value + "\n";
      bool ok =
          ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) return fail(ErrorKind::kInternal, "cannot write " + path.string());
      created = true;
      return value;
    }
    if (errno != EEXIST)
      return fail(ErrorKind::kInternal, "cannot create " + path.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    spdlog::warn("{} is readable by other users; run chmod 600 on it", path.string());
  }
  std::ifstream in(path);
  std::string value;
  std::getline(in, value);
  if (value.empty()) return fail(ErrorKind::kInternal, path.string() + " is empty");
  return value;
}

}  // namespace

Status ensure_secrets(config::Config& config) {
  if (!config.encryption_keys.empty() && !config.jwt_secret.empty()) return {};
  fs::path dir = fs::path(config.data_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(ErrorKind::kInternal, "cannot create data dir " + dir.string() + ": " + ec.message());
  bool created_any = false;
  if (config.encryption_keys.empty()) {
    bool created = false;
    auto keys = load_or_create(
        dir / "encryption.keys", [] { return crypto::generate_fernet_key(); }, created);
    if (!keys) return std::unexpected(keys.error());
    config.encryption_keys = *keys;
    created_any |= created;
  }
  if (config.jwt_secret.empty()) {
    bool created = false;
    auto secret = load_or_create(
        dir / "jwt.secret", [] { return crypto::base64url_encode(crypto::random_bytes(48)); }, created);
    if (!secret) return std::unexpected(secret.error());
    config.jwt_secret = *secret;
    created_any |= created;
  }
  if (created_any) {
    spdlog::warn(
        "generated new secrets in {} (mode 0600); production deployments set PARLEY_ENCRYPTION_KEYS and "
        "PARLEY_JWT_SECRET themselves and keep them out of the data directory",
        dir.string());
  } else {
    spdlog::info("using secrets stored in {}; production sets PARLEY_ENCRYPTION_KEYS and PARLEY_JWT_SECRET",
                 dir.string());
  }
  return {};
}

}  // namespace parley::app
