// server/metrics.cc: the registry, families and exposer of hbsa-server (see metrics.h).
#include "metrics.h"

#include <exception>
#include <mutex>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "process_metrics.h"
#include "status_map.h"

namespace hbsa::server {

namespace {

constexpr const char* kStageNames[kNumStages] = {"queue", "h2d", "kernel", "d2h",
                                                 "parse", "staging", "response"};

}  // namespace

std::vector<double> Metrics::LatencyBuckets() {
  // Literals, not products, so that the `le` labels read as written: prometheus-cpp prints 16
  // digits, and both 7 * 0.01 and 0.07 itself print as 0.07000000000000001 (hence 7.5).
  return {50e-6,                                                 // below: nothing real
          100e-6, 150e-6, 200e-6, 300e-6, 500e-6, 750e-6,        // small requests
          1e-3,   1.5e-3, 2e-3,   3e-3,   5e-3,   7.5e-3,        // mid-size, CPU and GPU
          10e-3,  15e-3,  20e-3,  30e-3,  50e-3,  75e-3,         // large on the GPU
          0.1,    0.2,    0.5,    1,      2,      5,      10,    20,   30, 60};  // 29 bounds
}

Metrics::Metrics(absl::string_view version, absl::string_view backend)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  requests_ = &BuildCounter().Name("hbsa_requests_total")
                   .Help("Requests answered, by RPC method and gRPC status code (one per streamed request)")
                   .Register(*registry_);
  request_duration_ = &BuildHistogram().Name("hbsa_request_duration_seconds")
                           .Help("End-to-end server latency: request received until its response was ready")
                           .Register(*registry_);
  stages_ = &BuildHistogram().Name("hbsa_stage_duration_seconds")
                     .Help("Time per stage of a request: queue wait, parse (wire bytes to validated "
                           "request), staging (request bytes to staging memory), host-to-device, "
                           "kernel, device-to-host, response (output to response message)")
                     .Register(*registry_);
  batch_size_ = &BuildHistogram().Name("hbsa_batch_size_requests")
                     .Help("Requests merged into the launch that computed each successful request (1 = alone)")
                     .Register(*registry_)
                     .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128});
  stream_busy_ = &BuildCounter().Name("hbsa_stream_busy_seconds_total")
                      .Help("Seconds each CUDA stream (or CPU worker thread) spent on requests, from its "
                            "first copy to its last (device time by CUDA events)")
                      .Register(*registry_);
  received_bytes_ = &BuildCounter().Name("hbsa_received_bytes_total")
                         .Help("Request payload bytes received").Register(*registry_).Add({});
  sent_bytes_ = &BuildCounter().Name("hbsa_sent_bytes_total")
                     .Help("Response payload bytes sent").Register(*registry_).Add({});
  queue_depth_ = &BuildGauge().Name("hbsa_queue_depth")
                      .Help("Requests admitted and waiting for an executor").Register(*registry_).Add({});
  inflight_ = &BuildGauge().Name("hbsa_inflight_requests")
                   .Help("Requests admitted and not finished").Register(*registry_).Add({});
  auto& tokens = BuildCounter().Name("hbsa_tokens_total")
                     .Help("Tokens processed by successful requests, by side").Register(*registry_);
  query_tokens_ = &tokens.Add({{"side", "query"}});
  key_tokens_ = &tokens.Add({{"side", "key"}});
  flops_ = &BuildCounter().Name("hbsa_flops_total")
                .Help("Effective floating-point operations: 4 * D * allowed (query, key, head) triples")
                .Register(*registry_).Add({});
  memory_used_ = &BuildGauge().Name("hbsa_device_memory_used_bytes")
                      .Help("Working memory reserved by requests in flight, per device").Register(*registry_);
  memory_budget_ = &BuildGauge().Name("hbsa_device_memory_budget_bytes")
                        .Help("Working memory budget per device").Register(*registry_);
  stream_requests_ = &BuildCounter().Name("hbsa_stream_requests_total")
                          .Help("Requests run per CUDA stream (or CPU worker thread)").Register(*registry_);
  admission_reserved_ = &BuildGauge().Name("hbsa_admission_reserved_bytes")
                             .Help("Host memory reserved by admitted requests, queued and running")
                             .Register(*registry_).Add({});
  admission_budget_ = &BuildGauge().Name("hbsa_admission_budget_bytes")
                           .Help("Host memory admitted requests may reserve in all (--admission-budget-bytes)")
                           .Register(*registry_).Add({});
  abandoned_ = &BuildCounter().Name("hbsa_abandoned_requests_total")
                    .Help("Admitted requests dropped without a result because the client cancelled "
                          "(reason cancelled) or the deadline passed (reason deadline_exceeded), by "
                          "the stage they were in: queued, staging or running")
                    .Register(*registry_);
  BuildGauge().Name("hbsa_build_info").Help("Build information; always 1")
      .Register(*registry_)
      .Add({{"version", std::string(version)}, {"backend", std::string(backend)}})
      .Set(1);
  RegisterSessionFamilies();
}

Metrics::~Metrics() = default;

absl::Status Metrics::StartExposer(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
    exposer_->RegisterCollectable(registry_);
    AddCollectable(std::make_shared<ProcessCollector>());
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen ", address, ": cannot serve /metrics: ", e.what()));
  }
  return absl::OkStatus();
}

void Metrics::AddCollectable(std::shared_ptr<prometheus::Collectable> collectable) {
  collectables_.push_back(collectable);
  if (exposer_ != nullptr) exposer_->RegisterCollectable(collectable);
}

prometheus::Histogram* Metrics::HistogramFor(prometheus::Family<prometheus::Histogram>* family,
                                             absl::string_view key, absl::string_view value,
                                             absl::string_view device) {
  const std::string id = absl::StrCat(key, "=", value, ",", device);
  std::lock_guard<std::mutex> lock(histograms_mu_);
  prometheus::Histogram*& h = histograms_[id];
  // Family::Add builds (and drops) a histogram even when the series exists: do it once.
  if (h == nullptr) {
    h = &family->Add({{std::string(key), std::string(value)}, {"device", std::string(device)}},
                     LatencyBuckets());
  }
  return h;
}

void Metrics::RecordRequest(absl::string_view method, grpc::StatusCode code,
                            absl::string_view device, double seconds) {
  requests_->Add({{"method", std::string(method)}, {"code", StatusCodeName(code)}}).Increment();
  HistogramFor(request_duration_, "method", method, device)->Observe(seconds);
}

void Metrics::ObserveStage(Stage stage, absl::string_view device, double seconds) {
  HistogramFor(stages_, "stage", kStageNames[static_cast<int>(stage)], device)->Observe(seconds);
}

void Metrics::AddReceivedBytes(int64_t bytes) { received_bytes_->Increment(static_cast<double>(bytes)); }
void Metrics::AddSentBytes(int64_t bytes) { sent_bytes_->Increment(static_cast<double>(bytes)); }
void Metrics::SetQueueDepth(int64_t depth) { queue_depth_->Set(static_cast<double>(depth)); }
void Metrics::SetInflight(int64_t inflight) { inflight_->Set(static_cast<double>(inflight)); }

void Metrics::AddWork(int64_t query_tokens, int64_t key_tokens, double flops) {
  query_tokens_->Increment(static_cast<double>(query_tokens));
  key_tokens_->Increment(static_cast<double>(key_tokens));
  flops_->Increment(flops);
}

void Metrics::SetDeviceMemory(const std::string& device, int64_t used, int64_t budget) {
  memory_used_->Add({{"device", device}}).Set(static_cast<double>(used));
  memory_budget_->Add({{"device", device}}).Set(static_cast<double>(budget));
}

prometheus::Counter* Metrics::StreamCounter(const std::string& device, int stream) {
  return &stream_requests_->Add({{"device", device}, {"stream", absl::StrCat(stream)}});
}

void Metrics::IncrementStream(prometheus::Counter* counter) { counter->Increment(); }

prometheus::Counter* Metrics::StreamBusyCounter(const std::string& device, int stream) {
  return &stream_busy_->Add({{"device", device}, {"stream", absl::StrCat(stream)}});
}

void Metrics::AddStreamBusy(prometheus::Counter* counter, double seconds) {
  if (seconds > 0) counter->Increment(seconds);
}

void Metrics::SetAdmission(int64_t reserved, int64_t budget) {
  admission_reserved_->Set(static_cast<double>(reserved));
  admission_budget_->Set(static_cast<double>(budget));
}

void Metrics::RecordAbandoned(absl::string_view stage, grpc::StatusCode code) {
  const char* reason = code == grpc::StatusCode::DEADLINE_EXCEEDED ? "deadline_exceeded" : "cancelled";
  abandoned_->Add({{"stage", std::string(stage)}, {"reason", reason}}).Increment();
}

void Metrics::ObserveBatchSize(int requests) { batch_size_->Observe(requests); }

// --- Sessions of resident K/V ---

void Metrics::RegisterSessionFamilies() {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  session_open_ = &BuildGauge().Name("hbsa_sessions_open")
                       .Help("Sessions of resident K/V open, per device").Register(*registry_);
  session_pages_used_ = &BuildGauge().Name("hbsa_session_pages_used")
                             .Help("Pages of the session page pool in use (page tables and "
                                   "reservations), per device").Register(*registry_);
  session_pages_total_ = &BuildGauge().Name("hbsa_session_pages_total")
                              .Help("Pages in the session page pool, per device").Register(*registry_);
  session_resident_bytes_ = &BuildGauge().Name("hbsa_session_resident_bytes")
                                 .Help("Bytes of the session pages in use, per device").Register(*registry_);
  session_evictions_ = &BuildCounter().Name("hbsa_session_evictions_total")
                            .Help("Sessions evicted, by cause: ttl (idle past its TTL) or lru (least "
                                  "recently used, to make room in a full pool)").Register(*registry_);
  for (const char* cause : {"ttl", "lru"}) session_evictions_->Add({{"cause", cause}});
  session_append_ = &BuildHistogram().Name("hbsa_session_append_duration_seconds")
                         .Help("Server time of one successful Append (checks, pages, copy)")
                         .Register(*registry_).Add({}, LatencyBuckets());
  session_step_ = &BuildHistogram().Name("hbsa_session_step_duration_seconds")
                       .Help("Server time of one successful AttendSession: received until the "
                             "response was ready (append, gather, queue, compute)")
                       .Register(*registry_).Add({}, LatencyBuckets());
}

void Metrics::SetSessionPool(const std::string& device, int64_t sessions, int64_t used_pages,
                             int64_t total_pages, int64_t resident_bytes) {
  session_open_->Add({{"device", device}}).Set(static_cast<double>(sessions));
  session_pages_used_->Add({{"device", device}}).Set(static_cast<double>(used_pages));
  session_pages_total_->Add({{"device", device}}).Set(static_cast<double>(total_pages));
  session_resident_bytes_->Add({{"device", device}}).Set(static_cast<double>(resident_bytes));
}

void Metrics::AddSessionEviction(absl::string_view cause) {
  session_evictions_->Add({{"cause", std::string(cause)}}).Increment();
}

void Metrics::ObserveSessionAppend(double seconds) { session_append_->Observe(seconds); }
void Metrics::ObserveSessionStep(double seconds) { session_step_->Observe(seconds); }

// --- end of sessions ---

}  // namespace hbsa::server
