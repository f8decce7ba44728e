// thread_pool.h (internal): the process-wide worker pool behind the fast CPU backend.
//
// ParallelFor hands out the items [0, n) one at a time from an atomic counter (dynamic
// scheduling, so uneven items balance) to at most `max_threads` threads, the calling thread
// included. The caller always works on items itself, so a call completes even when every pool
// worker is busy with another call or a worker thread could not be created: helpers only ever
// speed a call up. Workers are started lazily, kept for the life of the process and shared by
// concurrent calls. fn must not throw.
#ifndef HBSA_CPU_THREAD_POOL_H_
#define HBSA_CPU_THREAD_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace hbsa::internal {

class ThreadPool {
 public:
  // The shared pool (never destroyed: workers may still sleep in it at process exit).
  static ThreadPool& Shared();

  // Runs fn(item) for every item in [0, n) on up to max_threads threads (the caller counts as
  // one; max_threads <= 1 runs everything inline). Returns after every fn call has returned.
  void ParallelFor(int64_t n, int max_threads, absl::FunctionRef<void(int64_t)> fn);

  // Number of worker threads started so far (for tests).
  int num_workers();

 private:
  ThreadPool() = default;
  // Starts workers until there are at least `count` (fewer if thread creation fails).
  void EnsureWorkers(int count);
  void WorkerLoop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  std::vector<std::thread> workers_;         // guarded by mu_
};

}  // namespace hbsa::internal

#endif  // HBSA_CPU_THREAD_POOL_H_
