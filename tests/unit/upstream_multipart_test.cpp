#include <gtest/gtest.h>

#include <string>

#include "upstream/multipart.hpp"

namespace parley::upstream {
namespace {

std::string form(std::string_view boundary) {
  std::string b(boundary);
  return "preamble\r\n--" + b +
         "\r\n"
         "Content-Disposition: form-data; name=\"model\"\r\n\r\n"
         "whisper-1\r\n--" +
         b +
         "\r\n"
         "Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".wav\"\r\n"
         "Content-Type: audio/wav\r\n\r\n"
         "RIFF\r\n--not-the-boundary bytes\r\n--" +
         b + "--\r\nepilogue";
}

TEST(MultipartTest, BoundaryFromContentType) {
  EXPECT_EQ(form_boundary("multipart/form-data; boundary=abc"), "abc");
  EXPECT_EQ(form_boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b;c\""), "a b;c");
  EXPECT_FALSE(form_boundary("application/json"));
  EXPECT_FALSE(form_boundary("multipart/form-data"));
  EXPECT_FALSE(form_boundary("multipart/form-data; boundary="));
  EXPECT_FALSE(form_boundary("multipart/form-data; boundary=" + std::string(71, 'x')));
  EXPECT_FALSE(form_boundary("multipart/form-data; boundary=\"unclosed"));
}

TEST(MultipartTest, PartsAreViewsIntoTheBody) {
  std::string body = form("XyZ");
  auto parts = parse_form(body, "XyZ");
  ASSERT_TRUE(parts) << parts.error().message;
  ASSERT_EQ(parts->size(), 2U);
  EXPECT_EQ((*parts)[0].name, "model");
  EXPECT_EQ((*parts)[0].data, "whisper-1");
  EXPECT_FALSE((*parts)[0].filename);
  const FormPart* file = find_part(*parts, "file");
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->filename, "a \"b\".wav");
  EXPECT_EQ(file->content_type, "audio/wav");
  EXPECT_TRUE(file->data.starts_with("RIFF\r\n--not-the-boundary"));
  EXPECT_GE(file->data.data(), body.data());
  EXPECT_EQ(find_part(*parts, "language"), nullptr);
}

TEST(MultipartTest, BinaryDataWithNulBytes) {
  std::string data("a\0b\r\n\0c", 7);
  std::string body = "--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n" + data + "\r\n--B--";
  auto parts = parse_form(body, "B");
  ASSERT_TRUE(parts);
  ASSERT_EQ(parts->size(), 1U);
  EXPECT_EQ((*parts)[0].data, data);
}

TEST(MultipartTest, MalformedBodiesAreRefused) {
  EXPECT_FALSE(parse_form("", "B"));
  EXPECT_FALSE(parse_form("no delimiter at all", "B"));
  // No closing delimiter.
  EXPECT_FALSE(parse_form("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue", "B"));
  // No name.
  EXPECT_FALSE(parse_form("--B\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B--", "B"));
  // Not form-data.
  EXPECT_FALSE(parse_form("--B\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--B--", "B"));
  // A header without a colon.
  EXPECT_FALSE(parse_form("--B\r\nnonsense\r\n\r\nv\r\n--B--", "B"));
  // Headers that never end.
  EXPECT_FALSE(
      parse_form("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n" + std::string(9000, 'x'), "B"));
  // Garbage after a delimiter.
  EXPECT_FALSE(parse_form("--Bxyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--B--", "B"));
}

TEST(MultipartTest, PartCountIsBounded) {
  std::string body;
  for (int i = 0; i < 5; ++i) body += "--B\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\nv\r\n";
  body += "--B--";
  EXPECT_TRUE(parse_form(body, "B", 5));
  EXPECT_FALSE(parse_form(body, "B", 4));
}

TEST(MultipartTest, EmptyFormIsValid) {
  auto parts = parse_form("--B--\r\n", "B");
  ASSERT_TRUE(parts);
  EXPECT_TRUE(parts->empty());
}

}  // namespace
}  // namespace parley::upstream
