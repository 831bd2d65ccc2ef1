#include "provider/demo_audio.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace parley::provider {

namespace {

constexpr std::uint32_t kRate = 8000;

void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>(v >> 8));
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::uint32_t get_u32(std::string_view s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
  return v;
}

// Calls on(id, body) for each chunk of a RIFF/WAVE file; false when the bytes are not one.
template <class F>
bool each_chunk(std::string_view bytes, F&& on) {
  if (bytes.size() < 12 || bytes.substr(0, 4) != "RIFF" || bytes.substr(8, 4) != "WAVE") return false;
  std::size_t pos = 12;
  while (pos + 8 <= bytes.size()) {
    std::string_view id = bytes.substr(pos, 4);
    std::uint32_t size = get_u32(bytes, pos + 4);
    if (size > bytes.size() - pos - 8) return true;
    if (!on(id, bytes.substr(pos + 8, size))) return true;
    pos += 8 + size + (size & 1);
  }
  return true;
}

}  // namespace

std::string demo_wav(std::string_view text) {
  // 0.25 s plus 20 ms per character, at most one second: a tone at 440 Hz fading out.
  const std::size_t samples =
      std::min<std::size_t>(kRate, kRate / 4 + text.size() * static_cast<std::size_t>(kRate / 50));
  std::string comment(text.substr(0, 4096));
  comment.push_back('\0');
  if (comment.size() % 2 != 0) comment.push_back('\0');
  const auto info_size = static_cast<std::uint32_t>(4 + 8 + comment.size());
  const auto data_size = static_cast<std::uint32_t>(samples * 2);
  std::string out;
  out.reserve(44 + 8 + info_size + data_size);
  out += "RIFF";
  put_u32(out, 4 + (8 + 16) + (8 + info_size) + (8 + data_size));
  out += "WAVE";
  out += "fmt ";
  put_u32(out, 16);
  put_u16(out, 1);  // PCM
  put_u16(out, 1);  // mono
  put_u32(out, kRate);
  put_u32(out, kRate * 2);
  put_u16(out, 2);
  put_u16(out, 16);
  out += "LIST";
  put_u32(out, info_size);
  out += "INFO";
  out += "ICMT";
  put_u32(out, static_cast<std::uint32_t>(comment.size()));
  out += comment;
  out += "data";
  put_u32(out, data_size);
  for (std::size_t i = 0; i < samples; ++i) {
    const double t = static_cast<double>(i) / kRate;
    const double fade = 1.0 - static_cast<double>(i) / static_cast<double>(samples);
    const double v = 8000.0 * fade * std::sin(2.0 * std::numbers::pi * 440.0 * t);
    put_u16(out, static_cast<std::uint16_t>(static_cast<std::int16_t>(std::lround(v))));
  }
  return out;
}

std::optional<std::string> wav_comment(std::string_view bytes) {
  std::optional<std::string> found;
  each_chunk(bytes, [&](std::string_view id, std::string_view body) {
    if (id != "LIST" || body.size() < 4 || body.substr(0, 4) != "INFO") return true;
    std::size_t pos = 4;
    while (pos + 8 <= body.size()) {
      std::string_view sub = body.substr(pos, 4);
      std::uint32_t size = get_u32(body, pos + 4);
      if (size > body.size() - pos - 8) break;
      if (sub == "ICMT") {
        std::string_view text = body.substr(pos + 8, size);
        found = std::string(text.substr(0, text.find('\0')));
        return false;
      }
      pos += 8 + size + (size & 1);
    }
    return true;
  });
  return found;
}

double wav_seconds(std::string_view bytes) {
  std::uint32_t byte_rate = 0;
  std::uint32_t data = 0;
  each_chunk(bytes, [&](std::string_view id, std::string_view body) {
    if (id == "fmt " && body.size() >= 16) byte_rate = get_u32(body, 8);
    if (id == "data") data = static_cast<std::uint32_t>(body.size());
    return true;
  });
  return byte_rate == 0 ? 0.0 : static_cast<double>(data) / byte_rate;
}

}  // namespace parley::provider
