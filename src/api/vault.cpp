// /api/v1/users/{user_id}/api-key (PUT, GET, DELETE): the user's own provider key.
#include "api/vault.hpp"

#include <boost/json.hpp>

#include "api/json_input.hpp"

namespace parley::api {

namespace asio = boost::asio;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;

namespace {

constexpr std::string_view kRoute = "/api/v1/users/{user_id}/api-key";

bj::object render_masked(const services::MaskedProviderKey& key) {
  return bj::object{{"provider", key.provider},
                    {"api_key_masked", key.masked},
                    {"created_at", iso8601(key.created_at)},
                    {"updated_at", iso8601(key.updated_at)}};
}

// A masked key (or list of them): never cached on the way.
Response no_store_response(const bj::value& body) {
  Response res = http::json_response(StatusCode::ok, body);
  res.set(boost::beast::http::field::cache_control, "no-store");
  return res;
}

Response masked_response(const services::MaskedProviderKey& key) {
  return no_store_response(render_masked(key));
}

std::string provider_of(const RequestContext& ctx) {
  return ctx.query("provider").value_or(std::string(services::kDefaultProvider));
}

// The key straight into a Secret; type errors never echo the value.
Result<crypto::Secret> read_key(const bj::object& body) {
  auto it = body.find("api_key");
  if (it == body.end() || it->value().is_null()) return validation("api_key", "api_key is required");
  if (!it->value().is_string()) return validation("api_key", "api_key must be a string");
  return crypto::Secret(std::string(it->value().as_string()));
}

}  // namespace

void register_vault_routes(http::Router& router, VaultDeps& d) {
  router.add(
      Method::put, kRoute,
      [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        auto who = co_await d.authenticator.authenticate(ctx);
        if (!who) co_return error_of(who.error(), ctx);
        auto body = read_object(ctx);
        if (!body) co_return error_of(body.error(), ctx);
        if (auto s = only_fields(*body, {"api_key", "provider", "verify"}); !s)
          co_return error_of(s.error(), ctx);
        auto key = read_key(*body);
        if (!key) co_return error_of(key.error(), ctx);
        auto provider_field = get_string(*body, "provider", false, {1, 64});
        if (!provider_field) co_return error_of(provider_field.error(), ctx);
        auto verify = get_bool(*body, "verify", false);
        if (!verify) co_return error_of(verify.error(), ctx);
        std::string provider = provider_field->value_or(std::string(services::kDefaultProvider));
        std::string user_id(ctx.param("user_id"));

        // Who may write and whether the input is well-formed, before the provider sees the key.
        if (auto s = d.vault.check_set(*who, user_id, provider, *key); !s) co_return error_of(s.error(), ctx);
        if (verify->value_or(false)) {
          if (!d.verifier) {
            co_return error_of(
                Error(ErrorKind::kUnavailable,
                      "Key verification is not available on this server; store the key without "
                      "\"verify\" or try again later"),
                ctx);
          }
          std::string verify_provider = provider;
          crypto::Secret verify_key = *key;
          Status accepted = co_await d.verifier(std::move(verify_provider), std::move(verify_key));
          if (!accepted) co_return error_of(accepted.error(), ctx);
        }

        auto meta = meta_of(ctx);
        auto saved = co_await d.pool.run([&] { return d.vault.set(*who, user_id, provider, *key, meta); });
        if (!saved) co_return error_of(saved.error(), ctx);
        co_return masked_response(*saved);
      },
      "Store the caller's (or, for admins, a user's) provider API key, encrypted");

  router.add(
      Method::get, kRoute,
      [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        auto who = co_await d.authenticator.authenticate(ctx);
        if (!who) co_return error_of(who.error(), ctx);
        std::string user_id(ctx.param("user_id"));
        std::string provider = provider_of(ctx);
        auto key = co_await d.pool.run([&] { return d.vault.get_masked(*who, user_id, provider); });
        if (!key) co_return error_of(key.error(), ctx);
        co_return masked_response(*key);
      },
      "Show a user's provider API key, masked");

  router.add(
      Method::delete_, kRoute,
      [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        auto who = co_await d.authenticator.authenticate(ctx);
        if (!who) co_return error_of(who.error(), ctx);
        std::string user_id(ctx.param("user_id"));
        std::string provider = provider_of(ctx);
        auto meta = meta_of(ctx);
        auto removed = co_await d.pool.run([&] { return d.vault.remove(*who, user_id, provider, meta); });
        if (!removed) co_return error_of(removed.error(), ctx);
        co_return Response{StatusCode::no_content, 11};
      },
      "Delete a user's provider API key");

  router.add(
      Method::get, "/api/v1/users/{user_id}/provider-keys",
      [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        auto who = co_await d.authenticator.authenticate(ctx);
        if (!who) co_return error_of(who.error(), ctx);
        std::string user_id(ctx.param("user_id"));
        auto keys = co_await d.pool.run([&] { return d.vault.list_masked(*who, user_id); });
        if (!keys) co_return error_of(keys.error(), ctx);
        bj::array data;
        for (const auto& key : *keys) data.push_back(render_masked(key));
        co_return no_store_response(bj::object{{"data", std::move(data)}});
      },
      "List a user's provider API keys, masked");

  router.add(
      Method::get, "/api/v1/providers",
      [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        auto who = co_await d.authenticator.authenticate(ctx);
        if (!who) co_return error_of(who.error(), ctx);
        bj::array data;
        if (d.providers != nullptr) {
          for (const auto& entry : d.providers->entries()) {
            const char* credentials = "byok";
            const char* user_key = "required";
            if (entry.credentials == provider::Credentials::kSystem) {
              credentials = "system";
              user_key = "unused";
            } else if (entry.credentials == provider::Credentials::kByokOrSystem) {
              credentials = "byok_or_system";
              user_key = "optional";
            }
            bj::array models;
            for (const auto& m : entry.models) models.emplace_back(m);
            data.push_back(bj::object{{"name", entry.provider->name()},
                                      {"credentials", credentials},
                                      {"models", std::move(models)},
                                      {"user_key", user_key}});
          }
        }
        co_return http::json_response(StatusCode::ok, bj::object{{"data", std::move(data)}});
      },
      "List the configured providers and whether they take the user's own key");
}

}  // namespace parley::api
