#include "collectors/deadline_runner.h"

#include <condition_variable>
#include <thread>

#include "common/log.h"

namespace virtscale {

bool StuckCalls::Contains(const std::string& key) const {
  std::lock_guard lock(mu_);
  return keys_.count(key) > 0;
}

size_t StuckCalls::size() const {
  std::lock_guard lock(mu_);
  return keys_.size();
}

void StuckCalls::Add(const std::vector<std::string>& keys) {
  std::lock_guard lock(mu_);
  keys_.insert(keys.begin(), keys.end());
}

void StuckCalls::Remove(const std::vector<std::string>& keys) {
  std::lock_guard lock(mu_);
  for (const std::string& key : keys) {
    auto it = keys_.find(key);
    if (it != keys_.end()) keys_.erase(it);
  }
}

namespace {

using Clock = std::chrono::steady_clock;

// Shared by the coordinator and its workers; abandoned workers keep it alive.
struct RunState {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<DeadlineTask> tasks;
  size_t next = 0;
  size_t done = 0;  // finished + abandoned
  std::vector<bool> finished;
  std::vector<bool> abandoned;
  struct Slot {
    bool busy = false;
    size_t task = 0;
    Clock::time_point started;
  };
  std::vector<Slot> slots;  // one per worker ever started
  std::shared_ptr<StuckCalls> stuck;
};

void WorkerLoop(std::shared_ptr<RunState> state, size_t slot) {
  std::unique_lock lock(state->mu);
  while (state->next < state->tasks.size()) {
    size_t i = state->next++;
    state->slots[slot] = {true, i, Clock::now()};
    state->cv.notify_all();  // the coordinator now has a deadline to watch
    lock.unlock();
    try {
      state->tasks[i].run();
    } catch (const std::exception& e) {
      LogError("collector task threw", {{"error", e.what()}});
    } catch (...) {
      LogError("collector task threw", {{"error", "unknown exception"}});
    }
    lock.lock();
    state->slots[slot].busy = false;
    if (state->abandoned[i]) {
      // The coordinator gave up on this call and started a replacement worker.
      if (state->stuck) state->stuck->Remove(state->tasks[i].keys);
      return;
    }
    state->finished[i] = true;
    ++state->done;
    state->cv.notify_all();
  }
}

}  // namespace

DeadlineRunResult RunWithDeadlines(std::vector<DeadlineTask> tasks, int workers, Duration timeout,
                                   const std::shared_ptr<StuckCalls>& stuck) {
  auto state = std::make_shared<RunState>();
  const size_t n = tasks.size();
  state->tasks = std::move(tasks);
  state->finished.assign(n, false);
  state->abandoned.assign(n, false);
  state->stuck = stuck;
  DeadlineRunResult result;
  if (n == 0) return result;

  const size_t pool = std::min(n, static_cast<size_t>(std::max(1, workers)));
  std::vector<std::thread> threads;
  std::unique_lock lock(state->mu);
  auto spawn = [&] {
    state->slots.emplace_back();
    threads.emplace_back(WorkerLoop, state, state->slots.size() - 1);
  };
  for (size_t i = 0; i < pool; ++i) spawn();

  while (state->done < n) {
    Clock::time_point now = Clock::now();
    Clock::time_point earliest = Clock::time_point::max();
    for (size_t s = 0; s < state->slots.size(); ++s) {
      RunState::Slot& slot = state->slots[s];
      if (!slot.busy || state->abandoned[slot.task]) continue;
      Clock::time_point deadline = slot.started + timeout;
      if (deadline <= now) {
        state->abandoned[slot.task] = true;
        ++state->done;
        ++result.timed_out;
        if (stuck) stuck->Add(state->tasks[slot.task].keys);
        threads[s].detach();
        if (state->next < n) spawn();
      } else {
        earliest = std::min(earliest, deadline);
      }
    }
    if (state->done >= n) break;
    if (earliest == Clock::time_point::max()) {
      state->cv.wait(lock);
    } else {
      state->cv.wait_until(lock, earliest);
    }
  }
  lock.unlock();
  for (std::thread& t : threads) {
    if (t.joinable()) t.join();
  }
  lock.lock();
  result.finished = state->finished;
  return result;
}

}  // namespace virtscale
