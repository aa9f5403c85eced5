#include "collectors/sources/text_format_parser.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "common/utf8.h"

namespace virtscale {
namespace {

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(VIRTSCALE_TESTDATA) + "/sources/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const ExpositionSample* Find(const std::vector<ExpositionSample>& samples, const std::string& name,
                             const std::map<std::string, std::string>& labels) {
  for (const auto& s : samples) {
    if (s.name == name && s.labels == labels) return &s;
  }
  return nullptr;
}

TEST(ParsePrometheusFloat, AcceptsWhatGoParseFloatAccepts) {
  EXPECT_EQ(ParsePrometheusFloat("12"), 12.0);
  EXPECT_EQ(ParsePrometheusFloat("-0.25"), -0.25);
  EXPECT_EQ(ParsePrometheusFloat("+1.5e3"), 1500.0);
  EXPECT_EQ(ParsePrometheusFloat(".5"), 0.5);
  EXPECT_EQ(ParsePrometheusFloat("5."), 5.0);
  EXPECT_EQ(ParsePrometheusFloat("1E-2"), 0.01);
  EXPECT_EQ(ParsePrometheusFloat("+Inf"), HUGE_VAL);
  EXPECT_EQ(ParsePrometheusFloat("-inf"), -HUGE_VAL);
  EXPECT_EQ(ParsePrometheusFloat("Infinity"), HUGE_VAL);
  EXPECT_TRUE(std::isnan(*ParsePrometheusFloat("NaN")));
  EXPECT_TRUE(std::isnan(*ParsePrometheusFloat("nan")));
  EXPECT_EQ(ParsePrometheusFloat("1e-400"), 0.0);  // underflow is not an error in Go
}

TEST(ParsePrometheusFloat, RejectsEverythingElse) {
  for (const char* bad :
       {"",      "+",     "-",    ".",    "e5",    "1e", "1e+", "abc",   "1,5", "0x10",
        "0x1p3", "1_000", "+NaN", "infx", "1.2.3", " 1", "1 ",  "1e400", "--1", "Inf1"}) {
    EXPECT_FALSE(ParsePrometheusFloat(bad)) << bad;
  }
}

TEST(ParseExposition, HandWrittenEdgeCases) {
  auto parsed = ParseExposition(ReadTestdata("edge_cases.txt"));
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  const auto& s = parsed.value();
  EXPECT_EQ(s.size(), 24u);

  const auto* jobs = Find(s, "app_queue_depth", {{"queue", "jobs"}});
  ASSERT_NE(jobs, nullptr);
  EXPECT_EQ(jobs->value, 17);
  EXPECT_EQ(jobs->line, 4);
  EXPECT_FALSE(jobs->timestamp_ms);

  const auto* stamped = Find(s, "app_queue_depth", {{"queue", "mail"}, {"shard", "b"}});
  ASSERT_NE(stamped, nullptr);
  EXPECT_EQ(stamped->timestamp_ms, 1700000000000);

  ASSERT_NE(Find(s, "app_queue_depth", {{"queue", "quote\"d"}}), nullptr);
  EXPECT_EQ(Find(s, "app_queue_depth", {{"queue", "back\\slash"}})->value, 6);
  EXPECT_EQ(Find(s, "app_queue_depth", {{"queue", "new\nline"}})->value, 7);
  EXPECT_EQ(Find(s, "app_queue_depth", {{"queue", "spaced"}, {"shard", "x"}})->value, 8);
  EXPECT_EQ(Find(s, "app_queue_depth", {{"queue", "\xC3\xBCtf-8 \xE2\x9C\x93"}})->value, 9);

  EXPECT_EQ(Find(s, "app_limits", {{"kind", "upper"}})->value, HUGE_VAL);
  EXPECT_EQ(Find(s, "app_limits", {{"kind", "lower"}})->value, -HUGE_VAL);
  EXPECT_TRUE(std::isnan(Find(s, "app_limits", {{"kind", "unknown"}})->value));
  EXPECT_EQ(Find(s, "app_limits", {{"kind", "sci"}})->value, 1500);
  EXPECT_EQ(Find(s, "app_limits", {{"kind", "neg"}})->timestamp_ms, -12);
  EXPECT_EQ(Find(s, "app_untyped_indented", {})->value, 1);
  EXPECT_EQ(Find(s, "app_latency_seconds_bucket", {{"le", "+Inf"}})->value, 3);
  EXPECT_EQ(Find(s, "app_rpc_seconds_count", {})->value, 6);
  EXPECT_EQ(Find(s, "app_jobs_total", {})->value, 42);
}

// Counts sample lines independently of the parser: not blank, not a comment.
size_t CountSampleLines(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first != std::string::npos && line[first] != '#') ++n;
  }
  return n;
}

TEST(ParseExposition, RealExpositionCorpus) {
  // Captured from Debian's prometheus 2.42 and prometheus-libvirt-exporter
  // (test:///default): see tests/testdata/sources/README.md.
  for (const char* name :
       {"prometheus_2.42.txt", "libvirt_exporter_test_driver.txt", "edge_cases.txt"}) {
    const std::string text = ReadTestdata(name);
    auto parsed = ParseExposition(text);
    ASSERT_TRUE(parsed.ok()) << name << ": " << parsed.error().ToString();
    EXPECT_EQ(parsed.value().size(), CountSampleLines(text)) << name;
    EXPECT_GT(parsed.value().size(), 10u) << name;
  }
  auto libvirt = ParseExposition(ReadTestdata("libvirt_exporter_test_driver.txt"));
  auto up = SelectSample(libvirt.value(), "libvirt_up", {}, false);
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up.value(), 1);
  auto vcpus = SelectSample(libvirt.value(), "libvirt_domain_info_virtual_cpus",
                            {{"domain", "test"}}, false);
  ASSERT_TRUE(vcpus.ok()) << vcpus.error().ToString();
  EXPECT_EQ(vcpus.value(), 2);
}

struct BadCase {
  const char* text;
  const char* message;
};

// Each message is what promtool prints after "text format parsing error in ".
const BadCase kBadCases[] = {
    {"foo abc\n", "line 1: expected float as value, got \"abc\""},
    {"foo\n", "line 1: expected float as value, got \"\""},
    {"foo 1 \n", "line 1: expected integer as timestamp, got \"\""},
    {"foo 1 1.5\n", "line 1: expected integer as timestamp, got \"1.5\""},
    {"foo 1 2 x\n", "line 1: spurious string after timestamp: \" x\""},
    {"foo 1", "line 1: unexpected end of input stream"},
    {"ok 1\n# HELP foo x", "line 2: unexpected end of input stream"},
    {"ok 1\n\n9foo 1\n", "line 3: invalid metric name"},
    {"{a=\"b\"} 1\n", "line 1: invalid metric name"},
    {"foo{a=\"b\\x\"} 1\n", "line 1: invalid escape sequence '\\x'"},
    {"foo{a=\"b\n\"} 1\n", "line 1: label value \"b\" contains unescaped new-line"},
    {"foo{a=b} 1\n", "line 1: expected '\"' at start of label value, found 'b'"},
    {"foo{a} 1\n", "line 1: expected '=' after label name, found '}'"},
    {"foo{,} 1\n", "line 1: invalid label name for metric \"foo\""},
    {"foo{a=\"1\",a=\"2\"} 1\n", "line 1: duplicate label names for metric \"foo\""},
    {"foo{__name__=\"x\"} 1\n", "line 1: label name \"__name__\" is reserved"},
    {"foo{a=\"1\" b=\"2\"} 1\n", "line 1: unexpected end of label value \"1\""},
    {"foo{a=\"\xff\"} 1\n", "line 1: invalid label value \"\\xff\""},
    {"# TYPE foo gauge\n# TYPE foo counter\n",
     "line 2: second TYPE line for metric name \"foo\", or TYPE reported after samples"},
    {"foo 1\n# TYPE foo gauge\n",
     "line 2: second TYPE line for metric name \"foo\", or TYPE reported after samples"},
    {"# HELP foo a\n# HELP foo b\n", "line 2: second HELP line for metric name \"foo\""},
    {"# TYPE foo gauges\n", "line 1: unknown metric type \"gauges\""},
    {"# TYPE foo unknown\n", "line 1: unknown metric type \"unknown\""},
    {"# HELP foo bad \\t escape\n", "line 1: invalid escape sequence '\\t'"},
    {"# HELP 9foo x\n", "line 1: invalid metric name in comment"},
    {"# TYPE s summary\ns{quantile=\"high\"} 1\n",
     "line 2: expected float as value for 'quantile' label, got \"high\""},
    {"# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
     "line 2: expected float as value for 'le' label, got \"x\""},
    {"foo 1\r\n", "line 1: expected float as value, got \"1\\r\""},
    {"foo 0x1p3\n", "line 1: expected float as value, got \"0x1p3\""},
};

const char* const kGoodCases[] = {
    "",
    "\n\n  \n",
    "   ",
    "foo 1\n",
    "foo{} 1\n",
    "foo{a=\"b\",} 1\n",
    "foo { a = \"b\" } 1 -5\n",
    "foo +Inf\nbar -Inf\nbaz NaN\n",
    "foo 1 +5\n",
    "# EOF\n",
    "#\n# HELP\n# HELP foo\n# TYPE foo\n",
    "# TYPE foo GAUGE\nfoo 1\n",
    "# HELP foo a \\\\ b \\n c\nfoo 1\n",
    "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n",
    "foo{a=\"\\\\\\\"\\n\"} 1\n",
    "foo 1e-400\n",
};

TEST(ParseExposition, RejectsGarbageWithLineNumbers) {
  for (const auto& c : kBadCases) {
    auto parsed = ParseExposition(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_EQ(parsed.error().reason, "parse");
    EXPECT_EQ(parsed.error().message, c.message) << c.text;
  }
}

TEST(ParseExposition, AcceptsValidCorners) {
  for (const char* text : kGoodCases) {
    auto parsed = ParseExposition(text);
    EXPECT_TRUE(parsed.ok()) << text << " -> " << parsed.error().ToString();
  }
}

// Returns promtool's verdict on `text`: true when it parses (exit 0, or 3 for
// lint findings only), false on a parse error (exit 1).
bool PromtoolAccepts(const std::string& text) {
  char path[] = "/tmp/virtscale-exposition-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  FILE* f = fdopen(fd, "w");
  fwrite(text.data(), 1, text.size(), f);
  fclose(f);
  const std::string cmd = std::string("promtool check metrics < ") + path + " >/dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  std::remove(path);
  EXPECT_TRUE(WIFEXITED(status));
  const int code = WEXITSTATUS(status);
  EXPECT_TRUE(code == 0 || code == 1 || code == 3) << "promtool exit " << code;
  return code != 1;
}

TEST(ParseExposition, AgreesWithPromtool) {
  // promtool comes with scripts/install-deps.sh; its absence is a failure, not a skip.
  ASSERT_EQ(std::system("command -v promtool >/dev/null 2>&1"), 0)
      << "promtool not installed: run scripts/install-deps.sh";
  for (const auto& c : kBadCases) EXPECT_FALSE(PromtoolAccepts(c.text)) << c.text;
  for (const char* text : kGoodCases) EXPECT_TRUE(PromtoolAccepts(text)) << text;
  EXPECT_TRUE(PromtoolAccepts(ReadTestdata("edge_cases.txt")));
}

// A body cut anywhere must never crash the parser, and a cut inside a line must
// be rejected (the value could be a prefix of the real one: "12" of "123").
void CheckEveryTruncation(const std::string& text, size_t limit) {
  const size_t n = std::min(text.size(), limit);
  for (size_t len = 0; len <= n; ++len) {
    const std::string_view prefix(text.data(), len);
    const size_t line_start =
        prefix.rfind('\n') == std::string_view::npos ? 0 : prefix.rfind('\n') + 1;
    const bool partial_line_blank =
        prefix.substr(line_start).find_first_not_of(" \t") == std::string_view::npos;
    auto parsed = ParseExposition(prefix);
    EXPECT_EQ(parsed.ok(), partial_line_blank) << "prefix length " << len;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.error().message.rfind("line ", 0), 0u);
    }
  }
}

TEST(ParseExpositionFuzz, EveryTruncationOfRealInputs) {
  CheckEveryTruncation(ReadTestdata("edge_cases.txt"), SIZE_MAX);
  CheckEveryTruncation(ReadTestdata("libvirt_exporter_test_driver.txt"), 6000);
  CheckEveryTruncation(ReadTestdata("prometheus_2.42.txt"), 6000);
}

TEST(ParseExpositionFuzz, RandomBytesAndMutationsNeverCrash) {
  std::mt19937 rng(20240611);
  const std::string alphabet = "ab_:{}=\",\\n# \t\n0123456789.+-eEInfNa\xff\xc3";
  size_t accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string input(rng() % 120, '\0');
    for (auto& c : input) {
      c = (i % 2) ? static_cast<char>(rng() & 0xff) : alphabet[rng() % alphabet.size()];
    }
    auto parsed = ParseExposition(input);
    if (parsed.ok()) {
      ++accepted;
    } else {
      EXPECT_EQ(parsed.error().message.rfind("line ", 0), 0u);
      EXPECT_TRUE(IsValidUtf8(parsed.error().message)) << parsed.error().message;
    }
  }
  EXPECT_LT(accepted, 5000u);  // garbage is mostly rejected
  const std::string base = ReadTestdata("edge_cases.txt");
  for (int i = 0; i < 3000; ++i) {
    std::string mutated = base;
    for (int k = 0; k < 3; ++k) mutated[rng() % mutated.size()] = alphabet[rng() % alphabet.size()];
    auto parsed = ParseExposition(mutated);
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.error().message.rfind("line ", 0), 0u);
    }
  }
}

// Messages quote what the body held: as valid UTF-8 (they reach decisions and
// JSON) and bounded (a 16 MiB token must not become a 16 MiB reason).
TEST(ParseExposition, MessagesAreValidUtf8AndBounded) {
  const std::string huge(1 << 20, 'x');
  const std::pair<std::string, std::string> cases[] = {
      {"foo \xff\xfe\n", "line 1: expected float as value, got \"\\xff\\xfe\""},
      {"# TYPE foo caf\xe9\n", "line 1: unknown metric type \"caf\\xe9\""},
      {"foo{a=\"ok \xc3\xbc \xe2\x9c\"} 1\n",
       "line 1: invalid label value \"ok \xc3\xbc \\xe2\\x9c\""},  // ü kept, the cut ✓ escaped
      {"foo 1 2 \x01\x7f\n", "line 1: spurious string after timestamp: \" \\x01\\x7f\""},
      {"foo{a=\"\\\xff\"} 1\n", "line 1: invalid escape sequence '\\\\xff'"},
      {"# HELP foo \\\xc3\xa9\n", "line 1: invalid escape sequence '\\\\xc3'"},
      {"foo " + huge + "\n",
       "line 1: expected float as value, got \"" + std::string(120, 'x') + "\"... (1048576 bytes)"},
  };
  for (const auto& [text, message] : cases) {
    auto parsed = ParseExposition(text);
    ASSERT_FALSE(parsed.ok()) << text.substr(0, 40);
    EXPECT_EQ(parsed.error().message, message);
    EXPECT_TRUE(IsValidUtf8(parsed.error().message));
  }
}

TEST(QuoteForMessage, EscapesLikeGoAndCutsLongText) {
  EXPECT_EQ(QuoteForMessage("a\"b\\c\n\t"), "\"a\\\"b\\\\c\\n\\t\"");
  EXPECT_EQ(QuoteForMessage("\xf0\x9f\x98\x80 \xf0\x9f\x98"),
            "\"\xf0\x9f\x98\x80 \\xf0\\x9f\\x98\"");
  EXPECT_EQ(QuoteForMessage("\xc0\xaf"), "\"\\xc0\\xaf\"");  // overlong '/'
  EXPECT_EQ(QuoteForMessage(std::string(121, 'y')),
            "\"" + std::string(120, 'y') + "\"... (121 bytes)");
}

// A hostile endpoint cannot make the parser keep more than the limits: each is
// accepted up to its value and refused one above, with the line that crossed it.
TEST(ParseExposition, LimitsWhatOneBodyMayHold) {
  std::string samples;
  for (size_t i = 0; i < kMaxExpositionSamples; ++i) samples += "m " + std::to_string(i) + "\n";
  auto at_limit = ParseExposition(samples);
  ASSERT_TRUE(at_limit.ok()) << at_limit.error().ToString();
  EXPECT_EQ(at_limit.value().size(), kMaxExpositionSamples);
  auto over = ParseExposition(samples + "m 1\n");
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().ToString(),
            "parse: line 100001: more than 100000 samples: too large for a scrape source, "
            "which reads one series");

  // 5 labels a sample: the label limit is reached at sample 50001.
  std::string labelled;
  for (size_t i = 0; i <= kMaxExpositionLabels / 5; ++i)
    labelled += "m{a=\"" + std::to_string(i) + "\",b=\"\",c=\"\",d=\"\",e=\"\"} 1\n";
  auto labels = ParseExposition(labelled);
  ASSERT_FALSE(labels.ok());
  EXPECT_EQ(labels.error().message,
            "line 50001: more than 250000 labels: too large for a scrape source, which reads one "
            "series");

  // Families need no samples: TYPE lines alone count.
  std::string families;
  for (size_t i = 0; i <= kMaxExpositionFamilies; ++i)
    families += "# TYPE m" + std::to_string(i) + " gauge\n";
  auto typed = ParseExposition(families);
  ASSERT_FALSE(typed.ok());
  EXPECT_EQ(typed.error().message,
            "line 100001: more than 100000 metric families: too large for a scrape source, which "
            "reads one series");
  // Samples of one family do not count as families.
  std::string histogram = "# TYPE h histogram\n";
  for (int i = 0; i < 1000; ++i) histogram += "h_bucket{le=\"" + std::to_string(i) + "\"} 1\n";
  EXPECT_TRUE(ParseExposition(histogram + "h_sum 1\nh_count 1\n").ok());
}

std::vector<ExpositionSample> Samples(const std::string& text) {
  auto parsed = ParseExposition(text);
  EXPECT_TRUE(parsed.ok()) << parsed.error().ToString();
  return parsed.ok() ? parsed.value() : std::vector<ExpositionSample>{};
}

TEST(SelectSample, MessagesAboutHugeSeriesAreBounded) {
  std::string labels;
  for (int i = 0; i < 200; ++i) labels += "label_" + std::to_string(i) + "=\"v\",";
  const std::string long_name(5000, 'n');
  auto s = Samples("q{" + labels + "} 1\nq{" + labels + "x=\"\"} 2\n" + long_name + "{" +
                   long_name + "=\"1\"} 3\n");
  auto several = SelectSample(s, "q", {}, false);
  ASSERT_FALSE(several.ok());
  EXPECT_LT(several.error().message.size(), 1200u);
  EXPECT_NE(several.error().message.find(",...}"), std::string::npos);
  EXPECT_EQ(FormatSeries(long_name, {{long_name, "1"}}),
            std::string(120, 'n') + "...{" + std::string(120, 'n') + "...=\"1\"}");
}

TEST(SelectSample, OneSeriesByNameAndLabels) {
  auto s = Samples("q{queue=\"jobs\"} 12\nq{queue=\"mail\"} 3\nq_other 9\n");
  auto r = SelectSample(s, "q", {{"queue", "jobs"}}, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), 12);
}

TEST(SelectSample, EmptyMatcherMatchesAbsentLabel) {
  auto s = Samples("q 1\nq{shard=\"a\"} 2\n");
  auto r = SelectSample(s, "q", {{"shard", ""}}, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), 1);
}

TEST(SelectSample, NoMatchIsAnErrorNeverZero) {
  auto s = Samples("q{queue=\"mail\"} 3\nq{queue=\"x\"} 4\n");
  auto r = SelectSample(s, "q", {{"queue", "jobs"}}, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().ToString(),
            "no_series: no series matches q{queue=\"jobs\"} (2 series named q, e.g. "
            "q{queue=\"mail\"})");
  EXPECT_EQ(SelectSample(s, "absent", {}, false).error().ToString(),
            "no_series: no series matches absent");
}

TEST(SelectSample, SeveralSeriesNeedSum) {
  auto s = Samples("q{queue=\"jobs\",shard=\"a\"} 3\nq{queue=\"jobs\",shard=\"b\"} 4\n");
  auto r = SelectSample(s, "q", {{"queue", "jobs"}}, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(
      r.error().ToString(),
      "multiple_series: 2 series match q{queue=\"jobs\"} (e.g. q{queue=\"jobs\",shard=\"a\"}, "
      "q{queue=\"jobs\",shard=\"b\"}); add label matchers or set sum: true");
  auto summed = SelectSample(s, "q", {{"queue", "jobs"}}, true);
  ASSERT_TRUE(summed.ok());
  EXPECT_EQ(summed.value(), 7);
}

TEST(SelectSample, NanAndInfAreErrors) {
  auto s = Samples("q{k=\"n\"} NaN\nq{k=\"i\"} +Inf\nq{k=\"m\"} -Inf\n");
  EXPECT_EQ(SelectSample(s, "q", {{"k", "n"}}, false).error().ToString(), "nan: q{k=\"n\"} is NaN");
  EXPECT_EQ(SelectSample(s, "q", {{"k", "i"}}, false).error().ToString(),
            "inf: q{k=\"i\"} is +Inf");
  EXPECT_EQ(SelectSample(s, "q", {{"k", "m"}}, false).error().ToString(),
            "inf: q{k=\"m\"} is -Inf");
  EXPECT_EQ(SelectSample(s, "q", {}, true).error().reason, "nan");
}

}  // namespace
}  // namespace virtscale
