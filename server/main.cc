// server/main.cc: hbsa-server, the process. Wires config -> metrics -> scheduler -> executors
// -> gRPC service (credentials and token check from security.h), runs warm-up, then serves
// until SIGTERM/SIGINT (graceful drain, exit 0) or a sticky GPU error (NOT_SERVING, in-flight
// calls UNAVAILABLE, exit 3). SIGHUP re-reads the token file and checks the TLS files.
//
// Health (grpc.health.v1) for "" and "hbsa.v1.Attention": NOT_SERVING from start until
// warm-up succeeded, SERVING while serving, NOT_SERVING again from the moment a drain starts;
// the same on the optional plaintext --health-listen port, and in the Open Inference Protocol's
// ServerReady/ModelReady (ServerLive turns false on a GPU failure). The v2 front end
// (inference.GRPCInferenceService, oip_service.h) is served on --listen beside hbsa.v1. Reflection only with --reflection.
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "admission.h"
#include "config.h"
#include "cpu_executor.h"
#include "cuda_seam.h"
#include "fault_executor.h"
#include "hbsa/attention.h"
#include "hbsa/device_status.h"
#include "gpu_metrics.h"
#include "metrics.h"
#include "scheduler.h"
#include "security.h"
#include "oip_service.h"
#include "service.h"
#include "serving_state.h"
#include "session_service.h"
#include "session_store.h"
#include "shm.h"
#include "warmup.h"

#ifndef HBSA_VERSION
#define HBSA_VERSION "0.0.0"
#endif

namespace hbsa::server {
namespace {

constexpr int kExitConfig = 2;
constexpr int kExitGpuFatal = 3;
constexpr const char* kServiceName = "hbsa.v1.Attention";

// What ends serving: a signal or a fatal executor error, whichever comes first.
struct StopEvent {
  std::mutex mu;
  std::condition_variable cv;
  int signal = 0;
  std::string fatal;  // non-empty once an executor is unusable
};

// grpc.health.v1 of `server`, and the v2 front end's readiness (`state`, when given) with it.
void SetHealth(grpc::Server* server, bool serving, ServingState* state = nullptr) {
  if (state != nullptr) state->SetReady(serving);
  if (server == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  health->SetServingStatus(kServiceName, serving);
}

// The --health-listen port's only other service: every method but grpc.health.v1 is
// UNIMPLEMENTED there (gRPC needs a callback service to run a server without completion queues).
class NothingElse final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Refuse final : public grpc::ServerGenericBidiReactor {
     public:
      Refuse() {
        Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                            "this port serves grpc.health.v1 only; see --listen"));
      }
      void OnDone() override { delete this; }
    };
    return new Refuse();
  }
};

// Removes gRPC's reflection plugin from a builder. Linking grpc++_reflection registers the plugin
// for every ServerBuilder at load time, so "off" has to take it out again.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
      return p->name() == "proto_server_reflection";
    });
  }
};

// SIGHUP: re-read the token file and check the TLS files (which gRPC's watcher re-reads on its
// own when they change).
void Reload(const ServerConfig& config, TokenAuth* auth) {
  if (auth != nullptr) {
    if (absl::Status s = auth->Reload(); !s.ok()) {
      spdlog::error("SIGHUP: token not reloaded, the old one stays in force: {}",
                    std::string(s.message()));
    } else {
      spdlog::info("SIGHUP: token re-read");
    }
  }
  if (!config.tls_cert_file.empty()) {
    if (absl::Status s = CheckTlsFiles(config); !s.ok()) {
      spdlog::error("SIGHUP: TLS files are broken; new connections keep the last good ones: {}",
                    std::string(s.message()));
    } else {
      spdlog::info("SIGHUP: TLS files readable; changes are picked up within {} s",
                   config.tls_reload_seconds);
    }
  }
}

v1::Capabilities BuildCapabilities(const ServerConfig& config, const std::string& backend,
                                   const std::vector<std::unique_ptr<Executor>>& executors,
                                   int64_t budget) {
  v1::Capabilities caps;
  caps.set_server_version(HBSA_VERSION);
  caps.set_backend(backend);
  for (Backend b : {Backend::kReference, Backend::kCpu, Backend::kCuda}) {
    if (BackendCompiled(b)) caps.add_compiled_backends(std::string(BackendName(b)));
  }
  for (const auto& e : executors) e->Describe(&caps);
  for (v1::DType d : {v1::DTYPE_FLOAT16, v1::DTYPE_BFLOAT16, v1::DTYPE_FLOAT32}) caps.add_dtypes(d);
  for (const char* f : {"dense", "per_sequence", "compact"}) caps.add_mask_formats(f);
  v1::Limits* l = caps.mutable_limits();
  l->set_max_message_bytes(config.max_message_bytes);
  l->set_max_queue_length(config.queue_length);
  l->set_memory_budget_bytes(budget);
  l->set_max_head_dim(kMaxHeadDim);
  l->set_max_heads(kMaxHeads);
  l->set_max_block_size(kMaxBlockSize);
  return caps;
}

// auto -> cuda when the build has CUDA and a GPU is visible, else cpu.
BackendChoice ResolveBackend(BackendChoice choice) {
  if (choice != BackendChoice::kAuto) return choice;
  return CudaDeviceCount() > 0 ? BackendChoice::kCuda : BackendChoice::kCpu;
}

BatchPolicy Batching(const ServerConfig& config) {
  BatchPolicy p;
  p.max_tokens = config.batch_max_tokens;
  p.max_delay = std::chrono::microseconds(config.batch_max_delay_us);
  return p;
}

// GPU utilisation, memory, power and temperature of the GPUs the executors run on, through NVML
// (gpu_metrics.h). Without NVML, or on the CPU, the families are absent: logged, not fatal.
void WatchGpus(const std::vector<std::unique_ptr<Executor>>& executors, Metrics* metrics) {
  std::vector<WatchedGpu> gpus;
  for (const auto& e : executors) {
    if (e->device() < 0) continue;
    absl::StatusOr<std::string> bus = CudaPciBusId(e->device());
    if (!bus.ok()) {
      spdlog::warn("GPU metrics off: {}", std::string(bus.status().message()));
      return;
    }
    gpus.push_back({absl::StrCat(e->device()), *bus});
  }
  if (gpus.empty()) return;
  absl::StatusOr<NvmlApi> nvml = LoadNvml();
  absl::StatusOr<std::shared_ptr<GpuCollector>> collector =
      nvml.ok() ? GpuCollector::Make(*nvml, gpus) : nvml.status();
  if (!collector.ok()) {
    spdlog::warn("GPU metrics off: {}", std::string(collector.status().message()));
    return;
  }
  metrics->AddCollectable(*std::move(collector));
  spdlog::info("GPU metrics from NVML for {} GPU(s)", gpus.size());
}

// Creates the executors for the resolved backend `choice`.
absl::Status MakeExecutors(const ServerConfig& config, BackendChoice choice, Scheduler* scheduler,
                           Metrics* metrics, ShmRegistry* shm, FatalHandler on_fatal,
                           std::vector<std::unique_ptr<Executor>>* out) {
  if (config.test_device_lost_after >= 0) {
    out->push_back(std::make_unique<FaultExecutor>(config.test_device_lost_after, scheduler,
                                                   std::move(on_fatal)));
    return absl::OkStatus();
  }
  if (choice == BackendChoice::kCuda) {
    const int count = CudaDeviceCount();
    std::vector<int> devices = config.devices;
    if (devices.empty()) {
      for (int d = 0; d < count; ++d) devices.push_back(d);
    }
    if (devices.empty()) return absl::UnavailableError("--backend cuda: no CUDA device is visible");
    for (int d : devices) {
      if (d >= count) {
        return absl::InvalidArgumentError(absl::StrCat("--devices: device ", d, " does not exist (",
                                                       count, " visible)"));
      }
      CudaExecutorOptions o;
      o.device = d;
      o.streams = config.streams_per_device;
      o.memory_budget_bytes = config.memory_budget_bytes;
      o.staging_threads = config.staging_threads;
      o.host_staging_bytes = config.host_staging_bytes;
      o.batch = Batching(config);
      o.shm = shm;
      absl::StatusOr<std::unique_ptr<Executor>> e = MakeCudaExecutor(o, scheduler, metrics, on_fatal);
      if (!e.ok()) return e.status();
      out->push_back(std::move(*e));
    }
    return absl::OkStatus();
  }
  CpuExecutorOptions o;
  o.backend = choice == BackendChoice::kReference ? Backend::kReference : Backend::kCpu;
  o.threads = config.cpu_threads;
  o.memory_budget_bytes = config.memory_budget_bytes;
  o.test_delay_ms = config.test_executor_delay_ms;
  o.batch = Batching(config);
  out->push_back(std::make_unique<CpuExecutor>(o, scheduler, metrics));
  return absl::OkStatus();
}

int Serve(const ServerConfig& config, const sigset_t& signals) {
  absl::StatusOr<std::shared_ptr<TokenAuth>> auth = TokenAuth::FromConfig(config);
  if (!auth.ok()) {
    spdlog::error("{}", std::string(auth.status().message()));
    return kExitConfig;
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(config, *auth);
  if (!credentials.ok()) {
    spdlog::error("{}", std::string(credentials.status().message()));
    return kExitConfig;
  }
  static StopEvent stop;  // outlives the detached signal thread
  std::thread([signals, config, auth = *auth] {
    while (true) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) return;
      if (sig == SIGHUP) {
        Reload(config, auth.get());
        continue;
      }
      std::lock_guard<std::mutex> lock(stop.mu);
      stop.signal = sig;
      stop.cv.notify_all();
      return;
    }
  }).detach();
  FatalHandler on_fatal = [](const std::string& reason) {
    std::lock_guard<std::mutex> lock(stop.mu);
    if (stop.fatal.empty()) stop.fatal = reason;
    stop.cv.notify_all();
  };

  // The metrics object is created first and destroyed last: everything records into it.
  const BackendChoice choice = ResolveBackend(config.backend);
  const std::string backend_name = BackendChoiceName(choice);
  Metrics metrics(HBSA_VERSION, backend_name);
  if (absl::Status s = metrics.StartExposer(config.metrics_listen); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return kExitConfig;
  }
  // Declared before the scheduler: queued jobs hold reservations of it until they are dropped.
  std::unique_ptr<AdmissionBudget> admission;
  Scheduler scheduler(config.queue_length, &metrics);
  // Shared-memory registrations; the CUDA executor pins them for DMA (hooks set below).
  ShmRegistry shm(choice == BackendChoice::kCuda ? CudaShmMapHook() : ShmRegistry::MapHook(),
                  choice == BackendChoice::kCuda ? CudaShmUnmapHook() : ShmRegistry::UnmapHook());
  std::vector<std::unique_ptr<Executor>> executors;
  if (absl::Status s = MakeExecutors(config, choice, &scheduler, &metrics, &shm, on_fatal, &executors);
      !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return kExitConfig;
  }
  int64_t budget = 0;
  for (auto& e : executors) {
    if (absl::Status s = e->Start(); !s.ok()) {
      spdlog::error("executor start failed: {}", std::string(s.message()));
      scheduler.Stop(absl::UnavailableError("server failed to start"));
      for (auto& x : executors) x->Stop();
      return kExitConfig;
    }
    budget = budget == 0 ? e->memory_budget_bytes() : std::min(budget, e->memory_budget_bytes());
  }
  WatchGpus(executors, &metrics);

  // Host memory of all admitted work (admission.h). Default: the executor budget on the CPU
  // (the same memory), 4 GiB per GPU on CUDA (messages, masks and outputs live on the host).
  const int64_t admission_bytes =
      config.admission_budget_bytes > 0 ? config.admission_budget_bytes
      : choice == BackendChoice::kCuda  ? (int64_t{4} << 30) * static_cast<int64_t>(executors.size())
                                        : budget;
  admission = std::make_unique<AdmissionBudget>(admission_bytes, &metrics);
  ServiceOptions options;
  options.limits.max_message_bytes = config.max_message_bytes;
  options.limits.memory_budget_bytes = budget;
  options.limits.admission = admission.get();
  options.stream_max_inflight = config.stream_max_inflight;
  options.capabilities = BuildCapabilities(config, executors.front()->backend(), executors, budget);
  AttentionService service(options, &scheduler, &metrics, &shm);
  // The Open Inference Protocol v2 front end on the same port, over the same pipeline.
  ServingState serving;
  OipService oip_service(&service, &serving, HBSA_VERSION);
  // Sessions of resident K/V: one page pool per executor device (host memory in this step).
  SessionStoreOptions so;
  so.devices.clear();
  for (const auto& e : executors) so.devices.push_back(e->device());
  so.memory_bytes_per_device = config.session_memory_bytes;
  so.page_bytes = config.session_page_bytes;
  so.default_ttl_seconds = config.session_ttl_seconds;
  so.max_ttl_seconds = config.session_max_ttl_seconds;
  so.evict_lru = config.session_evict_lru;
  so.max_sessions = config.session_max;
  SessionStore sessions(so, &metrics);
  SessionService session_service(options.limits, &sessions, &scheduler, &metrics, &service);

  grpc::EnableDefaultHealthCheckService(true);
  // The health-only port carries neither reflection nor the API.
  NothingElse nothing_else;
  std::unique_ptr<grpc::Server> health_server;
  if (!config.health_listen.empty()) {
    grpc::ServerBuilder hb;
    int health_port = 0;
    hb.AddListeningPort(config.health_listen, grpc::InsecureServerCredentials(), &health_port);
    hb.RegisterCallbackGenericService(&nothing_else);
    hb.SetOption(std::make_unique<WithoutReflection>());
    health_server = hb.BuildAndStart();
    if (health_server == nullptr || health_port == 0) {
      spdlog::error("--health-listen {}: cannot listen", config.health_listen);
      scheduler.Stop(absl::UnavailableError("server failed to start"));
      for (auto& e : executors) e->Stop();
      return kExitConfig;
    }
    SetHealth(health_server.get(), false);
  }
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!config.reflection) builder.SetOption(std::make_unique<WithoutReflection>());
  int port = 0;
  builder.AddListeningPort(config.listen, *credentials, &port);
  builder.RegisterService(&service);
  builder.RegisterService(&oip_service);
  builder.RegisterService(&session_service);
  // Per-call limits: gRPC itself refuses a larger message (RESOURCE_EXHAUSTED) before the
  // service sees it. The resource quota bounds the memory gRPC's transports may take for
  // buffers across all connections: the admission budget plus room for two messages in transit,
  // so the bytes of a request that will be refused can still be read.
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  const int64_t quota_bytes = admission_bytes + 2 * config.max_message_bytes;
  grpc::ResourceQuota quota("hbsa-server");
  quota.Resize(static_cast<size_t>(quota_bytes));
  builder.SetResourceQuota(quota);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::error("--listen {}: cannot listen", config.listen);
    scheduler.Stop(absl::UnavailableError("server failed to start"));
    for (auto& e : executors) e->Stop();
    return kExitConfig;
  }
  SetHealth(server.get(), false, &serving);
  spdlog::info("listening on {} (port {}, {}{}), metrics on http://{}/metrics, backend {}",
               config.listen, port,
               config.tls_cert_file.empty()                ? "plaintext"
               : config.tls_client_ca_file.empty() ? "TLS"
                                                           : "mutual TLS",
               *auth != nullptr ? ", bearer token" : "", config.metrics_listen,
               executors.front()->backend());
  if (health_server != nullptr) spdlog::info("health only on {} (plaintext)", config.health_listen);
  spdlog::info("limits: message {} bytes per call, admission budget {} bytes, gRPC resource quota {} bytes, "
               "queue {}", config.max_message_bytes, admission_bytes, quota_bytes, config.queue_length);

  // Warm-up, then SERVING.
  if (config.test_warmup_delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(config.test_warmup_delay_ms));
  }
  const Clock::time_point w0 = Clock::now();
  if (absl::Status s = RunWarmup(&scheduler, options.limits); !s.ok()) {
    spdlog::error("warm-up failed: {}", std::string(s.message()));
    scheduler.Stop(absl::UnavailableError("server failed to start"));
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    for (auto& e : executors) e->Stop();
    // The typed signal (hbsa/device_status.h), not the message: it reads "GPU N is unhealthy:
    // ...", and matching words in it is how this exit code was once always 2.
    return IsDeviceLost(s) ? kExitGpuFatal : kExitConfig;
  }
  SetHealth(server.get(), true, &serving);
  SetHealth(health_server.get(), true);
  spdlog::info("warm-up done in {:.3f} s; SERVING",
               std::chrono::duration<double>(Clock::now() - w0).count());

  std::unique_lock<std::mutex> lock(stop.mu);
  // Wakes once a second to evict idle sessions past their TTL (calls evict them too), so their
  // pages return and the gauges fall without traffic.
  while (!stop.cv.wait_for(lock, std::chrono::seconds(1),
                           [&] { return stop.signal != 0 || !stop.fatal.empty(); })) {
    lock.unlock();
    sessions.EvictExpired();
    lock.lock();
  }
  const std::string fatal = stop.fatal;
  const int sig = stop.signal;
  lock.unlock();

  if (!fatal.empty()) serving.SetDeviceLost();
  SetHealth(server.get(), false, &serving);
  SetHealth(health_server.get(), false);
  if (!fatal.empty()) {
    spdlog::critical("GPU unusable, NOT_SERVING, exiting with code {}: {}", kExitGpuFatal, fatal);
    scheduler.Stop(absl::UnavailableError(absl::StrCat("server GPU is unhealthy: ", fatal)));
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (health_server != nullptr) health_server->Shutdown();
    for (auto& e : executors) e->Stop();
    return kExitGpuFatal;
  }
  const double grace = config.drain_grace_seconds;
  spdlog::info("signal {}: draining (NOT_SERVING, refusing new requests), {} in flight, grace {} s",
               sig, scheduler.inflight(), grace);
  scheduler.StartDrain();
  const auto grace_end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(grace));
  const bool idle = scheduler.WaitIdle(grace_end);
  const int64_t unfinished = scheduler.inflight();
  const Scheduler::Outcomes before = scheduler.outcomes();
  if (!idle) {
    spdlog::warn("drain grace period ({} s) over with {} requests unfinished ({} queued); cutting them off",
                 grace, unfinished, scheduler.queue_depth());
  }
  // Finished calls flush their responses; calls still open are cancelled at the deadline, which
  // stops running CPU work between tiles (their clients are gone) and drops CUDA results.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(idle ? 1 : 0));
  if (health_server != nullptr) health_server->Shutdown();
  const int64_t queued_cut = scheduler.Stop(absl::UnavailableError("server shut down before the request ran"));
  for (auto& e : executors) e->Stop();
  if (!idle) {
    // Every admitted job is accounted for: cut off in the stage it was in (its call cancelled
    // by the shutdown, or failed by Stop while still queued), or it finished after the grace.
    const Scheduler::Outcomes after = scheduler.outcomes();
    auto delta = [&](Scheduler::JobStage s) {
      const int i = static_cast<int>(s);
      return after.abandoned[i] - before.abandoned[i];
    };
    const int64_t queued = delta(Scheduler::JobStage::kQueued) + queued_cut;
    const int64_t staging = delta(Scheduler::JobStage::kStaging);
    const int64_t running = delta(Scheduler::JobStage::kRunning);
    const int64_t other = after.failed - before.failed - queued_cut;
    spdlog::warn("drain cut off {} requests: {} queued, {} staging, {} running (stopped, result "
                 "dropped), {} failed otherwise; {} finished after the grace",
                 queued + staging + running + other, queued, staging, running, other,
                 after.ok - before.ok);
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace hbsa::server

int main(int argc, char** argv) {
  // Block the drain signals in every thread (set before any thread starts); one thread
  // receives them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<hbsa::server::ServerConfig> config =
      hbsa::server::ParseConfig(args, hbsa::server::ProcessEnv());
  if (!config.ok()) {
    std::fprintf(stderr, "hbsa-server: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (config->help) {
    std::fputs(hbsa::server::HelpText().c_str(), stdout);
    return 0;
  }
  if (config->version) {
    std::printf("hbsa-server %s\n", HBSA_VERSION);
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  spdlog::info("hbsa-server {} starting: {}", HBSA_VERSION, hbsa::server::DescribeConfig(*config));
  return hbsa::server::Serve(*config, signals);
}
