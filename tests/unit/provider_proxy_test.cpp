// HTTPS_PROXY / NO_PROXY: which endpoints are tunnelled through which proxy.
#include <gtest/gtest.h>

#include "provider/http_client.hpp"

namespace parley::provider {
namespace {

Endpoint https(std::string host, std::uint16_t port = 443) {
  Endpoint e;
  e.tls = true;
  e.host = std::move(host);
  e.port = port;
  return e;
}

TEST(Proxy, ParsesUrlsWithAndWithoutSchemeAndCredentials) {
  auto plain = parse_proxy_url("proxy.internal:3128");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->host, "proxy.internal");
  EXPECT_EQ(plain->port, 3128);
  EXPECT_TRUE(plain->authorization.empty());
  auto with_auth = parse_proxy_url("http://user:pa%20ss@10.0.0.1");
  ASSERT_TRUE(with_auth);
  EXPECT_EQ(with_auth->host, "10.0.0.1");
  EXPECT_EQ(with_auth->port, 80);
  EXPECT_TRUE(with_auth->authorization.starts_with("Basic "));
  EXPECT_FALSE(parse_proxy_url("socks5://proxy:1080"));
  EXPECT_FALSE(parse_proxy_url("http://:8080"));
}

TEST(Proxy, NoProxyMatchesHostsSubdomainsIpsPortsAndStar) {
  EXPECT_TRUE(no_proxy_matches("example.com", "example.com", 443));
  EXPECT_TRUE(no_proxy_matches("example.com", "api.EXAMPLE.com", 443));
  EXPECT_FALSE(no_proxy_matches("example.com", "badexample.com", 443));
  EXPECT_TRUE(no_proxy_matches(".example.com", "example.com", 443));
  EXPECT_TRUE(no_proxy_matches("*.example.com", "a.b.example.com", 443));
  EXPECT_TRUE(no_proxy_matches("other.org, 10.1.2.3", "10.1.2.3", 443));
  EXPECT_TRUE(no_proxy_matches("api.openai.com:443", "api.openai.com", 443));
  EXPECT_FALSE(no_proxy_matches("api.openai.com:8443", "api.openai.com", 443));
  EXPECT_TRUE(no_proxy_matches("*", "anything.test", 443));
  EXPECT_FALSE(no_proxy_matches("", "anything.test", 443));
  EXPECT_FALSE(no_proxy_matches(" , ", "anything.test", 443));
}

TEST(Proxy, OnlyRemoteHttpsEndpointsUseTheProxy) {
  auto p = proxy_for(https("api.openai.com"), "http://proxy:3128", "");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host, "proxy");
  EXPECT_EQ(p->port, 3128);
  EXPECT_FALSE(proxy_for(https("api.openai.com"), "", ""));
  EXPECT_FALSE(proxy_for(https("api.openai.com"), "http://proxy:3128", "openai.com"));
  EXPECT_FALSE(proxy_for(https("127.0.0.1"), "http://proxy:3128", ""));
  EXPECT_FALSE(proxy_for(https("localhost"), "http://proxy:3128", ""));
  Endpoint plain = https("example.com", 80);
  plain.tls = false;
  EXPECT_FALSE(proxy_for(plain, "http://proxy:3128", ""));
  EXPECT_FALSE(proxy_for(https("api.openai.com"), "ftp://nonsense", ""))
      << "an unusable proxy URL is ignored";
}

}  // namespace
}  // namespace parley::provider
