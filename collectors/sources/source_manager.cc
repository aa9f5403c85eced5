#include "collectors/sources/source_manager.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "collectors/sources/poll.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metric_families.h"
#include "common/utf8.h"

namespace virtscale {

using WallClock = std::chrono::system_clock;

struct SourceManager::Source {
  explicit Source(SourceConfig c) : config(std::move(c)) {}

  SourceConfig config;
  RequestCanceller canceller;
  std::thread thread;

  mutable std::mutex mu;
  std::condition_variable wake;
  bool stopping = false;
  std::optional<double> value;           // last good value, kept while polls fail
  WallClock::time_point last_success{};  // for display
  MonoTime last_success_mono{};          // for staleness: a wall clock step changes nothing
  uint64_t polls = 0;
  bool last_ok = false;
  SourceError last_error;
  std::map<std::string, uint64_t> errors;  // by reason
  // Forecast sources only (wants_history): the history fetched on its own thread.
  bool wants_history = false;
  RequestCanceller history_canceller;
  std::thread history_thread;
  std::shared_ptr<const SourceHistory> history;
  std::string history_error;

  // Requires `mu`.
  bool Fresh(MonoTime now) const { return value && now - last_success_mono <= config.stale_after; }
};

namespace {

std::vector<const char*> ReasonsOf(SourceType type) {
  using namespace source_reason;
  switch (type) {
    case SourceType::kPrometheus:
      return {kConnection, kTimeout,     kHttpStatus,     kTooLarge, kRead, kBadJson,
              kQueryError, kEmptyVector, kMultipleSeries, kNan,      kInf};
    case SourceType::kScrape:
      return {kConnection, kTimeout,  kHttpStatus,     kTooLarge, kRead,
              kParse,      kNoSeries, kMultipleSeries, kNan,      kInf};
    case SourceType::kFile:
      return {kRead, kParse, kNan, kInf};
  }
  return {};
}

void Record(SourceManager::Source& s, const SourceResult<double>& result, Instant now) {
  const bool was_ok = s.last_ok;
  const std::string old_reason = s.polls == 0 ? "" : s.last_error.reason;
  ++s.polls;
  if (result.ok()) {
    s.value = result.value();
    s.last_success = now.wall;
    s.last_success_mono = now.mono;
    s.last_ok = true;
    s.last_error = {};
    if (!was_ok && s.polls > 1) LogInfo("source recovered", {{"source", s.config.name}});
    return;
  }
  s.last_ok = false;
  s.last_error = result.error();
  // Messages quote what the source sent (label values, error text): bounded and
  // made UTF-8 here, as they reach decisions, logs and JSON.
  s.last_error.message = BoundedUtf8(s.last_error.message, 512);
  ++s.errors[s.last_error.reason];
  if (was_ok || old_reason != s.last_error.reason || s.polls == 1) {  // log changes, not every poll
    LogWarn("source poll failed", {{"source", s.config.name},
                                   {"reason", s.last_error.reason},
                                   {"error", s.last_error.message}});
  }
}

void Run(SourceManager::Source& s) {
  auto next = std::chrono::steady_clock::now();
  while (true) {
    SourceResult<double> result = PollSource(s.config, &s.canceller);
    std::unique_lock lock(s.mu);
    if (s.stopping) return;  // a cancelled request is not an error of the source
    Record(s, result, SystemClock().Now());
    // Fixed rate; after a poll slower than the interval, the next one starts at once.
    next = std::max(next + s.config.interval, std::chrono::steady_clock::now());
    if (s.wake.wait_until(lock, next, [&] { return s.stopping; })) return;
  }
}

void RunHistory(SourceManager::Source& s) {
  while (true) {
    const auto now = WallClock::now();
    auto result =
        FetchSourceHistory(s.config, std::chrono::duration<double>(now.time_since_epoch()).count(),
                           &s.history_canceller);
    std::unique_lock lock(s.mu);
    if (s.stopping) return;
    const bool failed_before = !s.history_error.empty();
    if (result.ok()) {
      auto history = std::make_shared<SourceHistory>();
      history->samples = std::move(result).value();
      history->fetched_at = now;
      if (failed_before)
        LogInfo("source history recovered",
                {{"source", s.config.name}, {"samples", history->samples.size()}});
      s.history = std::move(history);
      s.history_error.clear();
    } else {
      const std::string error = BoundedUtf8(result.error().ToString(), 512);
      if (error != s.history_error)
        LogWarn("source history fetch failed", {{"source", s.config.name}, {"error", error}});
      s.history_error = error;
    }
    const auto wait = s.history_error.empty() ? std::chrono::steady_clock::duration(kHistoryRefetch)
                                              : std::chrono::steady_clock::duration(kHistoryRetry);
    if (s.wake.wait_for(lock, wait, [&] { return s.stopping; })) return;
  }
}

SourceReading ReadingOf(const SourceManager::Source& s, MonoTime now) {
  SourceReading r;
  r.history = s.history;
  r.history_error = s.history_error;
  r.last_success = s.last_success;
  if (s.Fresh(now)) {
    r.value = s.value;
    r.health = s.last_ok ? SourceHealth::kOk : SourceHealth::kFailing;
    if (!s.last_ok) r.error = s.last_error.ToString();
  } else if (s.value) {
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(now - s.last_success_mono);
    r.error = "stale: last success " + std::to_string(age.count()) + "s ago";
    if (!s.last_ok) r.error += "; last error: " + s.last_error.ToString();
    r.health = SourceHealth::kStale;
  } else if (s.polls > 0) {
    r.error = s.last_error.ToString();
    r.health = SourceHealth::kError;
  } else {
    r.error = "pending: not polled yet";
  }
  return r;
}

}  // namespace

const char* SourceHealthName(SourceHealth h) {
  switch (h) {
    case SourceHealth::kPending:
      return "pending";
    case SourceHealth::kOk:
      return "ok";
    case SourceHealth::kFailing:
      return "failing";
    case SourceHealth::kStale:
      return "stale";
    case SourceHealth::kError:
      return "error";
  }
  return "pending";
}

SourceManager::SourceManager(std::map<std::string, SourceConfig> configs,
                             const std::set<std::string>& history_sources) {
  for (auto& [name, config] : configs) {
    config.name = name;
    sources_.push_back(std::make_unique<Source>(std::move(config)));
    sources_.back()->wants_history =
        history_sources.contains(name) && sources_.back()->config.type == SourceType::kPrometheus;
    for (const char* reason : ReasonsOf(sources_.back()->config.type)) {
      sources_.back()->errors[reason] = 0;
    }
  }
}

SourceManager::~SourceManager() { Stop(); }

void SourceManager::Start() {
  if (started_) return;
  started_ = true;
  for (auto& s : sources_) {
    Source* source = s.get();
    source->thread = std::thread([source] { Run(*source); });
    if (source->wants_history)
      source->history_thread = std::thread([source] { RunHistory(*source); });
  }
}

void SourceManager::Stop() {
  for (auto& s : sources_) {
    {
      std::lock_guard lock(s->mu);
      s->stopping = true;
    }
    s->wake.notify_all();
    s->canceller.Cancel();
    s->history_canceller.Cancel();
  }
  for (auto& s : sources_) {
    if (s->thread.joinable()) s->thread.join();
    if (s->history_thread.joinable()) s->history_thread.join();
  }
}

SourceReadings SourceManager::Readings(Instant now) const {
  SourceReadings out;
  for (const auto& s : sources_) {
    std::lock_guard lock(s->mu);
    out.emplace(s->config.name, ReadingOf(*s, now.mono));
  }
  return out;
}

SourceReadings SourceManager::Readings(WallClock::time_point now) const {
  SourceReadings out;
  for (const auto& s : sources_) {
    std::lock_guard lock(s->mu);
    // Each source's own pair of success times maps wall to monotonic exactly.
    const Instant at_success{s->last_success_mono, s->last_success};
    const MonoTime mono = s->polls > 0 ? at_success.MonoOf(now) : std::chrono::steady_clock::now();
    out.emplace(s->config.name, ReadingOf(*s, mono));
  }
  return out;
}

uint64_t SourceManager::PollCount(const std::string& name) const {
  for (const auto& s : sources_) {
    if (s->config.name != name) continue;
    std::lock_guard lock(s->mu);
    return s->polls;
  }
  return 0;
}

std::vector<prometheus::MetricFamily> SourceManager::Collect() const {
  if (sources_.empty()) return {};
  using prometheus::MetricType;
  using IfEmpty = MetricFamilies::IfEmpty;
  MetricFamilies f;
  auto value = f.Family("virtscale_source_value",
                        "Latest value of an external source (queue depth, ...); absent "
                        "when the source has no fresh value.",
                        MetricType::Gauge);
  auto up = f.Family("virtscale_source_up",
                     "1 when the last poll of the source succeeded and its value is fresh, else 0.",
                     MetricType::Gauge, IfEmpty::kKeep);
  auto last = f.Family("virtscale_source_last_success_timestamp_seconds",
                       "Unix time of the last successful poll of the source (0: never).",
                       MetricType::Gauge, IfEmpty::kKeep);
  auto errors = f.Family("virtscale_source_errors_total", "Failed polls of the source, by reason.",
                         MetricType::Counter, IfEmpty::kKeep);
  auto history = f.Family(
      "virtscale_source_history_samples",
      "Samples in the newest history fetched of a source a group forecasts from (0: none yet).",
      MetricType::Gauge);
  const MonoTime now = std::chrono::steady_clock::now();
  for (const auto& s : sources_) {
    std::lock_guard lock(s->mu);
    if (s->wants_history) {
      const double samples = s->history ? static_cast<double>(s->history->samples.size()) : 0;
      f.Add(history, {{"source", s->config.name}}, samples);
    }
    const std::string& name = s->config.name;
    const bool fresh = s->Fresh(now);
    if (fresh) f.Add(value, {{"source", name}}, *s->value);
    f.Add(up, {{"source", name}}, fresh && s->last_ok ? 1 : 0);
    const double last_seconds =
        s->value ? std::chrono::duration<double>(s->last_success.time_since_epoch()).count() : 0;
    f.Add(last, {{"source", name}}, last_seconds);
    for (const auto& [reason, count] : s->errors) {
      f.Add(errors, {{"source", name}, {"reason", reason}}, static_cast<double>(count));
    }
  }
  return f.Take();
}

}  // namespace virtscale
