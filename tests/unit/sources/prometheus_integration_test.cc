// The `prometheus` source against Debian's real Prometheus: Prometheus scrapes
// a queue-depth gauge this test serves and changes; the source must read each
// new value through PromQL. Runs under the ctest label `integration`
// (VIRTSCALE_INTEGRATION=1); skipped without the `prometheus` binary.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "collectors/sources/source_manager.h"
#include "tests/unit/support/test_server.h"

extern char** environ;

namespace virtscale {
namespace {

using namespace std::chrono_literals;

// Prometheus cannot report the port it got for :0, so take a free one from the kernel.
int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class PrometheusProcess {
 public:
  PrometheusProcess(const std::string& dir, int port, int target_port) : dir_(dir) {
    std::ofstream(dir + "/prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
           "scrape_configs:\n  - job_name: virtscale_test\n    static_configs:\n"
           "      - targets: ['127.0.0.1:"
        << target_port << "']\n";
    const std::string config = "--config.file=" + dir + "/prometheus.yml";
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port);
    const std::string storage = "--storage.tsdb.path=" + dir + "/data";
    const std::string log = dir + "/prometheus.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<const char*> argv = {"prometheus", config.c_str(), listen.c_str(), storage.c_str(),
                                     nullptr};
    if (posix_spawnp(&pid_, "prometheus", &actions, nullptr, const_cast<char* const*>(argv.data()),
                     environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
  }
  ~PrometheusProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {  // up to ~10s for a clean shutdown
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      usleep(50000);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  std::string Log() const {
    std::ifstream in(dir_ + "/prometheus.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
};

TEST(PrometheusIntegration, PrometheusSourceFollowsAGaugeScrapedByRealPrometheus) {
  if (!std::getenv("VIRTSCALE_INTEGRATION")) {
    GTEST_SKIP() << "integration test: run with ctest -L integration (VIRTSCALE_INTEGRATION=1)";
  }
  if (std::system("command -v prometheus >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "prometheus not installed (scripts/install-deps.sh)";
  }
  std::atomic<int> depth{7};
  testing::TestServer exporter;
  exporter.server().Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        "# HELP test_queue_depth Messages waiting.\n# TYPE test_queue_depth gauge\n"
        "test_queue_depth{queue=\"jobs\"} " +
            std::to_string(depth.load()) + "\ntest_queue_depth{queue=\"mail\"} 1000\n",
        "text/plain; version=0.0.4");
  });

  char tmpl[] = "/tmp/virtscale-prometheus-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const int port = FreeLoopbackPort();
  {
    PrometheusProcess prometheus(dir, port, exporter.port());

    Diagnostics diags("virtscale.yml");
    auto root = LoadYamlString(
        "sources:\n  jobs:\n    type: prometheus\n"
        "    url: http://127.0.0.1:" +
            std::to_string(port) +
            "\n"
            "    query: sum(test_queue_depth{job=\"virtscale_test\", queue=\"jobs\"})\n"
            "    interval: 250ms\n    stale_after: 10s\n",
        diags);
    ASSERT_TRUE(root);
    auto configs = DecodeSources((*root)["sources"], dir, diags);
    ASSERT_TRUE(diags.ok()) << diags.ToString();
    SourceManager sources(configs);
    sources.Start();

    auto reads = [&](double want) {
      return testing::WaitFor(
          [&] {
            auto r = sources.Readings(std::chrono::system_clock::now()).at("jobs");
            return r.value && *r.value == want;
          },
          60s);
    };
    ASSERT_TRUE(reads(7)) << sources.Readings(std::chrono::system_clock::now()).at("jobs").error
                          << "\nprometheus running: " << prometheus.running() << "\n"
                          << prometheus.Log();
    depth = 42;
    ASSERT_TRUE(reads(42)) << sources.Readings(std::chrono::system_clock::now()).at("jobs").error;
    depth = 0;  // zero is a real value, distinct from "missing"
    ASSERT_TRUE(reads(0)) << sources.Readings(std::chrono::system_clock::now()).at("jobs").error;
    sources.Stop();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace virtscale
