// LeaderElection against a real etcd (Debian's etcd-server, 3.4), one per
// test on free loopback ports. Skipped when etcd is not installed (and so,
// under CI=true, failed: CI installs it).
#include "autoscale/leader_election.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/http_client.h"
#include "common/http_url.h"
#include "common/utf8.h"
#include "tests/unit/support/test_server.h"

extern char** environ;

namespace virtscale::autoscale {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Steady = std::chrono::steady_clock;

constexpr const char* kEtcd = "/usr/bin/etcd";
constexpr Duration kTtl = 2s;

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int port = testing::BindLoopback(fd);
  close(fd);
  return port;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A process the test spawns, its stdout and stderr in `log`, killed at the end.
class ChildProcess {
 public:
  ~ChildProcess() { Kill(); }
  // Spawns `path` with `args` (argv[0] included) and `env`; false on failure.
  bool Spawn(const std::string& path, std::vector<std::string> args, std::vector<std::string> env,
             const std::string& log, int log_flags) {
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | log_flags,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) pid_ = -1;
    return rc == 0;
  }
  bool running() const { return pid_ > 0; }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void Pause() { kill(pid_, SIGSTOP); }
  void Resume() { kill(pid_, SIGCONT); }

 private:
  pid_t pid_ = -1;
};

std::vector<std::string> Environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  return env;
}

// One etcd member; Kill and Restart keep its data directory and ports.
class EtcdProcess : public ChildProcess {
 public:
  explicit EtcdProcess(std::string dir)
      : dir_(std::move(dir)), client_port_(FreeLoopbackPort()), peer_port_(FreeLoopbackPort()) {}

  // Spawns etcd and waits until /health says so; false (see Log()) otherwise.
  bool Start() {
    const std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    const std::string data = dir_ + "/data";
    const std::string cluster = "default=" + peer;
    std::vector<std::string> args = {kEtcd,   "--data-dir",
                                     data,    "--listen-client-urls",
                                     client,  "--advertise-client-urls",
                                     client,  "--listen-peer-urls",
                                     peer,    "--initial-advertise-peer-urls",
                                     peer,    "--initial-cluster",
                                     cluster, "--log-level",
                                     "warn",  "--logger",
                                     "zap"};
    if (!Spawn(kEtcd, std::move(args), Environment(), dir_ + "/etcd.log", O_APPEND)) return false;
    return testing::WaitFor([&] { return Healthy(); }, 15s);
  }

  bool Healthy() const {
    std::string why;
    auto url = ParseHttpUrl(Url() + "/health", why);
    HttpRequestOptions options;
    options.timeout = 500ms;
    HttpResult r = HttpGet(*url, {}, options);
    return r.ok() && r.value().status == 200 &&
           r.value().body.find("\"true\"") != std::string::npos;
  }

  // One gateway call from the test's side; null JSON on any failure.
  json Post(const std::string& path, const json& body) const {
    std::string why;
    auto url = ParseHttpUrl(Url() + path, why);
    HttpRequestOptions options;
    options.timeout = 2s;
    HttpResult r = HttpPost(*url, {}, body.dump(), "application/json", options);
    if (!r.ok()) return nullptr;
    return json::parse(r.value().body, nullptr, false);
  }

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  std::string Log() const { return Slurp(dir_ + "/etcd.log"); }

 private:
  std::string dir_;
  int client_port_;
  int peer_port_;
};

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now().time_since_epoch())
      .count();
}

// This test binary, re-run with kChildEnv = "<endpoint> <file>", is a
// candidate "c" in its own process, so that a test can kill -9 or SIGSTOP a
// real leader. It acts the way the engine must: every 20ms, if IsLeader() and
// ConfirmLeadership(), it appends "act <steady ns>" to the file (the steady
// clock is CLOCK_MONOTONIC, one for all processes).
constexpr const char* kChildEnv = "VIRTSCALE_LEADER_ELECTION_CHILD";

[[noreturn]] void RunChildCandidate(const std::string& spec) {
  const size_t space = spec.find(' ');
  LeaderElectionConfig config;
  config.endpoints = {spec.substr(0, space)};
  config.key = "/virtscale/test/leader";
  config.lease_ttl = kTtl;
  const int fd = open(spec.substr(space + 1).c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  LeaderElection election(config, "c");
  election.Start();
  for (;;) {
    if (election.IsLeader() && election.ConfirmLeadership()) {
      const std::string line = "act " + std::to_string(SteadyNanos()) + "\n";
      if (write(fd, line.data(), line.size()) < 0) _exit(3);
    }
    std::this_thread::sleep_for(20ms);
  }
}

[[maybe_unused]] const bool kIsChild = [] {
  if (const char* spec = std::getenv(kChildEnv)) RunChildCandidate(spec);
  return false;
}();

class ChildCandidate : public ChildProcess {
 public:
  ChildCandidate(const std::string& endpoint, const std::string& dir)
      : acts_(dir + "/acts"), log_(dir + "/child.log") {
    std::vector<std::string> env = Environment();
    env.push_back(std::string(kChildEnv) + "=" + endpoint + " " + acts_);
    const std::string self = std::filesystem::read_symlink("/proc/self/exe");
    Spawn(self, {self}, std::move(env), log_, O_TRUNC);
  }
  // The steady-clock times of its actions so far.
  std::vector<int64_t> Acts() const {
    std::vector<int64_t> out;
    std::ifstream in(acts_);
    std::string word;
    int64_t t = 0;
    while (in >> word >> t) out.push_back(t);
    return out;
  }
  std::string Log() const { return Slurp(log_); }

 private:
  std::string acts_;
  std::string log_;
};

bool WaitFor(const std::function<bool()>& done, Duration limit) {
  return testing::WaitFor(done, limit);
}

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kEtcd, X_OK) != 0)
      GTEST_SKIP() << "etcd not installed (apt-get install etcd-server)";
    // tmpfs when there is one: etcd fsyncs every write, and a busy disk
    // would stretch a renewal past a 2s lease.
    std::string tmpl = access("/dev/shm", W_OK) == 0 ? "/dev/shm/virtscale-etcd-XXXXXX"
                                                     : "/tmp/virtscale-etcd-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    etcd_ = std::make_unique<EtcdProcess>(dir_);
    ASSERT_TRUE(etcd_->Start()) << etcd_->Log();
  }
  void TearDown() override {
    etcd_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Lets `a` lead, applies `fault` to etcd, and checks that the leadership
  // ends within the TTL (the lease was last confirmed before the fault, so it
  // cannot be trusted longer), that it is not confirmed, and that the role
  // turns unknown.
  void ExpectStepDownAfter(LeaderElection& a, const std::function<void()>& fault) {
    a.Start();
    ASSERT_TRUE(WaitFor([&] { return a.IsLeader(); }, 5s));
    const auto t0 = Steady::now();
    fault();
    ASSERT_TRUE(WaitFor([&] { return !a.IsLeader(); }, kTtl + 500ms));
    EXPECT_LE(Steady::now() - t0, kTtl);
    EXPECT_FALSE(a.ConfirmLeadership());
    ASSERT_TRUE(WaitFor([&] { return a.status().role == LeaderRole::kUnknown; }, kTtl));
  }

  // Lets the child `c` lead and act while `b` follows, applies `fault` to c,
  // and checks that b leads within two TTLs.
  void ExpectTakeoverAfter(ChildCandidate& c, LeaderElection& b,
                           const std::function<void()>& fault) {
    ASSERT_TRUE(c.running());
    ASSERT_TRUE(WaitFor([&] { return KeyValue() == "c" && !c.Acts().empty(); }, 5s)) << c.Log();
    b.Start();
    ASSERT_TRUE(WaitFor([&] { return b.status().leader_identity == "c"; }, 3s));
    EXPECT_FALSE(b.IsLeader());
    const auto t0 = Steady::now();
    fault();
    ASSERT_TRUE(WaitFor([&] { return b.IsLeader(); }, 2 * kTtl)) << b.status().last_error;
    EXPECT_LT(Steady::now() - t0, 2 * kTtl);
  }

  LeaderElectionConfig Config() const {
    LeaderElectionConfig config;
    config.endpoints = {etcd_->Url()};
    config.key = "/virtscale/test/leader";
    config.lease_ttl = kTtl;
    return config;
  }

  // The identity the key holds, "" when absent.
  std::string KeyValue() const {
    json r = etcd_->Post("/v3/kv/range", {{"key", "L3ZpcnRzY2FsZS90ZXN0L2xlYWRlcg=="}});
    if (!r.is_object() || !r.contains("kvs")) return "";
    // The test's identities: "a", "b" and "c" (ChildCandidate).
    const std::string v = r["kvs"][0].value("value", "");
    return v == "YQ==" ? "a" : v == "Yg==" ? "b" : v == "Yw==" ? "c" : "?" + v;
  }

  std::string dir_;
  std::unique_ptr<EtcdProcess> etcd_;
};

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<uint8_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) n |= static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

// Whoever can write the key can put anything there: the identity it shows
// must stay bounded, valid UTF-8 in JSON and on /metrics.
TEST_F(LeaderElectionTest, AHostileKeyValueIsShownBoundedAndValid) {
  const std::string garbage = "\xff\xfe\xc3" + std::string(100000, 'x');
  json put = etcd_->Post("/v3/kv/put",
                         {{"key", Base64("/virtscale/test/leader")}, {"value", Base64(garbage)}});
  ASSERT_TRUE(put.is_object() && !put.contains("error")) << put.dump();
  LeaderElection a(Config(), "a");
  a.Start();
  ASSERT_TRUE(WaitFor([&] { return !a.status().leader_identity.empty(); }, 5s));
  EXPECT_FALSE(a.IsLeader());
  const LeaderElection::Status s = a.status();
  EXPECT_EQ(s.role, LeaderRole::kFollower);
  // 256 bytes kept, each invalid one replaced by the 3 bytes of U+FFFD, and "...".
  EXPECT_LE(s.leader_identity.size(), 3 * 256u + 3);
  EXPECT_TRUE(IsValidUtf8(s.leader_identity));
  EXPECT_TRUE(IsValidUtf8(a.WhyNotLeader()));
  EXPECT_NO_THROW((void)json({{"leader", s.leader_identity}}).dump());
  bool labelled = false;
  for (const auto& family : a.Collect()) {
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) {
        EXPECT_TRUE(IsValidUtf8(label.value)) << family.name;
        labelled |= label.name == "leader" && label.value.starts_with("\xef\xbf\xbd");
      }
    }
  }
  EXPECT_TRUE(labelled);  // the replacement character stands for the invalid bytes
}

TEST_F(LeaderElectionTest, OneCandidateLeadsAndConfirms) {
  LeaderElection a(Config(), "a");
  EXPECT_FALSE(a.IsLeader());
  EXPECT_FALSE(a.ConfirmLeadership());
  a.Start();
  ASSERT_TRUE(WaitFor([&] { return a.IsLeader(); }, 5s)) << a.status().last_error;
  EXPECT_TRUE(a.ConfirmLeadership());
  const LeaderElection::Status s = a.status();
  EXPECT_EQ(s.role, LeaderRole::kLeader);
  EXPECT_STREQ(LeaderRoleName(s.role), "leader");
  EXPECT_EQ(s.leader_identity, "a");
  EXPECT_NE(s.lease_id, 0);
  EXPECT_EQ(s.transitions, 1);
  EXPECT_EQ(s.last_error, "");
  EXPECT_EQ(KeyValue(), "a");

  // Renewals keep it leading past the TTL.
  std::this_thread::sleep_for(kTtl + 500ms);
  EXPECT_TRUE(a.IsLeader());
  EXPECT_TRUE(a.ConfirmLeadership());
  EXPECT_EQ(a.status().transitions, 1);

  // Stop revokes the lease: etcd drops the key at once.
  const auto t0 = Steady::now();
  a.Stop();
  EXPECT_LT(Steady::now() - t0, 1s);
  EXPECT_FALSE(a.IsLeader());
  EXPECT_FALSE(a.ConfirmLeadership());
  EXPECT_EQ(KeyValue(), "");
  a.Stop();  // idempotent
}

TEST_F(LeaderElectionTest, TwoCandidatesOneLeadsAndStopHandsOver) {
  LeaderElection a(Config(), "a");
  LeaderElection b(Config(), "b");
  a.Start();
  b.Start();
  ASSERT_TRUE(WaitFor([&] { return a.IsLeader() || b.IsLeader(); }, 5s));
  LeaderElection& leader = a.IsLeader() ? a : b;
  LeaderElection& follower = a.IsLeader() ? b : a;
  ASSERT_TRUE(WaitFor([&] { return follower.status().leader_identity == leader.identity(); }, 3s));
  EXPECT_EQ(follower.status().role, LeaderRole::kFollower);
  EXPECT_FALSE(follower.ConfirmLeadership());
  // Across more than a TTL of renewals and retries, never both, never none.
  const auto hold = Steady::now() + kTtl + 300ms;
  while (Steady::now() < hold) {
    ASSERT_TRUE(leader.IsLeader());
    ASSERT_FALSE(follower.IsLeader());
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(KeyValue(), leader.identity());

  const auto t0 = Steady::now();
  leader.Stop();
  ASSERT_TRUE(WaitFor([&] { return follower.IsLeader(); }, 2 * kTtl))
      << follower.status().last_error;
  // The revoke frees the key: the next retry, a third of a TTL later, takes it.
  EXPECT_LT(Steady::now() - t0, kTtl);
  EXPECT_TRUE(follower.ConfirmLeadership());
  EXPECT_EQ(follower.status().leader_identity, follower.identity());
  EXPECT_EQ(KeyValue(), follower.identity());
}

TEST_F(LeaderElectionTest, RevokedLeaseEndsLeadershipAtTheNextConfirmation) {
  LeaderElection a(Config(), "a");
  LeaderElection b(Config(), "b");
  a.Start();
  ASSERT_TRUE(WaitFor([&] { return a.IsLeader(); }, 5s));
  b.Start();
  ASSERT_TRUE(WaitFor([&] { return b.status().leader_identity == "a"; }, 3s));

  // An operator (or a partition healing late) revokes the leader's lease.
  const int64_t lease = a.status().lease_id;
  json r = etcd_->Post("/v3/lease/revoke", {{"ID", std::to_string(lease)}});
  ASSERT_TRUE(r.is_object() && !r.contains("error")) << r.dump();
  const bool confirmed = a.ConfirmLeadership();
  const bool leading = a.IsLeader();
  const int64_t lease_now = a.status().lease_id;
  if (lease_now == lease) {
    EXPECT_FALSE(confirmed);
    EXPECT_FALSE(leading);  // the failed confirmation ended it, without waiting for a round
  } else {
    // Its own round noticed first and may even have won again, on a new lease.
    EXPECT_TRUE(!confirmed || lease_now != 0);
  }
  EXPECT_GE(a.status().transitions, 2);

  // Someone leads again within two TTLs, and only one of them.
  ASSERT_TRUE(WaitFor([&] { return a.IsLeader() || b.IsLeader(); }, 2 * kTtl));
  EXPECT_NE(a.IsLeader(), b.IsLeader());
  LeaderElection& leader = a.IsLeader() ? a : b;
  EXPECT_NE(leader.status().lease_id, lease);
  EXPECT_TRUE(leader.ConfirmLeadership());
}

TEST_F(LeaderElectionTest, LeaderStepsDownWhenEtcdDiesAndLeadsAgainAfterRestart) {
  LeaderElection a(Config(), "a");
  ExpectStepDownAfter(a, [&] { etcd_->Kill(); });
  EXPECT_NE(a.status().last_error, "");
  EXPECT_EQ(a.status().leader_identity, "");

  ASSERT_TRUE(etcd_->Start()) << etcd_->Log();
  ASSERT_TRUE(WaitFor([&] { return a.IsLeader(); }, 3 * kTtl)) << a.status().last_error;
  EXPECT_TRUE(a.ConfirmLeadership());
  EXPECT_EQ(a.status().last_error, "");
}

TEST_F(LeaderElectionTest, FrozenEtcdEndsLeadershipAndStopStaysPrompt) {
  LeaderElection a(Config(), "a");
  // Requests now hang instead of failing: only the deadlines end them.
  ExpectStepDownAfter(a, [&] { etcd_->Pause(); });

  const auto s0 = Steady::now();
  a.Stop();  // cancels the hanging request; the revoke is bounded too
  EXPECT_LT(Steady::now() - s0, 1500ms);
  etcd_->Resume();
}

// A FakeClock jump is what a SIGSTOP longer than the TTL looks like from the
// inside: the monotonic clock moved and no renewal happened meanwhile.
TEST_F(LeaderElectionTest, PausedLeaderStopsLeadingBeforeAnyRequestAndMustRenew) {
  FakeClock clock(Instant{Steady::now(), std::chrono::system_clock::now()});
  LeaderElection a(Config(), "a", clock);
  a.Start();
  ASSERT_TRUE(WaitFor([&] { return a.IsLeader(); }, 5s));
  ASSERT_TRUE(a.ConfirmLeadership());

  // etcd frozen as well, so nothing but the local deadline can decide.
  etcd_->Pause();
  clock.Advance(kTtl);
  EXPECT_FALSE(a.IsLeader());
  const auto c0 = Steady::now();
  EXPECT_FALSE(a.ConfirmLeadership());
  EXPECT_LT(Steady::now() - c0, 100ms);
  EXPECT_NE(a.status().role, LeaderRole::kLeader);
  // While no renewal succeeds it stays that way.
  std::this_thread::sleep_for(kTtl / 2);
  EXPECT_FALSE(a.IsLeader());

  // etcd's own lease is still alive: a renewal and the transaction give it back.
  etcd_->Resume();
  ASSERT_TRUE(WaitFor([&] { return a.IsLeader(); }, 2 * kTtl)) << a.status().last_error;
  EXPECT_TRUE(a.ConfirmLeadership());
  EXPECT_EQ(a.status().transitions, 3);  // led, stopped, leads again
}

TEST_F(LeaderElectionTest, FailsOverToTheNextEndpoint) {
  LeaderElectionConfig config = Config();
  config.endpoints.insert(config.endpoints.begin(),
                          "http://127.0.0.1:" + std::to_string(FreeLoopbackPort()));
  LeaderElection a(config, "a");
  a.Start();
  ASSERT_TRUE(WaitFor([&] { return a.IsLeader(); }, 5s)) << a.status().last_error;
  EXPECT_TRUE(a.ConfirmLeadership());
  EXPECT_EQ(a.status().endpoint, etcd_->Url());
}

TEST_F(LeaderElectionTest, KilledLeaderProcessIsReplacedWithinTwoTtls) {
  ChildCandidate c(etcd_->Url(), dir_);
  LeaderElection b(Config(), "b");
  ExpectTakeoverAfter(c, b, [&] { c.Kill(); });  // no revoke: the lease has to run out
  EXPECT_TRUE(b.ConfirmLeadership());
  EXPECT_EQ(KeyValue(), "b");
}

TEST_F(LeaderElectionTest, LeaderProcessPausedPastTheTtlDoesNotActAfterResuming) {
  ChildCandidate c(etcd_->Url(), dir_);
  LeaderElection b(Config(), "b");
  ExpectTakeoverAfter(c, b, [&] { c.Pause(); });
  const int64_t resumed = SteadyNanos();
  c.Resume();
  // For a TTL after SIGCONT: b leads throughout and c, whose lease is gone,
  // never confirms; an action c had confirmed before the pause may still be
  // written, with its earlier time.
  const auto until = Steady::now() + kTtl;
  while (Steady::now() < until) {
    ASSERT_TRUE(b.IsLeader());
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(b.ConfirmLeadership());
  for (int64_t t : c.Acts()) EXPECT_LT(t, resumed) << "c acted after SIGCONT while b led";

  // Not vacuous: once b hands over, c re-acquires the key and acts again.
  b.Stop();
  ASSERT_TRUE(WaitFor([&] { return !c.Acts().empty() && c.Acts().back() > resumed; }, 2 * kTtl))
      << c.Log();
  EXPECT_EQ(KeyValue(), "c");
}

TEST(LeaderElectionConfigTest, ValidateRejectsBadValues) {
  LeaderElectionConfig good;
  good.endpoints = {"http://127.0.0.1:2379", "https://etcd.example:2379/"};
  EXPECT_EQ(ValidateLeaderElectionConfig(good), std::nullopt);

  auto error = [&](auto change) {
    LeaderElectionConfig c = good;
    change(c);
    return ValidateLeaderElectionConfig(c).value_or("");
  };
  EXPECT_NE(error([](auto& c) { c.endpoints.clear(); }).find("endpoints is empty"),
            std::string::npos);
  EXPECT_NE(error([](auto& c) { c.endpoints.push_back("127.0.0.1:2379"); }).find("endpoints[2]"),
            std::string::npos);
  EXPECT_NE(error([](auto& c) { c.endpoints[0] = "ftp://h:1"; }).find("endpoints[0]"),
            std::string::npos);
  EXPECT_NE(error([](auto& c) { c.endpoints[0] = "http://h:1/?x=1"; }).find("query"),
            std::string::npos);
  EXPECT_EQ(error([](auto& c) { c.key.clear(); }), "key is empty");
  EXPECT_NE(error([](auto& c) { c.lease_ttl = 1s; }).find("lease_ttl 1s"), std::string::npos);
  EXPECT_NE(error([](auto& c) { c.lease_ttl = 2500ms; }).find("whole seconds"), std::string::npos);
  EXPECT_NE(error([](auto& c) { c.lease_ttl = 2h; }).find("lease_ttl 2h"), std::string::npos);
  EXPECT_EQ(error([](auto& c) { c.lease_ttl = 2s; }), "");
  EXPECT_EQ(error([](auto& c) { c.lease_ttl = 1h; }), "");
}

TEST(LeaderElectionConfigTest, DefaultIdentityNamesHostPortAndPid) {
  const std::string id = DefaultLeaderIdentity(9177);
  EXPECT_NE(id.find(":9177-" + std::to_string(getpid())), std::string::npos) << id;
  EXPECT_NE(id.front(), ':');
}

TEST(LeaderElectionNoEtcdTest, UnreachableEtcdIsUnknownAndStopIsPrompt) {
  LeaderElectionConfig config;
  config.endpoints = {"http://127.0.0.1:" + std::to_string(FreeLoopbackPort())};
  config.lease_ttl = kTtl;
  LeaderElection a(config, "a");
  EXPECT_EQ(a.status().role, LeaderRole::kUnknown);
  a.Start();
  ASSERT_TRUE(WaitFor([&] { return a.status().last_error != ""; }, kTtl));
  EXPECT_EQ(a.status().role, LeaderRole::kUnknown);
  EXPECT_FALSE(a.IsLeader());
  EXPECT_FALSE(a.ConfirmLeadership());
  const auto s0 = Steady::now();
  a.Stop();
  EXPECT_LT(Steady::now() - s0, 500ms);
}

}  // namespace
}  // namespace virtscale::autoscale
