#pragma once
// Runs blocking calls (libvirt's cannot be cancelled) on worker threads with a
// deadline per call. A call still running after `timeout` is abandoned: the
// caller stops waiting for it, its keys (domain UUIDs) are recorded in a
// StuckCalls set until it really returns, and its worker is replaced so the
// remaining calls keep their parallelism. One hung call delays nothing else.
//
//   auto stuck = std::make_shared<StuckCalls>();
//   std::vector<DeadlineTask> tasks = {{{"uuid-1"}, [slot] { slot->info = Fetch(); }}};
//   DeadlineRunResult r = RunWithDeadlines(std::move(tasks), 4, 10s, stuck);
//   if (!r.finished[0]) { /* timed out; "uuid-1" stays in *stuck until it returns */ }
//
// Task closures must own (shared_ptr) everything they touch: an abandoned task
// outlives the call to RunWithDeadlines. Results of a task may be read only when
// finished[i] is true.
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/duration.h"

namespace virtscale {

// Keys whose call outlived its deadline and has not returned yet. Thread-safe.
class StuckCalls {
 public:
  bool Contains(const std::string& key) const;
  size_t size() const;
  void Add(const std::vector<std::string>& keys);
  void Remove(const std::vector<std::string>& keys);

 private:
  mutable std::mutex mu_;
  std::multiset<std::string> keys_;
};

struct DeadlineTask {
  std::vector<std::string> keys;  // what the task is about, e.g. domain UUIDs
  std::function<void()> run;      // exceptions are caught and count as finished
};

struct DeadlineRunResult {
  std::vector<bool> finished;  // per task, in input order
  int timed_out = 0;           // tasks abandoned at their deadline
};

// Returns once every task has finished or been abandoned; `workers` < 1 means 1.
DeadlineRunResult RunWithDeadlines(std::vector<DeadlineTask> tasks, int workers, Duration timeout,
                                   const std::shared_ptr<StuckCalls>& stuck);

}  // namespace virtscale
