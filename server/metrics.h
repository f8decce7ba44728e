// server/metrics.h: every Prometheus metric of hbsa-server, owned by one object.
//
// Metrics owns the prometheus-cpp registry, every family (named hbsa_*, base units, histograms
// rather than summaries so they aggregate across pods) and the HTTP exposer that serves them at
// /metrics on --metrics-listen. The rest of the server records through the methods below; no
// other file touches prometheus-cpp (process_metrics.cc and gpu_metrics.cc are collectables it
// serves). All methods are thread-safe.
//
// The `device` label of the latency and stage histograms is the executor's label, as on the
// other per-device families: "cpu" for the CPU backends, the GPU ordinal ("0", "1", ...) for
// CUDA; requests refused before any executor took them (bad input, queue full, draining) carry
// device="none".
#ifndef HBSA_SERVER_METRICS_H_
#define HBSA_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace prometheus {
class Collectable;
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace hbsa::server {

// The device label of requests that never reached an executor.
inline constexpr char kNoDevice[] = "none";

// Stages of one request, for hbsa_stage_duration_seconds{stage, device}.
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
  // UNAVAILABLE (prometheus-cpp reports it by exception, caught here). The process_* families
  // (process_metrics.h) are served from then on.
  absl::Status StartExposer(const std::string& address);
  // Serves `collectable`'s families too (e.g. the GPU collector, gpu_metrics.h), once the
  // exposer runs; kept alive until the Metrics object goes.
  void AddCollectable(std::shared_ptr<prometheus::Collectable> collectable);

  // The latency and stage histograms' bucket bounds, in seconds: 50 us, then 1-1.5-2-3-5-7.5
  // per decade from 100 us to 75 ms (where the service's latencies live: small requests in
  // fractions of a millisecond, large ones in tens), then 0.1 0.2 0.5 1 2 5 10 20 30 60.
  static std::vector<double> LatencyBuckets();

  // One finished call (or one streamed request): counter by method and code, and latency by
  // method and device (kNoDevice when no executor took it).
  void RecordRequest(absl::string_view method, grpc::StatusCode code, absl::string_view device,
                     double seconds);
  void ObserveStage(Stage stage, absl::string_view device, double seconds);
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

  // --- Sessions of resident K/V (session_store.h, session_service.h) ---
  // Per device ("cpu" or the ordinal): open sessions, pages in use and in the pool, bytes of
  // the pages in use.
  void SetSessionPool(const std::string& device, int64_t sessions, int64_t used_pages,
                      int64_t total_pages, int64_t resident_bytes);
  // One session evicted; `cause` is "ttl" or "lru".
  void AddSessionEviction(absl::string_view cause);
  // Server time of one successful Append, and of one successful AttendSession (a step).
  void ObserveSessionAppend(double seconds);
  void ObserveSessionStep(double seconds);

 private:
  void RegisterSessionFamilies();  // called once by the constructor
  prometheus::Family<prometheus::Gauge>* session_open_ = nullptr;
  prometheus::Family<prometheus::Gauge>* session_pages_used_ = nullptr;
  prometheus::Family<prometheus::Gauge>* session_pages_total_ = nullptr;
  prometheus::Family<prometheus::Gauge>* session_resident_bytes_ = nullptr;
  prometheus::Family<prometheus::Counter>* session_evictions_ = nullptr;
  prometheus::Histogram* session_append_ = nullptr;
  prometheus::Histogram* session_step_ = nullptr;
  // --- end of sessions ---

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_duration_;
  prometheus::Family<prometheus::Histogram>* stages_;
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
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;  // served by exposer_
  // The series of `family` labelled {key=value, device}, made on first use.
  prometheus::Histogram* HistogramFor(prometheus::Family<prometheus::Histogram>* family,
                                      absl::string_view key, absl::string_view value,
                                      absl::string_view device);
  std::mutex histograms_mu_;
  std::unordered_map<std::string, prometheus::Histogram*> histograms_;  // by "key=value,device"
  prometheus::Gauge* admission_reserved_;
  prometheus::Gauge* admission_budget_;
  prometheus::Family<prometheus::Counter>* abandoned_;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_METRICS_H_
