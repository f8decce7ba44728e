// server/metrics.cc: the registry, families and exposer of hbsa-server (see metrics.h).
#include "metrics.h"

#include <exception>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "status_map.h"

namespace hbsa::server {

std::vector<double> Metrics::LatencyBuckets() {
  std::vector<double> b;
  for (double x = 100e-6; x < 70.0; x *= 2) b.push_back(x);  // 100 us ... ~52 s, 20 buckets
  return b;
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
  for (const char* method : {"Attend", "AttendStream", "GetCapabilities"}) {
    request_duration_->Add({{"method", method}}, LatencyBuckets());
  }
  auto& stages = BuildHistogram().Name("hbsa_stage_duration_seconds")
                     .Help("Time per stage of a request: queue wait, parse (wire bytes to validated "
                           "request), staging (request bytes to staging memory), host-to-device, "
                           "kernel, device-to-host, response (output to response message)")
                     .Register(*registry_);
  const char* stage_names[kNumStages] = {"queue", "h2d", "kernel", "d2h", "parse", "staging", "response"};
  for (int i = 0; i < kNumStages; ++i) stage_[i] = &stages.Add({{"stage", stage_names[i]}}, LatencyBuckets());
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
}

Metrics::~Metrics() = default;

absl::Status Metrics::StartExposer(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
    exposer_->RegisterCollectable(registry_);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen ", address, ": cannot serve /metrics: ", e.what()));
  }
  return absl::OkStatus();
}

void Metrics::RecordRequest(absl::string_view method, grpc::StatusCode code, double seconds) {
  requests_->Add({{"method", std::string(method)}, {"code", StatusCodeName(code)}}).Increment();
  request_duration_->Add({{"method", std::string(method)}}, LatencyBuckets()).Observe(seconds);
}

void Metrics::ObserveStage(Stage stage, double seconds) {
  stage_[static_cast<int>(stage)]->Observe(seconds);
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

}  // namespace hbsa::server
