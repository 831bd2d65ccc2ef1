#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "crypto/encoding.hpp"
#include "crypto/fernet.hpp"

namespace parley::crypto {
namespace {

namespace json = boost::json;

std::filesystem::path data_dir() {
  if (const char* root = std::getenv("PARLEY_SOURCE_DIR"); root != nullptr && *root != '\0') {
    return std::filesystem::path(root) / "tests/unit/data/fernet";
  }
  return std::filesystem::path(__FILE__).parent_path() / "data/fernet";
}

json::array load_vectors(const std::string& name) {
  const std::filesystem::path path = data_dir() / name;
  std::ifstream in(path);
  if (!in) ADD_FAILURE() << "cannot open " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  json::value v = json::parse(buffer.str());
  return v.as_array();
}

// "1985-10-26T01:20:00-07:00" -> unix seconds. Only the shape the vectors use.
std::int64_t parse_time(std::string_view s) {
  using namespace std::chrono;
  auto num = [&](std::size_t at, std::size_t len) { return std::stoi(std::string(s.substr(at, len))); };
  EXPECT_EQ(s.size(), 25u) << s;
  const year_month_day date{year{num(0, 4)}, month{static_cast<unsigned>(num(5, 2))},
                            day{static_cast<unsigned>(num(8, 2))}};
  const std::int64_t local = duration_cast<seconds>(sys_days{date}.time_since_epoch()).count() +
                             num(11, 2) * 3600 + num(14, 2) * 60 + num(17, 2);
  const int sign = s[19] == '-' ? -1 : 1;
  const std::int64_t offset = sign * (num(20, 2) * 3600 + num(23, 2) * 60);
  return local - offset;
}

FernetKey key_of(std::string_view text) {
  auto key = FernetKey::parse(text);
  EXPECT_TRUE(key) << "bad test key";
  return *key;
}

FernetIv iv_of(const json::array& bytes) {
  FernetIv iv{};
  EXPECT_EQ(bytes.size(), iv.size());
  for (std::size_t i = 0; i < iv.size() && i < bytes.size(); ++i) {
    iv[i] = static_cast<unsigned char>(bytes[i].to_number<int>());
  }
  return iv;
}

std::string str(const json::value& v) {
  return std::string(v.as_string());
}

constexpr std::string_view kKeyA = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
constexpr std::int64_t kT = 1700000000;

TEST(CryptoFernet, TimeParserMatchesTheVectorTimestamp) {
  // The vector token carries 0x1dc09eb0 = 499162800 = 1985-10-26T08:20:00Z.
  EXPECT_EQ(parse_time("1985-10-26T01:20:00-07:00"), 499162800);
}

TEST(CryptoFernet, GenerateVectorsProduceExactTokens) {
  const json::array vectors = load_vectors("generate.json");
  ASSERT_FALSE(vectors.empty());
  for (const json::value& v : vectors) {
    const json::object& c = v.as_object();
    SCOPED_TRACE(str(c.at("token")));
    auto token = fernet_encrypt(key_of(str(c.at("secret"))), str(c.at("src")),
                                parse_time(c.at("now").as_string()), iv_of(c.at("iv").as_array()));
    ASSERT_TRUE(token) << token.error().message;
    EXPECT_EQ(*token, str(c.at("token")));
  }
}

TEST(CryptoFernet, VerifyVectorsDecrypt) {
  const json::array vectors = load_vectors("verify.json");
  ASSERT_FALSE(vectors.empty());
  for (const json::value& v : vectors) {
    const json::object& c = v.as_object();
    SCOPED_TRACE(str(c.at("token")));
    auto plain =
        fernet_decrypt(key_of(str(c.at("secret"))), str(c.at("token")), parse_time(c.at("now").as_string()),
                       c.at("ttl_sec").to_number<std::int64_t>());
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_EQ(*plain, str(c.at("src")));
  }
}

TEST(CryptoFernet, InvalidVectorsAreRejected) {
  const json::array vectors = load_vectors("invalid.json");
  ASSERT_EQ(vectors.size(), 8u);
  for (const json::value& v : vectors) {
    const json::object& c = v.as_object();
    SCOPED_TRACE(str(c.at("desc")));
    const FernetKey key = key_of(str(c.at("secret")));
    auto plain = fernet_decrypt(key, str(c.at("token")), parse_time(c.at("now").as_string()),
                                c.at("ttl_sec").to_number<std::int64_t>());
    ASSERT_FALSE(plain);
    EXPECT_EQ(plain.error().kind, ErrorKind::kUnauthorized);
    EXPECT_EQ(plain.error().message.find(kKeyA), std::string::npos);
    auto multi = MultiFernet::create({FernetKey::generate(), key});
    ASSERT_TRUE(multi);
    EXPECT_FALSE(multi->decrypt(str(c.at("token")), parse_time(c.at("now").as_string()),
                                c.at("ttl_sec").to_number<std::int64_t>()));
  }
}

TEST(CryptoFernet, DecryptsATokenMadeByPythonCryptography) {
  // Made with cryptography 48: Fernet(key)._encrypt_from_parts(msg, 1700000000, bytes(range(100, 116))).
  const FernetKey key = key_of("fAGZ5wWq2Xb3VgqQmWqgLtYpP5mhn0sX7JgbPbx0wQM=");
  const std::string token =
      "gAAAAABlU_EAZGVmZ2hpamtsbW5vcHFyc2Fn9lI-Bi6CImCH3ob3adH9-CkG9C45SHfCVxMj8vwjcH649YK07lKRqVEOFbFH_"
      "TdDiT6wIAl1L0moRN8vVrxSAgMZWkFaCcmbLVBKDn-fxERkXRg1PVW4heUKq2RQQ0tforL6f9Hsi9WLGTnCiG8=";
  const std::string message =
      "sk-proj-\xC3\x9Cn\xC3\xAF"
      "c\xC3\xB8"
      "d\xC3\xA9 secret that spans several AES blocks 0123456789";
  auto plain = fernet_decrypt(key, token, kT + 5, 10);
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(*plain, message);

  FernetIv iv{};
  for (std::size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<unsigned char>(100 + i);
  auto again = fernet_encrypt(key, message, kT, iv);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, token);

  // The same token without its padding is still accepted.
  auto unpadded = fernet_decrypt(key, std::string_view(token).substr(0, token.size() - 1), kT);
  ASSERT_TRUE(unpadded);
  EXPECT_EQ(*unpadded, message);
}

TEST(CryptoFernet, RoundTripsWithRandomIvs) {
  const FernetKey key = FernetKey::generate();
  for (const std::string& message : {std::string(), std::string("x"), std::string(16, 'a'),
                                     std::string(1000, 'z'), std::string("bin\0ary", 7)}) {
    auto a = fernet_encrypt(key, message, kT);
    auto b = fernet_encrypt(key, message, kT);
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    EXPECT_NE(*a, *b);  // fresh IV each time
    EXPECT_EQ(a->size() % 4, 0u);
    auto plain = fernet_decrypt(key, *a, kT);
    ASSERT_TRUE(plain);
    EXPECT_EQ(*plain, message);
  }
}

TEST(CryptoFernet, AnyModifiedByteIsRejected) {
  const FernetKey key = FernetKey::generate();
  auto token = fernet_encrypt(key, "provider key", kT);
  ASSERT_TRUE(token);
  auto raw = base64url_decode(*token, Padding::kRequired);
  ASSERT_TRUE(raw);
  for (std::size_t i = 0; i < raw->size(); ++i) {
    std::string tampered = *raw;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    EXPECT_FALSE(fernet_decrypt(key, base64url_encode(tampered, true), kT)) << "byte " << i;
  }
  EXPECT_FALSE(fernet_decrypt(key, base64url_encode(raw->substr(0, raw->size() - 1), true), kT));
  EXPECT_FALSE(fernet_decrypt(key, "", kT));
}

TEST(CryptoFernet, WrongKeyIsRejected) {
  auto token = fernet_encrypt(FernetKey::generate(), "provider key", kT);
  ASSERT_TRUE(token);
  auto plain = fernet_decrypt(FernetKey::generate(), *token, kT);
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().kind, ErrorKind::kUnauthorized);
}

TEST(CryptoFernet, TtlExpiresTokensOlderThanTtl) {
  const FernetKey key = FernetKey::generate();
  auto token = fernet_encrypt(key, "m", kT);
  ASSERT_TRUE(token);
  EXPECT_TRUE(fernet_decrypt(key, *token, kT + 60, 60));  // timestamp + ttl == now is still valid
  auto expired = fernet_decrypt(key, *token, kT + 61, 60);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().message, "token expired");
  EXPECT_TRUE(fernet_decrypt(key, *token, kT + 100000000));  // no TTL: never expires
}

TEST(CryptoFernet, TtlRejectsTimestampsTooFarInTheFuture) {
  const FernetKey key = FernetKey::generate();
  auto token = fernet_encrypt(key, "m", kT);
  ASSERT_TRUE(token);
  EXPECT_TRUE(fernet_decrypt(key, *token, kT - kFernetMaxClockSkew, 3600));
  auto future = fernet_decrypt(key, *token, kT - kFernetMaxClockSkew - 1, 3600);
  ASSERT_FALSE(future);
  EXPECT_EQ(future.error().message, "token timestamp is in the future");
  // As in Python, the skew rule is part of the TTL check only.
  EXPECT_TRUE(fernet_decrypt(key, *token, kT - 100000));
}

TEST(CryptoFernet, ExtractTimestampNeedsAValidSignature) {
  const FernetKey key = FernetKey::generate();
  auto token = fernet_encrypt(key, "m", kT);
  ASSERT_TRUE(token);
  auto ts = fernet_extract_timestamp(key, *token);
  ASSERT_TRUE(ts);
  EXPECT_EQ(*ts, static_cast<std::uint64_t>(kT));
  EXPECT_FALSE(fernet_extract_timestamp(FernetKey::generate(), *token));
}

TEST(CryptoFernet, EncryptRejectsTimesBefore1970) {
  EXPECT_FALSE(fernet_encrypt(FernetKey::generate(), "m", -1));
}

TEST(CryptoFernet, KeyParsingAcceptsPythonFormatOnly) {
  const std::string generated = generate_fernet_key();
  EXPECT_EQ(generated.size(), 44u);
  EXPECT_EQ(generated.back(), '=');
  auto key = FernetKey::parse(generated);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->encoded(), generated);
  EXPECT_NE(generate_fernet_key(), generated);

  EXPECT_TRUE(FernetKey::parse(std::string_view(kKeyA).substr(0, 43)));  // unpadded
  const std::string key31 = base64url_encode(std::string(31, 'k'), true);
  const std::string key33 = base64url_encode(std::string(33, 'k'), true);
  for (const std::string& bad :
       {std::string(), key31, key33, std::string("cw/0x689RpI+jtRR7oE8h/eQsKImvJapLeSbXpwF4e4="),
        std::string(kKeyA) + " ", std::string(kKeyA) + "="}) {
    auto parsed = FernetKey::parse(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().kind, ErrorKind::kBadRequest);
    if (!bad.empty()) {
      EXPECT_EQ(parsed.error().message.find(bad.substr(0, 8)), std::string::npos);
    }
  }
}

TEST(CryptoFernet, MultiFernetNeedsAKey) {
  auto multi = MultiFernet::create({});
  ASSERT_FALSE(multi);
}

TEST(CryptoFernet, MultiFernetEncryptsWithFirstAndDecryptsWithAny) {
  const FernetKey primary = FernetKey::generate();
  const FernetKey old_key = FernetKey::generate();
  auto multi = MultiFernet::create({primary, old_key});
  ASSERT_TRUE(multi);
  EXPECT_EQ(multi->size(), 2u);

  auto token = multi->encrypt("m", kT);
  ASSERT_TRUE(token);
  EXPECT_TRUE(fernet_decrypt(primary, *token, kT));
  EXPECT_FALSE(fernet_decrypt(old_key, *token, kT));

  auto old_token = fernet_encrypt(old_key, "from the old key", kT);
  ASSERT_TRUE(old_token);
  auto plain = multi->decrypt(*old_token, kT + 10, 60);
  ASSERT_TRUE(plain);
  EXPECT_EQ(*plain, "from the old key");
  EXPECT_FALSE(multi->decrypt(*old_token, kT + 61, 60));

  auto stranger = fernet_encrypt(FernetKey::generate(), "m", kT);
  ASSERT_TRUE(stranger);
  EXPECT_FALSE(multi->decrypt(*stranger, kT));
}

TEST(CryptoFernet, RotateReencryptsUnderPrimaryKeepingTimestamp) {
  const FernetKey old_key = FernetKey::generate();
  const FernetKey new_key = FernetKey::generate();
  auto old_token = fernet_encrypt(old_key, "rotate me", kT);
  ASSERT_TRUE(old_token);
  auto multi = MultiFernet::create({new_key, old_key});
  ASSERT_TRUE(multi);

  FernetIv iv{};
  iv.fill(7);
  // Rotation takes no clock: there is no TTL or skew check, and the timestamp is kept.
  auto rotated = multi->rotate(*old_token, iv);
  ASSERT_TRUE(rotated);
  auto expected = fernet_encrypt(new_key, "rotate me", kT, iv);
  ASSERT_TRUE(expected);
  EXPECT_EQ(*rotated, *expected);

  auto plain = fernet_decrypt(new_key, *rotated, kT);
  ASSERT_TRUE(plain);
  EXPECT_EQ(*plain, "rotate me");
  EXPECT_FALSE(fernet_decrypt(old_key, *rotated, kT));
  auto ts = fernet_extract_timestamp(new_key, *rotated);
  ASSERT_TRUE(ts);
  EXPECT_EQ(*ts, static_cast<std::uint64_t>(kT));

  auto random_iv = multi->rotate(*old_token);
  ASSERT_TRUE(random_iv);
  EXPECT_NE(*random_iv, *rotated);
  EXPECT_TRUE(fernet_decrypt(new_key, *random_iv, kT));

  auto stranger = fernet_encrypt(FernetKey::generate(), "m", kT);
  ASSERT_TRUE(stranger);
  EXPECT_FALSE(multi->rotate(*stranger));
  EXPECT_FALSE(multi->rotate("not a token"));
}

}  // namespace
}  // namespace parley::crypto
