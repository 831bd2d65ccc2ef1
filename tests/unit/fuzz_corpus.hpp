// The seed corpus of a libFuzzer target (tests/fuzz/corpus/<target>/), for unit tests that check
// the target's properties on it in every GCC build.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace parley::test {

// Each file of the corpus as (path, bytes). Empty when the directory is missing.
inline std::vector<std::pair<std::filesystem::path, std::string>> fuzz_corpus(const std::string& target) {
  // PARLEY_SOURCE_DIR (set by CTest) first: __FILE__ may be relative when ccache rewrites paths.
  const char* root = std::getenv("PARLEY_SOURCE_DIR");
  const std::filesystem::path dir =
      (root != nullptr ? std::filesystem::path(root) / "tests"
                       : std::filesystem::path(__FILE__).parent_path().parent_path()) /
      "fuzz" / "corpus" / target;
  std::vector<std::pair<std::filesystem::path, std::string>> files;
  if (!std::filesystem::is_directory(dir)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    files.emplace_back(entry.path(),
                       std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  }
  return files;
}

}  // namespace parley::test
