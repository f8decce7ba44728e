// bench_runner.cc: see bench_runner.h. Calls are asynchronous (Client::AttendAsync), so one
// client thread keeps any number of requests in flight; a LoadState records every completion
// with its time, and the windows are cut afterwards from those records.
#include "bench_runner.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace hbsa::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct Record {
  Clock::time_point done;  // completion time
  double latency_s;        // issue to completion
  bool ok;
};

// Shared by the issuing code and the completion callbacks (which run on gRPC threads).
class LoadState : public std::enable_shared_from_this<LoadState> {
 public:
  LoadState(const client::Client& client, const Workload& w, const RunConfig& config,
            bool reissue)
      : client_(client), request_(w.request), config_(config), reissue_(reissue) {}

  // Starts one call (unless stopped); with `reissue`, its completion starts the next.
  void Issue() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
      ++outstanding_;
    }
    auto self = shared_from_this();
    const Clock::time_point t0 = Clock::now();
    client_.AttendAsync(request_, config_.call, [self, t0](absl::StatusOr<client::AttendResult> r) {
      self->OnDone(t0, std::move(r));
    });
  }

  void Stop() {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }

  // Waits until no call is in flight; false on timeout.
  bool WaitIdle(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [this] { return outstanding_ == 0; });
  }

  int64_t outstanding() {
    std::lock_guard<std::mutex> l(mu_);
    return outstanding_;
  }

  // Copies of the records and samples collected so far.
  std::vector<Record> records() {
    std::lock_guard<std::mutex> l(mu_);
    return records_;
  }
  std::vector<client::AttendResult> TakeSamples() {
    std::lock_guard<std::mutex> l(mu_);
    return std::move(samples_);
  }
  std::map<std::string, int64_t> error_codes() {
    std::lock_guard<std::mutex> l(mu_);
    return error_codes_;
  }
  int64_t payload_bytes() {
    std::lock_guard<std::mutex> l(mu_);
    return payload_bytes_;
  }

 private:
  void OnDone(Clock::time_point t0, absl::StatusOr<client::AttendResult> r) {
    const Clock::time_point now = Clock::now();
    bool again;
    {
      std::lock_guard<std::mutex> l(mu_);
      records_.push_back({now, std::chrono::duration<double>(now - t0).count(), r.ok()});
      if (!r.ok()) {
        ++error_codes_[absl::StatusCodeToString(r.status().code())];
      } else {
        payload_bytes_ = r->request_bytes + r->response_bytes;
        if (static_cast<int64_t>(samples_.size()) < config_.max_checks &&
            config_.check_fraction > 0 && pick_(rng_) < config_.check_fraction) {
          samples_.push_back(*std::move(r));
        }
      }
      --outstanding_;
      again = reissue_ && !stop_;
      cv_.notify_all();
    }
    if (again) Issue();
  }

  const client::Client& client_;
  std::shared_ptr<const v1::AttendRequest> request_;
  const RunConfig config_;
  const bool reissue_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t outstanding_ = 0;
  int64_t payload_bytes_ = 0;
  std::vector<Record> records_;
  std::vector<client::AttendResult> samples_;
  std::map<std::string, int64_t> error_codes_;
  std::mt19937_64 rng_{12345};
  std::uniform_real_distribution<double> pick_{0.0, 1.0};
};

absl::Status WarmUp(const client::Client& client, const Workload& w, const RunConfig& config) {
  for (int64_t i = 0; i < config.warmup_requests; ++i) {
    absl::StatusOr<client::AttendResult> r = client.Attend(*w.request, config.call);
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// Cuts windows out of the running load until stable or max_windows, then fills `out` from the
// chosen windows' records. Stops the load and waits for it before returning.
void MeasureWindows(LoadState& state, const Workload& w, const RunConfig& config,
                    LevelResult* out) {
  struct Window {
    Clock::time_point begin, end;
    double throughput;
  };
  std::vector<Window> windows;
  size_t first = 0;
  for (int i = 0; i < config.max_windows; ++i) {
    const Clock::time_point begin = Clock::now();
    std::this_thread::sleep_until(begin + config.window);
    const Clock::time_point end = Clock::now();
    int64_t ok = 0;
    for (const Record& r : state.records()) ok += (r.ok && r.done >= begin && r.done < end);
    windows.push_back({begin, end, ok / std::chrono::duration<double>(end - begin).count()});
    if (static_cast<int>(windows.size()) >= config.stable_windows) {
      first = windows.size() - config.stable_windows;
      double lo = windows[first].throughput, hi = lo;
      for (size_t k = first; k < windows.size(); ++k) {
        lo = std::min(lo, windows[k].throughput);
        hi = std::max(hi, windows[k].throughput);
      }
      if (lo > 0 && hi / lo - 1 <= config.stability) {
        out->stable = true;
        break;
      }
    }
  }
  state.Stop();
  // Calls carry deadlines, so this wait is bounded; the extra second covers callback delivery.
  const auto wait = config.call.timeout.count() > 0 ? config.call.timeout + std::chrono::seconds(1)
                                                    : std::chrono::milliseconds(120000);
  state.WaitIdle(wait);

  out->windows = static_cast<int>(windows.size());
  const Clock::time_point begin = windows[first].begin, end = windows.back().end;
  out->seconds = std::chrono::duration<double>(end - begin).count();
  std::vector<double> lat;
  int64_t ok = 0;
  double sum = 0;
  for (const Record& r : state.records()) {
    if (r.done < begin || r.done >= end) continue;
    ++out->requests;
    if (!r.ok) {
      ++out->errors;
      continue;
    }
    ++ok;
    lat.push_back(r.latency_s * 1e3);
    sum += r.latency_s * 1e3;
  }
  std::sort(lat.begin(), lat.end());
  out->error_codes = state.error_codes();
  out->throughput_rps = out->seconds > 0 ? ok / out->seconds : 0;
  out->payload_gbps = out->throughput_rps * static_cast<double>(state.payload_bytes()) / 1e9;
  out->latency_mean_ms = lat.empty() ? 0 : sum / lat.size();
  out->p50_ms = Percentile(lat, 0.50);
  out->p90_ms = Percentile(lat, 0.90);
  out->p95_ms = Percentile(lat, 0.95);
  out->p99_ms = Percentile(lat, 0.99);
  out->max_ms = lat.empty() ? 0 : lat.back();

  for (const client::AttendResult& r : state.TakeSamples()) {
    const golden::Comparison c = golden::Compare(w.data, r.dtype, r.out.data(),
                                                 r.has_lse ? r.lse.data() : nullptr);
    ++out->checks;
    out->max_abs_err = std::max(out->max_abs_err, c.max_abs_err_out);
    if (!c.pass()) {
      if (out->check_failures++ == 0) out->first_check_failure = c.first_failure;
    }
  }
}

}  // namespace

absl::StatusOr<LevelResult> RunConcurrencyLevel(const client::Client& client, const Workload& w,
                                                int64_t concurrency, const RunConfig& config) {
  if (absl::Status s = WarmUp(client, w, config); !s.ok()) return s;
  LevelResult out;
  out.mode = "concurrency";
  out.concurrency = concurrency;
  auto state = std::make_shared<LoadState>(client, w, config, /*reissue=*/true);
  for (int64_t i = 0; i < concurrency; ++i) state->Issue();
  MeasureWindows(*state, w, config, &out);
  return out;
}

absl::StatusOr<LevelResult> RunRateLevel(const client::Client& client, const Workload& w,
                                         double rate, const RunConfig& config) {
  if (absl::Status s = WarmUp(client, w, config); !s.ok()) return s;
  LevelResult out;
  out.mode = "rate";
  out.request_rate = rate;
  auto state = std::make_shared<LoadState>(client, w, config, /*reissue=*/false);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> skipped{0};
  // Poisson arrivals on their own thread; bounded by `stop` and by a hard count (twice what
  // the longest possible measurement would need).
  const double max_seconds =
      config.max_windows * std::chrono::duration<double>(config.window).count();
  const int64_t hard_cap = static_cast<int64_t>(2 * rate * max_seconds) + 1000;
  std::thread dispatcher([&] {
    std::mt19937_64 rng(777);
    std::exponential_distribution<double> gap(rate);
    Clock::time_point next = Clock::now();
    for (int64_t n = 0; n < hard_cap && !stop.load(); ++n) {
      next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
      std::this_thread::sleep_until(next);
      if (state->outstanding() >= config.max_outstanding) {
        ++skipped;
      } else {
        state->Issue();
      }
    }
  });
  MeasureWindows(*state, w, config, &out);  // stops the state: later Issue()s are no-ops
  stop = true;
  dispatcher.join();
  state->WaitIdle(std::chrono::seconds(5));
  out.skipped = skipped.load();
  return out;
}

}  // namespace hbsa::tools
