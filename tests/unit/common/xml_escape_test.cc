#include "common/xml_escape.h"

#include <gtest/gtest.h>

namespace virtscale {
namespace {

TEST(XmlEscape, EscapesMarkupAndQuotes) {
  EXPECT_EQ(XmlEscape("<a href=\"x\">Tom & 'Jerry'</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
  EXPECT_EQ(XmlEscape("plain web-1"), "plain web-1");
  EXPECT_EQ(XmlEscape(""), "");
}

}  // namespace
}  // namespace virtscale
