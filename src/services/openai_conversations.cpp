#include "services/openai_conversations.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <limits>
#include <utility>

#include "crypto/random.hpp"

namespace parley::services {

namespace asio = boost::asio;
namespace bj = boost::json;
using store::ConversationRecord;
using store::ConversationStore;
using store::MessageRecord;

namespace {

// Code points of valid UTF-8 (boost::json strings are checked UTF-8 already).
std::size_t chars_of(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(
      text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string parley_role(std::string_view role) {
  if (role == "user" || role == "assistant") return std::string(role);
  return "system";  // system, developer
}

std::string_view default_part_type(std::string_view parley_role) {
  return parley_role == "assistant" ? "output_text" : "input_text";
}

std::string_view item_status(const MessageRecord& m) {
  if (m.status == "generating") return "in_progress";
  if (m.status == "complete") return "completed";
  return "incomplete";  // failed, cancelled
}

// The item a message with no stored item stands for.
bj::object rebuilt_item(std::string_view role, std::string_view content) {
  bj::object part{{"type", default_part_type(role)}, {"text", content}};
  if (role == "assistant") part["annotations"] = bj::array{};
  return bj::object{{"type", "message"}, {"role", role}, {"content", bj::array{std::move(part)}}};
}

const bj::string* string_field(const bj::object& o, std::string_view name) {
  auto it = o.find(name);
  if (it == o.end() || !it->value().is_string()) return nullptr;
  return &it->value().as_string();
}

Result<std::string> required_string(const bj::object& o, std::string_view name, const std::string& param) {
  if (const bj::string* s = string_field(o, name)) return std::string(*s);
  return validation(fmt::format("{}.{}", param, name), fmt::format("{} must be a string", name));
}

// The text of a message item's content (a string, or text parts) and the content as parts.
Result<std::string> content_text(bj::value& content, std::string_view role, const std::string& param) {
  if (content.is_string()) {
    std::string text(content.as_string());
    bj::object part{{"type", default_part_type(parley_role(role))}, {"text", text}};
    if (parley_role(role) == "assistant") part["annotations"] = bj::array{};
    content = bj::array{std::move(part)};
    return text;
  }
  if (!content.is_array()) {
    return validation(param + ".content", "content must be a string or an array of content parts");
  }
  std::string text;
  bj::array& parts = content.as_array();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string part_param = fmt::format("{}.content[{}]", param, i);
    if (!parts[i].is_object()) return validation(part_param, "a content part must be an object");
    bj::object& part = parts[i].as_object();
    const bj::string* type = string_field(part, "type");
    if (type == nullptr) return validation(part_param + ".type", "type must be a string");
    std::string_view field = "text";
    if (*type == "refusal") {
      field = "refusal";
    } else if (*type != "input_text" && *type != "output_text" && *type != "text") {
      return validation(part_param + ".type",
                        fmt::format("Content parts of type \"{}\" are not supported; supported: input_text, "
                                    "output_text, text, refusal",
                                    std::string_view(*type)));
    }
    auto piece = required_string(part, field, part_param);
    if (!piece) return std::unexpected(piece.error());
    if (*type == "output_text" && !part.contains("annotations")) part["annotations"] = bj::array{};
    if (i > 0) text += '\n';
    text += *piece;
  }
  return text;
}

// The readable text of a function_call_output's output: a string, or text parts.
std::string output_text(const bj::value& output) {
  if (output.is_string()) return std::string(output.as_string());
  std::string text;
  if (output.is_array()) {
    for (const bj::value& part : output.as_array()) {
      if (!part.is_object()) continue;
      if (const bj::string* t = string_field(part.as_object(), "text")) {
        if (!text.empty()) text += '\n';
        text += *t;
      }
    }
  }
  return text;
}

}  // namespace

Result<MessageRecord> item_to_message(const bj::value& input, const std::string& param) {
  if (!input.is_object()) return validation(param, "an item must be an object");
  bj::object item = input.as_object();
  item.erase("id");  // the item's id is the message's, assigned when stored
  // A status other than "completed" (an incomplete output message) is kept as sent.
  if (const bj::string* status = string_field(item, "status"); status != nullptr && *status == "completed") {
    item.erase("status");
  }
  std::string type;
  if (auto it = item.find("type"); it != item.end()) {
    if (!it->value().is_string()) return validation(param + ".type", "type must be a string");
    type = std::string(it->value().as_string());
  } else if (item.contains("role")) {
    type = "message";  // an "easy" input message: {role, content}
    item["type"] = "message";
  } else {
    return validation(param + ".type", "type is required");
  }

  MessageRecord m;
  m.status = "complete";
  bool exact = false;  // whether role and content rebuild the item
  if (type == "message") {
    const bj::string* role = string_field(item, "role");
    if (role == nullptr ||
        (*role != "user" && *role != "assistant" && *role != "system" && *role != "developer")) {
      return validation(param + ".role", "role must be one of user, assistant, system, developer");
    }
    const std::string sent_role(*role);
    auto content = item.find("content");
    if (content == item.end()) return validation(param + ".content", "content is required");
    auto text = content_text(content->value(), sent_role, param);
    if (!text) return std::unexpected(text.error());
    m.role = parley_role(sent_role);
    m.content = std::move(*text);
    exact = item == bj::value(rebuilt_item(m.role, m.content));
  } else if (type == "function_call") {
    auto call_id = required_string(item, "call_id", param);
    if (!call_id) return std::unexpected(call_id.error());
    auto name = required_string(item, "name", param);
    if (!name) return std::unexpected(name.error());
    auto arguments = required_string(item, "arguments", param);
    if (!arguments) return std::unexpected(arguments.error());
    m.role = "assistant";
    m.content = fmt::format("[function_call] {}({})", *name, *arguments);
  } else if (type == "function_call_output") {
    auto call_id = required_string(item, "call_id", param);
    if (!call_id) return std::unexpected(call_id.error());
    auto output = item.find("output");
    if (output == item.end() || !(output->value().is_string() || output->value().is_array())) {
      return validation(param + ".output", "output must be a string or an array of content parts");
    }
    m.role = "user";
    m.content = "[function_call_output] " + output_text(output->value());
  } else {
    return validation(
        param + ".type",
        fmt::format("Items of type \"{}\" are not supported; supported: message, function_call, "
                    "function_call_output",
                    type));
  }
  if (!exact) {
    m.item = bj::serialize(item);
    if (m.item->size() > kMaxItemBytes) {
      return validation(param, fmt::format("an item must be at most {} bytes as JSON", kMaxItemBytes));
    }
  } else if (m.content.size() > kMaxItemBytes) {
    return validation(param, fmt::format("an item must be at most {} bytes as JSON", kMaxItemBytes));
  }
  return m;
}

bj::object message_to_item(const MessageRecord& m) {
  bj::object source;
  if (m.item) {
    boost::system::error_code ec;
    bj::value parsed = bj::parse(*m.item, ec);
    if (!ec && parsed.is_object()) source = std::move(parsed.as_object());
  }
  if (source.empty()) source = rebuilt_item(m.role, m.content);
  bj::object out{{"id", m.id}};
  if (auto type = source.find("type"); type != source.end()) out["type"] = type->value();
  out["status"] = item_status(m);
  for (auto& field : source) {
    if (field.key() == "id" || field.key() == "type") continue;
    out[field.key()] = std::move(field.value());  // a stored status ("incomplete") wins
  }
  return out;
}

Result<std::string> read_openai_metadata(const bj::value& metadata) {
  if (metadata.is_null()) return std::string("{}");
  if (!metadata.is_object()) return validation("metadata", "metadata must be an object of string values");
  const bj::object& o = metadata.as_object();
  if (o.size() > kMaxMetadataPairs) {
    return validation("metadata", fmt::format("metadata may hold at most {} pairs", kMaxMetadataPairs));
  }
  for (const auto& [key, value] : o) {
    if (key.empty() || chars_of(key) > kMaxMetadataKeyChars) {
      return validation("metadata",
                        fmt::format("metadata keys must be 1 to {} characters", kMaxMetadataKeyChars));
    }
    if (!value.is_string() || chars_of(value.as_string()) > kMaxMetadataValueChars) {
      return validation(
          fmt::format("metadata.{}", std::string_view(key)),
          fmt::format("metadata values must be strings of at most {} characters", kMaxMetadataValueChars));
    }
  }
  return bj::serialize(o);
}

bj::object conversation_object(const ConversationRecord& c) {
  boost::system::error_code ec;
  bj::value metadata = bj::parse(c.metadata, ec);
  if (ec || !metadata.is_object()) metadata = bj::object{};
  return bj::object{{"id", c.id},
                    {"object", "conversation"},
                    {"created_at", c.created_at / 1000},
                    {"metadata", std::move(metadata)}};
}

// ---- OpenAiConversations ----------------------------------------------------------------------------

Result<ConversationRecord> OpenAiConversations::writable(const auth::Principal& who, const std::string& id) {
  auto c = conversations_.find(who, id, auth::Access::kWrite);
  if (!c) return c;
  if (c->status == "ended") {
    return fail(ErrorKind::kConflict,
                "The conversation has ended; reconnect to it (POST /api/v1/users/{user_id}/conversations/"
                "{conversation_id}/reconnect) before changing its items");
  }
  if (generations_.running_in(id)) {
    return fail(ErrorKind::kConflict, "An answer is still being generated in this conversation");
  }
  return c;
}

Result<std::vector<MessageRecord>> OpenAiConversations::store_items(const auth::Principal& who,
                                                                    const std::string& id,
                                                                    std::vector<MessageRecord> items) {
  const std::int64_t now = clock_.now_ms();
  for (MessageRecord& m : items) {
    m.id = crypto::new_public_id();
    m.conversation_id = id;
    m.status = "complete";
    m.active = true;
    if (m.role == "user") m.sender_id = who.user_id;
    m.created_at = m.updated_at = now;
  }
  auto stored = ConversationStore(db_).append_messages(id, items, now);
  if (!stored && stored.error().kind == ErrorKind::kNotFound) {
    return fail(ErrorKind::kNotFound, "Conversation not found");
  }
  return stored;
}

asio::awaitable<Result<CreatedConversation>> OpenAiConversations::create(
    const auth::Principal& who, std::vector<MessageRecord> items, std::optional<std::string> metadata) {
  co_return co_await pool_.run([&]() -> Result<CreatedConversation> {
    NewConversation input;
    input.metadata = std::move(metadata);
    auto created = conversations_.create(who, who.user_id, input);
    if (!created) return std::unexpected(created.error());
    CreatedConversation out;
    out.conversation = std::move(*created);
    if (!items.empty()) {
      auto stored = store_items(who, out.conversation.id, std::move(items));
      if (!stored) {
        // Nothing half-made stays: the conversation goes with the items that could not be stored.
        (void)ConversationStore(db_).delete_conversation(out.conversation.id);
        return std::unexpected(stored.error());
      }
      out.items = std::move(*stored);
      auto fresh = ConversationStore(db_).get_conversation(out.conversation.id);
      if (fresh && *fresh) out.conversation = std::move(**fresh);
    }
    return out;
  });
}

asio::awaitable<Result<ConversationRecord>> OpenAiConversations::get(const auth::Principal& who,
                                                                     std::string id) {
  co_return co_await pool_.run([&] { return conversations_.find(who, id, auth::Access::kRead); });
}

asio::awaitable<Result<ConversationRecord>> OpenAiConversations::update(const auth::Principal& who,
                                                                        std::string id,
                                                                        std::string metadata) {
  co_return co_await pool_.run([&]() -> Result<ConversationRecord> {
    auto c = conversations_.find(who, id, auth::Access::kWrite);
    if (!c) return c;
    store::ConversationUpdate patch;
    patch.metadata = std::move(metadata);
    return conversations_.update(who, c->user_id, id, std::move(patch));
  });
}

asio::awaitable<Status> OpenAiConversations::remove(const auth::Principal& who, std::string id) {
  auto c = co_await pool_.run([&] { return conversations_.find(who, id, auth::Access::kWrite); });
  if (!c) co_return std::unexpected(c.error());
  // An answer being generated stops first; then nothing of the conversation is left.
  if (auto g = generations_.running_in(id)) {
    g->request_cancel();
    while (!g->finished()) co_await g->wait(g->pieces(), std::chrono::milliseconds(1000));
  }
  const std::string user_id = c->user_id;
  co_return co_await pool_.run([&] { return conversations_.remove(who, user_id, id); });
}

asio::awaitable<Result<ItemPage>> OpenAiConversations::list_items(const auth::Principal& who, std::string id,
                                                                  ItemQuery query) {
  co_return co_await pool_.run([&]() -> Result<ItemPage> {
    auto c = conversations_.find(who, id, auth::Access::kRead);
    if (!c) return std::unexpected(c.error());
    store::MessageQuery q;
    q.conversation_id = id;
    q.limit = std::clamp<std::int64_t>(query.limit, 1, 100);
    std::optional<std::int64_t> from;
    if (query.after) {
      auto after = ConversationStore(db_).get_message(*query.after);
      if (!after) return std::unexpected(after.error());
      if (!*after || (*after)->conversation_id != id) {
        return validation("after", "after must be the id of an item of this conversation");
      }
      from = (*after)->seq;
    }
    if (query.ascending) {
      q.after_seq = from;
    } else {
      q.before_seq = from.value_or(std::numeric_limits<std::int64_t>::max());
    }
    auto page = ConversationStore(db_).list_messages(q);
    if (!page) return std::unexpected(page.error());
    ItemPage out;
    out.items = std::move(page->items);
    out.has_more = page->has_more;
    if (!query.ascending) std::reverse(out.items.begin(), out.items.end());
    return out;
  });
}

asio::awaitable<Result<std::vector<MessageRecord>>> OpenAiConversations::add_items(
    const auth::Principal& who, std::string id, std::vector<MessageRecord> items) {
  co_return co_await pool_.run([&]() -> Result<std::vector<MessageRecord>> {
    auto c = writable(who, id);
    if (!c) return std::unexpected(c.error());
    return store_items(who, id, std::move(items));
  });
}

asio::awaitable<Result<MessageRecord>> OpenAiConversations::get_item(const auth::Principal& who,
                                                                     std::string id, std::string item_id) {
  co_return co_await pool_.run([&]() -> Result<MessageRecord> {
    auto m = conversations_.message(who, id, item_id, auth::Access::kRead);
    if (!m && m.error().kind == ErrorKind::kNotFound && m.error().message == "Message not found") {
      return fail(ErrorKind::kNotFound, "Item not found");
    }
    return m;
  });
}

asio::awaitable<Result<ConversationRecord>> OpenAiConversations::delete_item(const auth::Principal& who,
                                                                             std::string id,
                                                                             std::string item_id) {
  co_return co_await pool_.run([&]() -> Result<ConversationRecord> {
    auto c = writable(who, id);
    if (!c) return c;
    const std::int64_t now = clock_.now_ms();
    auto deleted = ConversationStore(db_).delete_message(id, item_id, now);
    if (!deleted) return std::unexpected(deleted.error());
    if (!*deleted) return fail(ErrorKind::kNotFound, "Item not found");
    return conversations_.find(who, id, auth::Access::kRead);
  });
}

asio::awaitable<Result<bj::array>> OpenAiConversations::history(const auth::Principal& who,
                                                                const std::string& conversation_id) {
  const std::string id = conversation_id;
  co_return co_await pool_.run([&]() -> Result<bj::array> {
    if (id.empty() || id.size() > 128) return validation("conversation", "not a conversation id");
    auto c = conversations_.find(who, id, auth::Access::kRead);
    if (!c) return std::unexpected(c.error());
    // What parley's own model context reads: active messages, complete (or answers stopped with
    // some text), newest first.
    auto recent = ConversationStore(db_).recent_for_context(id, history_max_messages_);
    if (!recent) return std::unexpected(recent.error());
    bj::array out;
    out.reserve(recent->size());
    for (auto it = recent->rbegin(); it != recent->rend(); ++it) out.push_back(message_to_item(*it));
    return out;
  });
}

asio::awaitable<Status> OpenAiConversations::append(const auth::Principal& who,
                                                    const std::string& conversation_id,
                                                    const bj::array& input_items,
                                                    const bj::array& output_items, const std::string& model) {
  std::vector<MessageRecord> items;
  std::optional<std::size_t> question;  // the turn's last user message: what its output answers
  for (std::size_t i = 0; i < input_items.size(); ++i) {
    const bj::value& v = input_items[i];
    if (v.is_object()) {
      const bj::string* type = string_field(v.as_object(), "type");
      if (type != nullptr && *type == "item_reference") continue;  // an item stored already
    }
    auto m = item_to_message(v, fmt::format("input[{}]", i));
    if (!m) co_return std::unexpected(m.error());
    if (m->role == "user" && !m->item) question = items.size();
    items.push_back(std::move(*m));
  }
  const std::size_t first_output = items.size();
  for (std::size_t i = 0; i < output_items.size(); ++i) {
    auto m = item_to_message(output_items[i], fmt::format("output[{}]", i));
    if (!m) co_return std::unexpected(m.error());
    if (m->role == "assistant") m->model = model;
    items.push_back(std::move(*m));
  }
  const std::string id = conversation_id;
  co_return co_await pool_.run([&]() -> Status {
    if (id.empty() || id.size() > 128) return validation("conversation", "not a conversation id");
    auto c = writable(who, id);
    if (!c) return std::unexpected(c.error());
    if (question) {
      // Ids are assigned when stored; the answers name their question once it has one.
      const std::string question_id = crypto::new_public_id();
      items[*question].id = question_id;
    }
    const std::int64_t now = clock_.now_ms();
    for (std::size_t i = 0; i < items.size(); ++i) {
      MessageRecord& m = items[i];
      if (m.id.empty()) m.id = crypto::new_public_id();
      m.conversation_id = id;
      m.status = "complete";
      m.active = true;
      if (m.role == "user") m.sender_id = who.user_id;
      if (question && i >= first_output) m.parent_id = items[*question].id;
      m.created_at = m.updated_at = now;
    }
    auto stored = ConversationStore(db_).append_messages(id, items, now);
    if (!stored) {
      if (stored.error().kind == ErrorKind::kNotFound)
        return fail(ErrorKind::kNotFound, "Conversation not found");
      return std::unexpected(stored.error());
    }
    return {};
  });
}

}  // namespace parley::services
