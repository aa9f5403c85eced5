#pragma once
// One call of a collector (host, storage_pools) run as a deadline task beside
// the sample's other calls, and its outcome as the collector's result.
// `Result` has `ok`, `connection_lost` and `duration_seconds`.
//
//   std::vector<DeadlineTask> tasks;
//   CollectorCall<HostResult> host("host", *stuck, tasks,
//                                  [conn, log](HostResult& r) { CollectHost(conn.get(), *log, r);
//                                  });
//   DeadlineRunResult run = RunWithDeadlines(std::move(tasks), 2, timeout, stuck);
//   CollectorResult result{"host", 0, false};
//   if (HostResult* r = host.Finished(run, result, connection_lost)) Use(r->host);
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "collectors/deadline_runner.h"
#include "collectors/snapshot.h"

namespace virtscale {

template <typename Result>
class CollectorCall {
 public:
  // Appends the task (under `key`) unless an earlier call of it is still stuck.
  CollectorCall(std::string key, const StuckCalls& stuck, std::vector<DeadlineTask>& tasks,
                std::function<void(Result&)> call) {
    if (stuck.Contains(key)) return;
    task_ = tasks.size();
    tasks.push_back(
        {{std::move(key)}, [call = std::move(call), result = result_] { call(*result); }});
  }

  // After RunWithDeadlines over the tasks: the result when the call finished
  // (`collector` then says how long it took and whether it succeeded), else
  // null and `collector` is left unsuccessful.
  Result* Finished(const DeadlineRunResult& run, CollectorResult& collector,
                   bool& connection_lost) const {
    if (!task_ || !run.finished[*task_]) return nullptr;
    collector.success = result_->ok;
    collector.duration_seconds = result_->duration_seconds;
    connection_lost |= result_->connection_lost;
    return result_.get();
  }

 private:
  std::shared_ptr<Result> result_ = std::make_shared<Result>();  // shared with the task
  std::optional<size_t> task_;  // index in the run; none when stuck
};

}  // namespace virtscale
