#include "api/openai_conversations.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "api/json_input.hpp"

namespace parley::api {

namespace asio = boost::asio;
namespace bj = boost::json;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;

namespace {

// An optional body: none (or empty) reads as {}.
Result<bj::object> read_optional_object(const RequestContext& ctx) {
  if (ctx.request.body().empty()) return bj::object{};
  return read_object(ctx);
}

// `items` of a body: an array of at most 20 items parley can hold (absent or null: none, unless
// required).
Result<std::vector<store::MessageRecord>> read_items(const bj::object& body, bool required) {
  std::vector<store::MessageRecord> out;
  auto it = body.find("items");
  if (it == body.end() || it->value().is_null()) {
    if (required) return validation("items", "items is required");
    return out;
  }
  if (!it->value().is_array()) return validation("items", "items must be an array of items");
  const bj::array& items = it->value().as_array();
  if (required && items.empty()) return validation("items", "items must hold at least one item");
  if (items.size() > services::kMaxItemsPerRequest) {
    return validation("items", fmt::format("items may hold at most {} items", services::kMaxItemsPerRequest));
  }
  out.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    auto m = services::item_to_message(items[i], fmt::format("items[{}]", i));
    if (!m) return std::unexpected(m.error());
    out.push_back(std::move(*m));
  }
  return out;
}

bj::object item_list(const std::vector<store::MessageRecord>& items, bool has_more) {
  bj::array data;
  data.reserve(items.size());
  for (const auto& m : items) data.push_back(services::message_to_item(m));
  bj::value first = nullptr;
  bj::value last = nullptr;
  if (!items.empty()) {
    first = items.front().id;
    last = items.back().id;
  }
  return bj::object{{"object", "list"},
                    {"data", std::move(data)},
                    {"first_id", std::move(first)},
                    {"last_id", std::move(last)},
                    {"has_more", has_more}};
}

Result<services::ItemQuery> read_item_query(const RequestContext& ctx) {
  services::ItemQuery q;
  if (auto limit = ctx.query("limit")) {
    auto n = to_int(*limit);
    if (!n || *n < 1 || *n > 100) return validation("limit", "limit must be between 1 and 100");
    q.limit = *n;
  }
  if (auto order = ctx.query("order")) {
    if (*order != "asc" && *order != "desc") return validation("order", "order must be asc or desc");
    q.ascending = *order == "asc";
  }
  if (auto after = ctx.query("after")) {
    if (after->empty() || after->size() > 128) return validation("after", "after must be an item id");
    q.after = *after;
  }
  return q;
}

asio::awaitable<Response> create(OpenAiConversationDeps& d, RequestContext& ctx) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  auto body = read_optional_object(ctx);
  if (!body) co_return error_of(body.error(), ctx);
  if (auto s = only_fields(*body, {"items", "metadata"}); !s) co_return error_of(s.error(), ctx);
  auto items = read_items(*body, false);
  if (!items) co_return error_of(items.error(), ctx);
  std::optional<std::string> metadata;
  if (auto it = body->find("metadata"); it != body->end()) {
    auto read = services::read_openai_metadata(it->value());
    if (!read) co_return error_of(read.error(), ctx);
    metadata = std::move(*read);
  }
  auto created = co_await d.conversations.create(*who, std::move(*items), std::move(metadata));
  if (!created) co_return error_of(created.error(), ctx);
  co_return http::json_response(StatusCode::ok, services::conversation_object(created->conversation));
}

asio::awaitable<Response> update(OpenAiConversationDeps& d, RequestContext& ctx) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  auto body = read_object(ctx);
  if (!body) co_return error_of(body.error(), ctx);
  if (auto s = only_fields(*body, {"metadata"}); !s) co_return error_of(s.error(), ctx);
  auto it = body->find("metadata");
  if (it == body->end()) co_return error_of(validation("metadata", "metadata is required").error(), ctx);
  auto metadata = services::read_openai_metadata(it->value());
  if (!metadata) co_return error_of(metadata.error(), ctx);
  std::string id(ctx.param("conversation_id"));
  auto updated = co_await d.conversations.update(*who, std::move(id), std::move(*metadata));
  if (!updated) co_return error_of(updated.error(), ctx);
  co_return http::json_response(StatusCode::ok, services::conversation_object(*updated));
}

asio::awaitable<Response> add_items(OpenAiConversationDeps& d, RequestContext& ctx) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  auto body = read_object(ctx);
  if (!body) co_return error_of(body.error(), ctx);
  if (auto s = only_fields(*body, {"items"}); !s) co_return error_of(s.error(), ctx);
  auto items = read_items(*body, true);
  if (!items) co_return error_of(items.error(), ctx);
  std::string id(ctx.param("conversation_id"));
  auto added = co_await d.conversations.add_items(*who, std::move(id), std::move(*items));
  if (!added) co_return error_of(added.error(), ctx);
  co_return http::json_response(StatusCode::ok, item_list(*added, false));
}

}  // namespace

void register_openai_conversation_routes(http::Router& router, OpenAiConversationDeps& d) {
  router.add(Method::post, "/v1/conversations", [&d](RequestContext& ctx) { return create(d, ctx); });

  router.add(Method::get, "/v1/conversations/{conversation_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("conversation_id"));
               auto found = co_await d.conversations.get(*who, std::move(id));
               if (!found) co_return error_of(found.error(), ctx);
               co_return http::json_response(StatusCode::ok, services::conversation_object(*found));
             });

  router.add(Method::post, "/v1/conversations/{conversation_id}",
             [&d](RequestContext& ctx) { return update(d, ctx); });

  router.add(Method::delete_, "/v1/conversations/{conversation_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("conversation_id"));
               auto removed = co_await d.conversations.remove(*who, id);
               if (!removed) co_return error_of(removed.error(), ctx);
               co_return http::json_response(
                   StatusCode::ok,
                   bj::object{{"id", id}, {"object", "conversation.deleted"}, {"deleted", true}});
             });

  router.add(Method::get, "/v1/conversations/{conversation_id}/items",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               auto query = read_item_query(ctx);
               if (!query) co_return error_of(query.error(), ctx);
               std::string id(ctx.param("conversation_id"));
               auto page = co_await d.conversations.list_items(*who, std::move(id), std::move(*query));
               if (!page) co_return error_of(page.error(), ctx);
               co_return http::json_response(StatusCode::ok, item_list(page->items, page->has_more));
             });

  router.add(Method::post, "/v1/conversations/{conversation_id}/items",
             [&d](RequestContext& ctx) { return add_items(d, ctx); });

  router.add(Method::get, "/v1/conversations/{conversation_id}/items/{item_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("conversation_id"));
               std::string item_id(ctx.param("item_id"));
               auto item = co_await d.conversations.get_item(*who, std::move(id), std::move(item_id));
               if (!item) co_return error_of(item.error(), ctx);
               co_return http::json_response(StatusCode::ok, services::message_to_item(*item));
             });

  router.add(Method::delete_, "/v1/conversations/{conversation_id}/items/{item_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("conversation_id"));
               std::string item_id(ctx.param("item_id"));
               auto c = co_await d.conversations.delete_item(*who, std::move(id), std::move(item_id));
               if (!c) co_return error_of(c.error(), ctx);
               co_return http::json_response(StatusCode::ok, services::conversation_object(*c));
             });
}

}  // namespace parley::api
