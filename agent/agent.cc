#include "agent/agent.h"

#include <malloc.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "agent/config.h"
#include "agent/endpoints.h"
#include "agent/http_server.h"
#include "agent/landing_page.h"
#include "agent/metrics_body_cache.h"
#include "agent/web_config.h"
#include "autoscale/engine.h"
#include "autoscale/leader_election.h"
#include "autoscale/libvirt/libvirt_actuator.h"
#include "autoscale/notifier.h"
#include "collectors/fleet_hosts.h"
#include "collectors/libvirt_connection.h"
#include "collectors/sampler.h"
#include "collectors/snapshot_metrics.h"
#include "collectors/sources/source_manager.h"
#include "common/log.h"
#include "version.h"

#ifdef VIRTSCALE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace virtscale {
namespace {

// A config with warnings loads; they are logged so the operator sees them.
void LogWarnings(const Diagnostics& diags) {
  for (const auto& d : diags.list())
    if (d.warning) LogWarn("config warning", {{"problem", d.ToString()}});
}

void Notify(const char* state) {
#ifdef VIRTSCALE_HAVE_SYSTEMD
  sd_notify(0, state);
#else
  (void)state;
#endif
}

SamplerOptions SamplerOptionsFrom(const LibvirtSettings& s) {
  SamplerOptions o;
  o.interval = s.sample_interval;
  o.stat_groups = s.stat_groups;
  o.call_timeout = s.call_timeout;
  o.workers = static_cast<int>(s.workers);
  o.metadata_labels = s.metadata_labels;
  return o;
}

autoscale::LibvirtActuatorOptions ActuatorOptionsFor(LibvirtConnection& connection,
                                                     const LibvirtSettings& s) {
  autoscale::LibvirtActuatorOptions options;
  options.call_timeout = s.call_timeout;
  options.on_connection_error = [&connection] { connection.ReportBroken(); };
  return options;
}

autoscale::EngineOptions EngineOptionsFor(const AgentFlags& flags, Sampler& sampler,
                                          autoscale::Notifier& notifier,
                                          autoscale::Leadership* leadership) {
  autoscale::EngineOptions options;
  options.dry_run = flags.dry_run;
  options.leadership = leadership;
  // Pause and protection are read back from libvirt at once.
  options.on_metadata_written = [&sampler](const std::vector<std::string>& domains) {
    sampler.RefreshDomains(domains);
  };
  options.on_change_finished = [&notifier](const autoscale::Decision& d) {
    notifier.NotifyDecision(d);
  };
  return options;
}

double UnixSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// /api/v1/hosts: one object per fleet host, by name.
nlohmann::json FleetHostsJson(const std::vector<FleetHostStatus>& hosts) {
  nlohmann::json out = nlohmann::json::array();
  for (const FleetHostStatus& h : hosts) {
    nlohmann::json j = {{"name", h.name}, {"uri", h.uri}, {"up", h.up}};
    // Whole seconds for people; unreachable_seconds keeps the fraction.
    j["unreachable_for"] =
        FormatDuration(std::chrono::duration_cast<std::chrono::seconds>(h.unreachable_for));
    j["unreachable_seconds"] = std::chrono::duration<double>(h.unreachable_for).count();
    if (h.up) {
      const Snapshot& s = *h.snapshot;
      if (s.host.memory_total_bytes) j["memory_bytes"] = *s.host.memory_total_bytes;
      if (s.host.memory_free_bytes) j["memory_free_bytes"] = *s.host.memory_free_bytes;
      if (s.host.cpus) j["cpus"] = *s.host.cpus;
      if (h.cpu_idle_ratio) j["cpu_idle_ratio"] = *h.cpu_idle_ratio;
      j["domains"] = s.domains.size();
      j["sampled_at"] = UnixSeconds(s.taken_at);
    }
    out.push_back(std::move(j));
  }
  return out;
}

// The port in the listen address, for the election identity (0 when none).
int ListenPort(const std::string& listen) {
  const auto address = ParseListenAddress(listen);
  return address ? address->port : 0;
}

std::unique_ptr<autoscale::LeaderElection> ElectionFor(const AgentConfig& config,
                                                       const std::string& listen) {
  if (!config.leader_election) return nullptr;
  return std::make_unique<autoscale::LeaderElection>(
      *config.leader_election, autoscale::DefaultLeaderIdentity(ListenPort(listen)));
}

// /api/v1/leader: the election (leader_election:) as this controller sees it.
nlohmann::json LeaderJson(const autoscale::LeaderElection* election) {
  if (election == nullptr) return {{"enabled", false}};
  const autoscale::LeaderElection::Status s = election->status();
  const autoscale::LeaderElectionConfig& c = election->config();
  nlohmann::json j = {{"enabled", true},
                      {"role", autoscale::LeaderRoleName(s.role)},
                      {"identity", election->identity()},
                      {"leader", s.leader_identity},
                      {"lease_id", s.lease_id},
                      {"transitions", s.transitions},
                      {"last_error", s.last_error},
                      {"endpoint", s.endpoint},
                      {"endpoints", c.endpoints},
                      {"key", c.key},
                      {"lease_ttl", FormatDuration(c.lease_ttl)}};
  if (s.role != autoscale::LeaderRole::kLeader) j["why_not_leader"] = election->WhyNotLeader();
  return j;
}

class Agent {
 public:
  Agent(AgentFlags flags, AgentConfig config, WebConfig web)
      : flags_(std::move(flags)),
        config_(std::move(config)),
        web_(std::move(web)),
        // A monitoring-only agent asks libvirt for no more rights than it needs.
        read_only_(config_.rules.groups.empty()),
        connection_(
            LibvirtConnection::Options{.uri = config_.libvirt.uri, .read_only = read_only_}),
        sampler_(connection_, SamplerOptionsFrom(config_.libvirt)),
        actuator_([this] { return connection_.Acquire(); },
                  ActuatorOptionsFor(connection_, config_.libvirt)),
        election_(ElectionFor(config_, flags_.listen_address.value_or(config_.web.listen_address))),
        engine_(actuator_, EngineOptionsFor(flags_, sampler_, notifier_, election_.get())),
        fleet_(config_.hosts, SamplerOptionsFrom(config_.libvirt), read_only_),
        build_info_(prometheus::BuildGauge()
                        .Name("virtscale_build_info")
                        .Help("A metric with a constant '1' value labeled by version and build.")
                        .Register(registry_)),
        reload_ok_(prometheus::BuildGauge()
                       .Name("virtscale_config_last_reload_successful")
                       .Help("Whether the last configuration reload attempt was successful.")
                       .Register(registry_)
                       .Add({})),
        reload_time_(prometheus::BuildGauge()
                         .Name("virtscale_config_last_reload_success_timestamp_seconds")
                         .Help("Timestamp of the last successful configuration reload.")
                         .Register(registry_)
                         .Add({})),
        sample_interval_(prometheus::BuildGauge()
                             .Name("virtscale_sample_interval_seconds")
                             .Help("Configured interval between samples (libvirt.sample_interval).")
                             .Register(registry_)
                             .Add({})) {
    sample_interval_.Set(Seconds(config_.libvirt.sample_interval));
    build_info_.Add({{"version", VIRTSCALE_VERSION}, {"libvirt", LibvirtVersion()}}).Set(1);
    reload_ok_.Set(1);
    reload_time_.Set(UnixSeconds(std::chrono::system_clock::now()));
    reload_status_.config_file = flags_.config_file;
    reload_status_.loaded_at = std::chrono::system_clock::now();
    sources_ =
        std::make_shared<SourceManager>(config_.sources, autoscale::ForecastSources(config_.rules));
    notifier_.SetTargets(config_.notifications, autoscale::GroupTargets(config_.rules));
    engine_.SetRules(config_.rules);
    running_rules_ = std::make_shared<autoscale::RuleSet>(config_.rules);
    // The connection logs its own changes.
    FeedFromConnection(connection_, sampler_);
    // Render /metrics ahead of the first scrape and wake the autoscaler.
    sampler_.SetSnapshotListener([this](const SnapshotPtr& snapshot) {
      exposition_.Prepare(snapshot);
      snapshot_cv_.notify_all();
      // A sample and its render free megabytes at 1000 domains; glibc keeps
      // freed pages inside its heaps unless told to return them.
      malloc_trim(0);
    });
  }

  int Run() {
    try {
      server_ = std::make_unique<HttpServer>(
          config_.web.limits, web_, std::make_shared<const Router>(MakeAgentRouter(Endpoints())),
          registry_);
    } catch (const std::exception& e) {
      LogError("cannot start web server", {{"err", e.what()}});
      return 1;
    }
    const std::string listen = flags_.listen_address.value_or(config_.web.listen_address);
    if (auto err = server_->Bind(listen)) {
      LogError("cannot listen", {{"address", listen}, {"err", *err}});
      return 1;
    }
    LogInfo("starting virtscale", {{"version", VIRTSCALE_VERSION},
                                   {"uri", config_.libvirt.uri},
                                   {"listen", listen},
                                   {"port", server_->port()},
                                   {"tls", server_->tls()},
                                   {"config", config_.file.empty() ? "(defaults)" : config_.file},
                                   {"groups", config_.rules.groups.size()},
                                   {"dry_run", flags_.dry_run},
                                   {"libvirt_read_only", read_only_},
                                   {"leader_election", election_ ? election_->identity() : ""}});

    connection_.Start();
    // Give a reachable libvirt the chance to make the first sample a real one; an
    // unreachable one still gets a "libvirt_up 0" sample after this wait.
    connection_.WaitUp(std::min<Duration>(config_.libvirt.call_timeout, std::chrono::seconds(5)));
    sampler_.Start();
    fleet_.Start();
    if (election_) election_->Start();
    CurrentSources()->Start();
    autoscale_thread_ = std::thread([this] { AutoscaleLoop(); });
    server_->Start();
    std::thread ready_notifier([this] {
      if (sampler_.WaitFirstSample(std::chrono::hours(24))) Notify("READY=1");
    });

    const int code = WaitForSignals();

    Notify("STOPPING=1");
    LogInfo("shutting down");
    stopping_ = true;
    // Operations in flight give up now (rolling back half-made creates) instead
    // of waiting out a guest's graceful shutdown.
    actuator_.Cancel();
    snapshot_cv_.notify_all();
    server_->Stop();
    if (autoscale_thread_.joinable()) autoscale_thread_.join();
    // Nothing acts any more: give the lease back, so another controller takes
    // over at once instead of after the TTL.
    engine_.Shutdown();
    if (election_) election_->Stop();
    CurrentSources()->Stop();
    sampler_.Stop();
    fleet_.Stop();
    connection_.Stop();
    ready_notifier.detach();
    LogInfo("stopped");
    return code;
  }

 private:
  static std::string LibvirtVersion() {
    unsigned long version = 0;
    if (virGetVersion(&version, nullptr, nullptr) != 0) return "unknown";
    return std::to_string(version / 1000000) + "." + std::to_string(version / 1000 % 1000) + "." +
           std::to_string(version % 1000);
  }

  std::shared_ptr<SourceManager> CurrentSources() {
    std::lock_guard lock(sources_mu_);
    return sources_;
  }

  // Evaluates the rules after every new snapshot, and at least once a second so
  // group intervals and cooldowns expire on time.
  void AutoscaleLoop() {
    uint64_t last_sequence = 0;
    while (!stopping_) {
      {
        std::unique_lock lock(snapshot_mu_);
        snapshot_cv_.wait_for(lock, std::chrono::seconds(1), [&] {
          auto s = sampler_.Latest();
          return stopping_ || (s && s->sequence != last_sequence);
        });
      }
      if (stopping_) break;
      SnapshotPtr snapshot = sampler_.Latest();
      if (!snapshot) continue;
      last_sequence = snapshot->sequence;
      if (snapshot->libvirt_up) CleanLeftovers();
      const Instant now = SystemClock().Now();
      try {
        engine_.Tick(snapshot, CurrentSources()->Readings(now), now, connection_.generation());
      } catch (const std::exception& e) {
        LogError("rule evaluation failed", {{"err", e.what()}});
      }
    }
  }

  // After the first connection, each reconnect and each reload: the volumes
  // that a create killed mid-way, or a delete whose undefine outlived its
  // deadline (libvirtd restarting), left behind (LibvirtActuator::
  // CleanupLeftovers). Never in dry run or on a read-only connection.
  void CleanLeftovers() {
    // A follower leaves the volumes to the leader; it cleans them if it leads later.
    if (election_ && !election_->IsLeader()) return;
    std::shared_ptr<const autoscale::RuleSet> rules;
    {
      std::lock_guard lock(cleanup_mu_);
      if (const uint64_t generation = connection_.generation(); generation != cleaned_generation_) {
        cleaned_generation_ = generation;
        cleanup_rules_ = running_rules_;
      }
      rules = std::exchange(cleanup_rules_, nullptr);
    }
    if (!rules || read_only_ || flags_.dry_run || rules->groups.empty()) return;
    if (election_ && !election_->ConfirmLeadership()) {
      std::lock_guard lock(cleanup_mu_);
      if (!cleanup_rules_) cleanup_rules_ = rules;  // again once leadership is confirmed
      return;
    }
    // Logs what it deletes and what it could not check; the next reconnect or reload retries.
    (void)actuator_.CleanupLeftovers(*rules);
  }

  // Reloads the config file; a config with any problem is rejected whole.
  bool Reload(std::string& error) {
    std::lock_guard lock(reload_mu_);
    bool ok = false;
    try {
      ok = ReloadLocked(error);
    } catch (const std::exception& e) {  // loading catches its own; this is the last guard
      error = std::string("reload failed: ") + e.what();
      reload_ok_.Set(0);
      LogError("reload failed; keeping the running config", {{"err", error}});
    }
    // For the landing page.
    std::lock_guard status_lock(status_mu_);
    reload_status_.attempted = true;
    reload_status_.ok = ok;
    reload_status_.attempted_at = std::chrono::system_clock::now();
    reload_status_.error = ok ? "" : error;
    if (ok) reload_status_.loaded_at = reload_status_.attempted_at;
    return ok;
  }

  ReloadStatus CurrentReloadStatus() {
    std::lock_guard lock(status_mu_);
    return reload_status_;
  }

  bool ReloadLocked(std::string& error) {
    if (config_.file.empty()) {
      error = "no --config.file to reload";
      reload_ok_.Set(0);
      return false;
    }
    Diagnostics diags;
    auto next = LoadAgentConfig(config_.file, diags);
    if (!next) {
      error = diags.ToString();
      reload_ok_.Set(0);
      LogError("reload rejected; keeping the running config",
               {{"config", config_.file}, {"err", error}});
      return false;
    }
    LogWarnings(diags);
    if (flags_.libvirt_uri) next->libvirt.uri = *flags_.libvirt_uri;
    if (read_only_ && !next->rules.groups.empty()) {
      error =
          "scaling groups need a read-write libvirt connection: restart the agent to act on them";
      reload_ok_.Set(0);
      LogError("reload rejected; keeping the running config",
               {{"config", config_.file}, {"groups", next->rules.groups.size()}, {"err", error}});
      return false;
    }
    if (next->hosts != started_hosts_) LogWarn("hosts: changes take effect at restart");
    if (next->leader_election != started_election_)
      LogWarn("leader_election: changes take effect at restart");
    if (next->libvirt.uri != started_uri_ ||
        next->web.listen_address != started_web_.listen_address ||
        !(next->web.limits == started_web_.limits))
      LogWarn("libvirt.uri and web.* changes take effect at restart");
    sampler_.UpdateOptions(SamplerOptionsFrom(next->libvirt));
    sample_interval_.Set(Seconds(next->libvirt.sample_interval));
    fleet_.UpdateOptions(SamplerOptionsFrom(next->libvirt));
    auto sources =
        std::make_shared<SourceManager>(next->sources, autoscale::ForecastSources(next->rules));
    sources->Start();
    std::shared_ptr<SourceManager> old;
    {
      std::lock_guard slock(sources_mu_);
      old = std::exchange(sources_, sources);
    }
    old->Stop();
    notifier_.SetTargets(next->notifications, autoscale::GroupTargets(next->rules));
    engine_.SetRules(next->rules);
    {
      std::lock_guard clock(cleanup_mu_);
      running_rules_ = cleanup_rules_ = std::make_shared<autoscale::RuleSet>(next->rules);
    }
    const std::string uri = config_.libvirt.uri;
    config_ = std::move(*next);
    config_.libvirt.uri = uri;
    reload_ok_.Set(1);
    reload_time_.Set(UnixSeconds(std::chrono::system_clock::now()));
    LogInfo("config reloaded", {{"config", config_.file},
                                {"groups", config_.rules.groups.size()},
                                {"sources", config_.sources.size()}});
    return true;
  }

  std::vector<prometheus::MetricFamily> DynamicFamilies() {
    std::vector<prometheus::MetricFamily> families = registry_.Collect();
    AppendSamplerFamilies(sampler_.Latest(), sampler_.Counters(), std::chrono::steady_clock::now(),
                          families);
    const std::shared_ptr<SourceManager> sources = CurrentSources();
    for (const prometheus::Collectable* c : std::initializer_list<const prometheus::Collectable*>{
             sources.get(), &engine_, &notifier_, &fleet_, election_.get()}) {
      if (c == nullptr) continue;
      std::vector<prometheus::MetricFamily> more = c->Collect();
      std::move(more.begin(), more.end(), std::back_inserter(families));
    }
    return families;
  }

  // The endpoints (agent/endpoints.h) over the agent's state.
  EndpointCallbacks Endpoints() {
    EndpointCallbacks cb;
    cb.metrics = [this](bool gzip) {
      return exposition_.Render(sampler_.Latest(), DynamicFamilies(), gzip);
    };
    cb.ready = [this] { return sampler_.Latest() != nullptr; };
    cb.hosts = [this] { return FleetHostsJson(fleet_.Status()); };
    cb.leader = [this] { return LeaderJson(election_.get()); };
    cb.groups = [this] { return engine_.GroupsJson(); };
    cb.decisions = [this](const autoscale::DecisionFilter& filter) {
      return engine_.DecisionsJson(filter);
    };
    cb.landing_page = [this] {
      LandingPageData page;
      page.version = VIRTSCALE_VERSION;
      page.uri = connection_.uri();
      const SamplerOptions sampling = sampler_.options();
      page.stat_groups = StatGroupNames(sampling.stat_groups | VIR_DOMAIN_STATS_STATE);
      if (sampling.metadata_labels) page.metadata_labels = sampling.metadata_labels->Names();
      page.snapshot = sampler_.Latest();
      page.dry_run = flags_.dry_run;
      page.groups = engine_.GroupsJson();
      autoscale::DecisionFilter recent;
      recent.changes_only = true;
      recent.limit = 20;
      page.changes = engine_.DecisionsJson(recent);
      const Instant now = SystemClock().Now();
      page.now = now.wall;
      page.sources = CurrentSources()->Readings(now);
      page.hosts = FleetHostsJson(fleet_.Status());
      page.leader = LeaderJson(election_.get());
      page.reload = CurrentReloadStatus();
      return page;
    };
    if (flags_.enable_lifecycle) {
      cb.reload = [this](std::string& error) { return Reload(error); };
      cb.set_paused = [this](const std::string& group, bool paused) {
        return engine_.SetPaused(group, paused);
      };
      cb.set_protected = [this](const std::string& group, const std::string& domain,
                                bool is_protected) {
        return engine_.SetProtected(group, domain, is_protected);
      };
    }
    return cb;
  }

  // Signals are blocked in every thread (see RunAgent) and taken here.
  int WaitForSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) return 1;
      if (sig == SIGHUP) {
        std::string error;
        Reload(error);
        continue;
      }
      LogInfo("received signal", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
      return 0;
    }
  }

  AgentFlags flags_;
  AgentConfig config_;
  // What the connection and the server were started with: a reload cannot
  // change them, so it warns while the loaded config differs from these.
  const std::string started_uri_ = config_.libvirt.uri;
  const WebSettings started_web_ = config_.web;
  const std::map<std::string, std::string> started_hosts_ = config_.hosts;
  const std::optional<autoscale::LeaderElectionConfig> started_election_ = config_.leader_election;
  WebConfig web_;
  prometheus::Registry registry_;
  const bool read_only_;
  LibvirtConnection connection_;
  Sampler sampler_;
  autoscale::LibvirtActuator actuator_;
  std::mutex cleanup_mu_;
  std::shared_ptr<const autoscale::RuleSet> cleanup_rules_;  // pending cleanup; cleanup_mu_
  std::shared_ptr<const autoscale::RuleSet> running_rules_;  // cleanup_mu_
  uint64_t cleaned_generation_ = 0;  // the connection generation last armed; cleanup_mu_
  autoscale::Notifier notifier_;     // before engine_: its workers notify until they are joined
  // Before engine_, which asks it; null without leader_election:.
  std::unique_ptr<autoscale::LeaderElection> election_;
  autoscale::Engine engine_;
  FleetHosts fleet_;
  prometheus::Family<prometheus::Gauge>& build_info_;
  prometheus::Gauge& reload_ok_;
  prometheus::Gauge& reload_time_;
  prometheus::Gauge& sample_interval_;
  MetricsExposition exposition_;
  std::unique_ptr<HttpServer> server_;

  std::mutex reload_mu_;
  std::mutex status_mu_;
  ReloadStatus reload_status_;  // status_mu_
  std::mutex sources_mu_;
  std::shared_ptr<SourceManager> sources_;

  std::atomic<bool> stopping_{false};
  std::mutex snapshot_mu_;
  std::condition_variable snapshot_cv_;
  std::thread autoscale_thread_;
};

}  // namespace

int RunAgent(const AgentFlags& flags) {
  if (!SetupLogging(flags.log_level, flags.log_format)) {
    std::fprintf(stderr, "virtscale: invalid --log.level or --log.format\n");
    return 2;
  }
  AgentConfig config = DefaultAgentConfig();
  if (!flags.config_file.empty()) {
    Diagnostics diags;
    auto loaded = LoadAgentConfig(flags.config_file, diags);
    if (!loaded) {
      for (const auto& d : diags.list()) LogError("invalid config", {{"problem", d.ToString()}});
      return 1;
    }
    LogWarnings(diags);
    config = std::move(*loaded);
  }
  if (flags.libvirt_uri) config.libvirt.uri = *flags.libvirt_uri;
  WebConfig web;
  const std::string web_file = flags.web_config_file.value_or(config.web.config_file);
  if (!web_file.empty()) {
    Diagnostics diags;
    auto loaded = LoadWebConfig(web_file, diags);
    if (!loaded) {
      for (const auto& d : diags.list())
        LogError("invalid web config", {{"problem", d.ToString()}});
      return 1;
    }
    web = std::move(*loaded);
  }

  // Every thread started from here on inherits the mask; WaitForSignals takes them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  EnsureLibvirtEventLoop();
  Agent agent(flags, std::move(config), std::move(web));
  return agent.Run();
}

}  // namespace virtscale
