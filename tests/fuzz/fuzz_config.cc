// Fuzzes config and rule decoding: ParseAgentConfig on the input as virtscale.yml,
// and the same text as a rule file (through rule_files) and as a web config.
// Contract: never crashes, never throws; problems come back as diagnostics.
//
// The decoder reads the files a config names (rule files, templates, source
// credentials). The fuzzer works in a scratch directory holding a few fixtures,
// and skips inputs that could reach outside it (absolute or ".." paths, escapes):
// reading /dev/zero or a FIFO would only hang the fuzzer, not find a bug.
#include <unistd.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "agent/config.h"
#include "agent/web_config.h"

namespace {

std::filesystem::path g_dir;

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::trunc) << text;
}

// True unless every '/' continues a relative path ("rules/a.yml", "./t.xml") or
// a URL ("http://host/"), which the decoder never opens.
bool MayReachOutside(std::string_view text) {
  for (std::string_view bad : {"..", "\\", "%", "~"})
    if (text.find(bad) != std::string_view::npos) return true;
  for (size_t i = text.find('/'); i != std::string_view::npos; i = text.find('/', i + 1)) {
    const unsigned char before = i == 0 ? ' ' : static_cast<unsigned char>(text[i - 1]);
    const unsigned char two_before = i < 2 ? ' ' : static_cast<unsigned char>(text[i - 2]);
    if (std::isalnum(before) || before == '_' || before == '.' || before == '*') continue;
    if (before == ':' && std::isalnum(two_before)) continue;  // URL scheme: "http:/"
    if (before == '/' && two_before == ':') continue;         // "http://"
    return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = std::filesystem::temp_directory_path() / ("virtscale-fuzz-" + std::to_string(getpid()));
  WriteFile(g_dir / "templates/t.xml",
            "<domain type='test'><name>t</name><memory>1024</memory>"
            "<os><type>hvm</type></os></domain>\n");
  WriteFile(g_dir / "rules/r.yml",
            "groups:\n  - name: g\n    template: ../templates/t.xml\n    max: 2\n"
            "    scale_up:\n      when:\n        - {metric: cpu, above: 0.5, for: 1s}\n");
  WriteFile(g_dir / "queue", "12\n");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (MayReachOutside(text)) return 0;
  {
    virtscale::Diagnostics diags;
    (void)virtscale::ParseAgentConfig(text, (g_dir / "virtscale.yml").string(), diags);
  }
  // The same text as a rule file and as a web config file.
  WriteFile(g_dir / "fuzz/input.yml", text);
  {
    virtscale::Diagnostics diags;
    (void)virtscale::ParseAgentConfig("rule_files: [\"fuzz/input.yml\"]\n",
                                      (g_dir / "virtscale.yml").string(), diags);
  }
  {
    virtscale::Diagnostics diags;
    (void)virtscale::LoadWebConfig((g_dir / "fuzz/input.yml").string(), diags);
  }
  return 0;
}
