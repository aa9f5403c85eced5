#include "common/utf8.h"

#include <gtest/gtest.h>

namespace virtscale {
namespace {

constexpr std::string_view kFffd = "\xef\xbf\xbd";

TEST(Utf8, ValidTextIsUnchanged) {
  for (std::string_view text :
       {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_TRUE(IsValidUtf8(text)) << text;
    EXPECT_EQ(ValidUtf8(text), text);
  }
}

TEST(Utf8, InvalidSequencesAreReplaced) {
  struct Case {
    std::string_view in;
    std::string out;
  };
  const std::string r(kFffd);
  const Case cases[] = {
      {"caf\xe9", "caf" + r},               // Latin-1 byte
      {"\xc0\xaf", r + r},                  // overlong '/'
      {"\xe0\x80\xaf", r + r + r},          // overlong, three bytes
      {"\xed\xa0\x80", r + r + r},          // surrogate
      {"\xf4\x90\x80\x80", r + r + r + r},  // beyond U+10FFFF
      {"\xe2\x82", r},                      // truncated at the end
      {"\xe2\x82x", r + "x"},               // truncated in the middle
      {"\xff\xfe", r + r},                  // never valid
      {"a\x80"
       "b",
       "a" + r + "b"},  // lone continuation
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(IsValidUtf8(c.in));
    const std::string fixed = ValidUtf8(c.in);
    EXPECT_EQ(fixed, c.out);
    EXPECT_TRUE(IsValidUtf8(fixed));
  }
}

TEST(Utf8, BoundedCutsAndRepairs) {
  EXPECT_EQ(BoundedUtf8("short", 10), "short");
  EXPECT_EQ(BoundedUtf8("0123456789abc", 10), "0123456789...");
  // Cut inside the two bytes of U+00E9.
  EXPECT_EQ(BoundedUtf8("abcdefghi\xc3\xa9", 10), "abcdefghi\xef\xbf\xbd...");
}

}  // namespace
}  // namespace virtscale
