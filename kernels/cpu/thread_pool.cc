// thread_pool.cc: see thread_pool.h.
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <system_error>

namespace hbsa::internal {
namespace {

// One ParallelFor call. Shared with helper tasks, which may start after the call has returned
// (then they find no item left and only touch this object, which they co-own).
struct ForState {
  ForState(int64_t n, absl::FunctionRef<void(int64_t)> fn) : n(n), fn(fn) {}
  const int64_t n;
  absl::FunctionRef<void(int64_t)> fn;  // only called for claimed items, i.e. before the caller returns
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::condition_variable cv;
};

void Drain(ForState& s) {
  for (;;) {
    const int64_t item = s.next.fetch_add(1, std::memory_order_relaxed);
    if (item >= s.n) return;
    s.fn(item);
    if (s.done.fetch_add(1, std::memory_order_acq_rel) + 1 == s.n) {
      std::lock_guard<std::mutex> lock(s.mu);
      s.cv.notify_all();
    }
  }
}

}  // namespace

ThreadPool& ThreadPool::Shared() {
  static ThreadPool* pool = new ThreadPool();
  return *pool;
}

int ThreadPool::num_workers() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(workers_.size());
}

void ThreadPool::EnsureWorkers(int count) {
  std::lock_guard<std::mutex> lock(mu_);
  while (static_cast<int>(workers_.size()) < count) {
    try {
      workers_.emplace_back([this] { WorkerLoop(); });
    } catch (const std::system_error&) {
      return;  // run with the workers we have; the caller still drains every item
    }
  }
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return !queue_.empty(); });
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void ThreadPool::ParallelFor(int64_t n, int max_threads, absl::FunctionRef<void(int64_t)> fn) {
  if (n <= 0) return;
  const int64_t helpers = std::min<int64_t>(max_threads, n) - 1;
  if (helpers <= 0) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  auto state = std::make_shared<ForState>(n, fn);
  EnsureWorkers(static_cast<int>(helpers));
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int64_t h = 0; h < helpers; ++h) queue_.emplace_back([state] { Drain(*state); });
  }
  cv_.notify_all();
  Drain(*state);
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->done.load(std::memory_order_acquire) == n; });
}

}  // namespace hbsa::internal
