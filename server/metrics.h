// server/metrics.h: every Prometheus metric of hbsa-server, owned by one object.
//
// Metrics owns the prometheus-cpp registry, every family (named hbsa_*, base units, histograms
// rather than summaries so they aggregate across pods) and the HTTP exposer that serves them at
// /metrics on --metrics-listen. The rest of the server records through the methods below; no
// other file touches prometheus-cpp. All methods are thread-safe.
#ifndef HBSA_SERVER_METRICS_H_
#define HBSA_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace hbsa::server {

// Stages of one request, for hbsa_stage_duration_seconds{stage}.
enum class Stage {
  kQueue = 0, kHostToDevice = 1, kKernel = 2, kDeviceToHost = 3,
  kParse = 4,     // wire bytes -> validated request
  kStaging = 5,   // request bytes -> staging memory
  kResponse = 6,  // output -> response message
};
inline constexpr int kNumStages = 7;

class Metrics {
 public:
  // `version` and `backend` label hbsa_build_info.
  Metrics(absl::string_view version, absl::string_view backend);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Serves /metrics on `address` (HOST:PORT). The exposer's own failure to bind is returned as
  // UNAVAILABLE (prometheus-cpp reports it by exception, caught here).
  absl::Status StartExposer(const std::string& address);

  // The latency histogram's bucket bounds: exponential from 100 us by x2 to ~60 s.
  static std::vector<double> LatencyBuckets();

  // One finished call (or one streamed request): counter by method and code, and latency.
  void RecordRequest(absl::string_view method, grpc::StatusCode code, double seconds);
  void ObserveStage(Stage stage, double seconds);
  void AddReceivedBytes(int64_t bytes);
  void AddSentBytes(int64_t bytes);
  void SetQueueDepth(int64_t depth);
  void SetInflight(int64_t inflight);
  // Useful work of one successful request.
  void AddWork(int64_t query_tokens, int64_t key_tokens, double flops);
  // Device memory in use / budget; `device` is the ordinal, or "cpu".
  void SetDeviceMemory(const std::string& device, int64_t used_bytes, int64_t budget_bytes);
  // Counter of requests run by one CUDA stream or CPU worker; create once, then Increment().
  prometheus::Counter* StreamCounter(const std::string& device, int stream);
  void IncrementStream(prometheus::Counter* counter);
  // Seconds one CUDA stream (or CPU worker) was busy with requests; create once, then Add.
  prometheus::Counter* StreamBusyCounter(const std::string& device, int stream);
  void AddStreamBusy(prometheus::Counter* counter, double seconds);
  // Host memory reserved by admitted requests (queued and running) / the admission budget.
  void SetAdmission(int64_t reserved_bytes, int64_t budget_bytes);
  // One admitted request ended without a result because its client cancelled (code CANCELLED)
  // or its deadline passed (DEADLINE_EXCEEDED), by the stage it was in: "queued", "staging"
  // or "running" (hbsa_abandoned_requests_total).
  void RecordAbandoned(absl::string_view stage, grpc::StatusCode code);
  // Requests merged into the launch that computed one successful request.
  void ObserveBatchSize(int requests);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_duration_;
  prometheus::Histogram* stage_[kNumStages];
  prometheus::Histogram* batch_size_;
  prometheus::Family<prometheus::Counter>* stream_busy_;
  prometheus::Counter* received_bytes_;
  prometheus::Counter* sent_bytes_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* inflight_;
  prometheus::Counter* query_tokens_;
  prometheus::Counter* key_tokens_;
  prometheus::Counter* flops_;
  prometheus::Family<prometheus::Gauge>* memory_used_;
  prometheus::Family<prometheus::Gauge>* memory_budget_;
  prometheus::Family<prometheus::Counter>* stream_requests_;
  prometheus::Gauge* admission_reserved_;
  prometheus::Gauge* admission_budget_;
  prometheus::Family<prometheus::Counter>* abandoned_;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_METRICS_H_
