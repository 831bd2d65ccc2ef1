// /api/v1/users/{user_id}/api-key: a user's own provider key (issue 4, seeds 000 and 002).
//
//   PUT    {api_key, provider?, verify?} → 200 {provider, api_key_masked, created_at, updated_at}
//   GET    [?provider=]                  → 200 the same masked form, or 404 when no key is set
//   DELETE [?provider=]                  → 204, or 404 when no key is set
//
// provider defaults to "openai". The key is never returned, only its masked form (at most the
// first 3 and last 4 characters). Authenticated by access token or service key; the owner and
// admins may write, managers may read, anyone else gets 404 (services/vault_service.hpp).
//
// GET /api/v1/users/{user_id}/provider-keys → 200 {data: [masked form, …]}: every key the user keeps.
// GET /api/v1/providers → 200 {data: [{name, credentials, models, user_key}]}: the configured
// providers (never their address or system key), so that a client can offer the providers that
// take the user's own key. Any authenticated caller.
//
// verify: true tries the key with the provider (the injected verifier) before storing it: a key
// the provider refuses is not stored (400 INVALID_API_KEY); without a verifier the request is
// refused with 503 SERVICE_UNAVAILABLE and nothing is stored.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string>

#include "api/deps.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/secret.hpp"
#include "http/blocking_pool.hpp"
#include "http/router.hpp"
#include "provider/provider.hpp"
#include "services/vault_service.hpp"

namespace parley::api {

// Tries `key` against `provider` (e.g. GET {base_url}/models). Ok when the provider accepts it;
// kInvalidApiKey when it answers 401 or 403; any other error (unknown provider → kValidation with param
// "provider", connection failures, timeouts) is passed to the client as is. Must not put the key
// into its error messages or logs. Runs on an event-loop thread: must not block.
using KeyVerifier = std::function<boost::asio::awaitable<Status>(std::string provider, crypto::Secret key)>;

struct VaultDeps {
  services::VaultService& vault;
  Authenticator& authenticator;
  http::BlockingPool& pool;
  const Clock& clock;
  KeyVerifier verifier;  // empty: `verify: true` is refused
  // The configured providers, for GET /api/v1/providers (set once they are built).
  const provider::ProviderRegistry* providers = nullptr;
};

void register_vault_routes(http::Router& router, VaultDeps& deps);

}  // namespace parley::api
