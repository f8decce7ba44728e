// server/cuda_executor.cc: the CUDA executor, one per GPU (built with HBSA_WITH_CUDA only).
//
// One executor thread per device owns `streams` slots. A slot is a CUDA stream, four timing
// events and two pinned host staging buffers (inputs, outputs) that grow as needed and are
// reused across requests. Per request, on the slot's stream and with no host synchronisation:
//   PackInputs -> pinned_in;  cudaMallocAsync(device, total_bytes);
//   event start; H2D (pinned_in -> device); event h2d; hbsa::cuda::Enqueue; event kernel;
//   D2H (device + out_offset -> pinned_out); event done; cudaFreeAsync(device).
// The thread polls cudaEventQuery(done) of busy slots (no device-wide synchronise anywhere),
// so requests on different slots overlap. Device memory is accounted against a budget (default
// 80% of the free memory at start): a request waits for memory when the budget is in use and
// is refused (RESOURCE_EXHAUSTED) when larger than the whole budget.
//
// A sticky CUDA error (any asynchronous failure, or an Enqueue status marked device-lost) leaves
// the context unusable: every in-flight request fails UNAVAILABLE marked device-lost
// (hbsa/device_status.h), the executor stops touching the device and reports through
// FatalHandler (the server exits 3).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "cuda_seam.h"
#include "hbsa/cuda.h"
#include "hbsa/device_status.h"

namespace hbsa::server {
namespace {

std::string CudaError(cudaError_t e, const char* what) {
  return absl::StrCat(what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

struct Slot {
  cudaStream_t stream = nullptr;
  cudaEvent_t ev_start = nullptr, ev_h2d = nullptr, ev_kernel = nullptr, ev_done = nullptr;
  void* pinned_in = nullptr;
  size_t pinned_in_bytes = 0;
  void* pinned_out = nullptr;
  size_t pinned_out_bytes = 0;
  std::unique_ptr<Job> job;  // non-null while busy
  cuda::RequestLayout layout;
  prometheus::Counter* counter = nullptr;
};

class CudaExecutor final : public Executor {
 public:
  CudaExecutor(const CudaExecutorOptions& o, Scheduler* scheduler, Metrics* metrics, FatalHandler on_fatal)
      : options_(o), scheduler_(scheduler), metrics_(metrics), on_fatal_(std::move(on_fatal)),
        label_(absl::StrCat(o.device)), slots_(static_cast<size_t>(std::max(1, o.streams))) {}

  ~CudaExecutor() override {
    Stop();
    if (fatal_) return;  // the context is unusable: leave the resources to process exit
    cudaSetDevice(options_.device);
    for (Slot& s : slots_) {
      if (s.stream) cudaStreamSynchronize(s.stream);
      for (cudaEvent_t e : {s.ev_start, s.ev_h2d, s.ev_kernel, s.ev_done}) {
        if (e) cudaEventDestroy(e);
      }
      if (s.stream) cudaStreamDestroy(s.stream);
      if (s.pinned_in) cudaFreeHost(s.pinned_in);
      if (s.pinned_out) cudaFreeHost(s.pinned_out);
    }
  }

  absl::Status Start() override {
    if (cudaError_t e = cudaSetDevice(options_.device); e != cudaSuccess) {
      return absl::UnavailableError(CudaError(e, absl::StrCat("cudaSetDevice(", options_.device, ")").c_str()));
    }
    if (cudaError_t e = cudaGetDeviceProperties(&props_, options_.device); e != cudaSuccess) {
      return absl::UnavailableError(CudaError(e, "cudaGetDeviceProperties"));
    }
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaError_t e = cudaMemGetInfo(&free_bytes, &total_bytes); e != cudaSuccess) {
      return absl::UnavailableError(CudaError(e, "cudaMemGetInfo"));
    }
    budget_ = options_.memory_budget_bytes > 0 ? options_.memory_budget_bytes
                                               : static_cast<int64_t>(free_bytes / 10 * 8);
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (cudaError_t e = cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking); e != cudaSuccess) {
        return absl::UnavailableError(CudaError(e, "cudaStreamCreate"));
      }
      for (cudaEvent_t* ev : {&s.ev_start, &s.ev_h2d, &s.ev_kernel, &s.ev_done}) {
        if (cudaError_t e = cudaEventCreate(ev); e != cudaSuccess) {
          return absl::UnavailableError(CudaError(e, "cudaEventCreate"));
        }
      }
      s.counter = metrics_->StreamCounter(label_, static_cast<int>(i));
    }
    metrics_->SetDeviceMemory(label_, 0, budget_);
    spdlog::info("cuda executor: device {} ({}, cc {}.{}, {} MiB free), {} streams, budget {} MiB",
                 options_.device, props_.name, props_.major, props_.minor, free_bytes >> 20,
                 slots_.size(), budget_ >> 20);
    thread_ = std::thread([this] { Loop(); });
    return absl::OkStatus();
  }

  void Stop() override {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

  std::string backend() const override { return "cuda"; }
  int device() const override { return options_.device; }
  int64_t memory_budget_bytes() const override { return budget_; }

  void Describe(v1::Capabilities* caps) const override {
    v1::Device* d = caps->add_devices();
    d->set_index(options_.device);
    d->set_name(props_.name);
    d->set_total_memory_bytes(static_cast<int64_t>(props_.totalGlobalMem));
    d->set_compute_capability(absl::StrCat(props_.major, ".", props_.minor));
    d->set_streams(static_cast<int>(slots_.size()));
    if (caps->fast_head_dims_size() == 0) {
      for (int32_t hd : cuda::FastHeadDims()) caps->add_fast_head_dims(hd);
    }
  }

 private:
  // The executor thread: poll busy slots, launch into free ones, until stopped and idle.
  void Loop() {
    cudaSetDevice(options_.device);
    while (true) {
      bool progress = false;
      int busy = 0;
      for (Slot& s : slots_) {
        if (s.job == nullptr) continue;
        const cudaError_t e = cudaEventQuery(s.ev_done);
        if (e == cudaSuccess) {
          FinishSlot(&s);
          progress = true;
        } else if (e == cudaErrorNotReady) {
          ++busy;
        } else {
          Fatal(CudaError(e, "sticky CUDA error: request failed on the device"));
          return;
        }
      }
      if (stop_.load()) {
        if (pending_ != nullptr) {
          scheduler_->Complete(std::move(pending_), absl::UnavailableError("server shut down"));
        }
        if (busy == 0) return;
      } else if (Slot* free_slot = FreeSlot(); free_slot != nullptr) {
        if (pending_ == nullptr) {
          // Block briefly for work only when nothing is running; otherwise just peek.
          pending_ = scheduler_->Take(busy > 0 ? Clock::duration::zero() : std::chrono::milliseconds(20));
        }
        if (pending_ != nullptr && TryLaunch(free_slot)) progress = true;
        if (fatal_) return;
      }
      if (!progress && busy > 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  Slot* FreeSlot() {
    for (Slot& s : slots_) {
      if (s.job == nullptr) return &s;
    }
    return nullptr;
  }

  // Launches pending_ on `slot`, completes it with an error, or keeps it waiting for memory.
  // True when pending_ was consumed.
  bool TryLaunch(Slot* slot) {
    Job& job = *pending_;
    if (absl::Status s = Scheduler::Runnable(job); !s.ok()) {
      scheduler_->Complete(std::move(pending_), s);
      return true;
    }
    // Outputs point into the response before planning: PlanRequest sizes the LSE region from
    // args.lse, and the kernel writes it only when that region exists.
    PrepareOutputs(job.response, job.request.get());
    absl::StatusOr<cuda::RequestLayout> layout = cuda::PlanRequest(job.request->args);
    if (!layout.ok()) {
      scheduler_->Complete(std::move(pending_), layout.status());
      return true;
    }
    const int64_t need = static_cast<int64_t>(layout->total_bytes);
    if (need > budget_) {
      scheduler_->Complete(std::move(pending_), absl::ResourceExhaustedError(absl::StrCat(
          "q/k/v: the request needs ", need, " bytes of device memory, past the budget of device ",
          options_.device, " (", budget_, " bytes, --memory-budget-bytes)")));
      return true;
    }
    if (used_ + need > budget_) return false;  // wait for running requests to free memory
    if (absl::Status s = Grow(&slot->pinned_in, &slot->pinned_in_bytes, layout->input_bytes); !s.ok()) {
      scheduler_->Complete(std::move(pending_), s);
      return true;
    }
    if (absl::Status s = Grow(&slot->pinned_out, &slot->pinned_out_bytes, layout->output_bytes); !s.ok()) {
      scheduler_->Complete(std::move(pending_), s);
      return true;
    }
    cuda::PackInputs(job.request->args, *layout, slot->pinned_in);
    void* dev = nullptr;
    if (cudaError_t e = cudaMallocAsync(&dev, layout->total_bytes, slot->stream); e != cudaSuccess) {
      if (e != cudaErrorMemoryAllocation) {
        Fatal(CudaError(e, "sticky CUDA error: cudaMallocAsync"));
        return true;
      }
      cudaGetLastError();  // clear the non-sticky allocation error
      scheduler_->Complete(std::move(pending_), absl::ResourceExhaustedError(
          CudaError(e, "device memory for the request")));
      return true;
    }
    cudaStream_t st = slot->stream;
    cudaEventRecord(slot->ev_start, st);
    cudaMemcpyAsync(dev, slot->pinned_in, layout->input_bytes, cudaMemcpyHostToDevice, st);
    cudaEventRecord(slot->ev_h2d, st);
    absl::Status enq = cuda::Enqueue(job.request->args, *layout, dev, st);
    if (!enq.ok()) {
      cudaFreeAsync(dev, st);
      if (IsDeviceLost(enq)) {
        Fatal(std::string(enq.message()));
        return true;
      }
      scheduler_->Complete(std::move(pending_), enq);
      return true;
    }
    cudaEventRecord(slot->ev_kernel, st);
    cudaMemcpyAsync(slot->pinned_out, static_cast<char*>(dev) + layout->out_offset,
                    layout->output_bytes, cudaMemcpyDeviceToHost, st);
    cudaEventRecord(slot->ev_done, st);
    cudaFreeAsync(dev, st);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
      slot->job = std::move(pending_);  // failed below with the others
      Fatal(CudaError(e, "sticky CUDA error: issuing the request"));
      return true;
    }
    used_ += need;
    metrics_->SetDeviceMemory(label_, used_, budget_);
    if (!job.warmup) metrics_->IncrementStream(slot->counter);
    slot->layout = std::move(*layout);
    slot->job = std::move(pending_);
    return true;
  }

  void FinishSlot(Slot* s) {
    std::unique_ptr<Job> job = std::move(s->job);
    float h2d_ms = 0, kernel_ms = 0, d2h_ms = 0;
    cudaEventElapsedTime(&h2d_ms, s->ev_start, s->ev_h2d);
    cudaEventElapsedTime(&kernel_ms, s->ev_h2d, s->ev_kernel);
    cudaEventElapsedTime(&d2h_ms, s->ev_kernel, s->ev_done);
    job->h2d_seconds = h2d_ms * 1e-3;
    job->kernel_seconds = kernel_ms * 1e-3;
    job->d2h_seconds = d2h_ms * 1e-3;
    used_ -= static_cast<int64_t>(s->layout.total_bytes);
    metrics_->SetDeviceMemory(label_, used_, budget_);
    const AttentionArgs& a = job->request->args;
    const auto* src = static_cast<const char*>(s->pinned_out);
    std::memcpy(a.out.data, src, a.out.bytes);
    if (a.lse.data != nullptr) {
      std::memcpy(a.lse.data, src + (s->layout.lse_offset - s->layout.out_offset), a.lse.bytes);
    }
    job->response->set_backend("cuda");
    job->response->set_device(options_.device);
    scheduler_->Complete(std::move(job), absl::OkStatus());
  }

  // Grows a pinned buffer to at least `want` bytes (growth frees the old one: cudaFreeHost
  // synchronises, which only happens while the buffer's slot is idle).
  absl::Status Grow(void** buf, size_t* bytes, size_t want) {
    if (*bytes >= want && *buf != nullptr) return absl::OkStatus();
    if (*buf != nullptr) cudaFreeHost(*buf);
    *buf = nullptr;
    *bytes = 0;
    const size_t size = std::max<size_t>(want, 1 << 20);
    if (cudaError_t e = cudaHostAlloc(buf, size, cudaHostAllocDefault); e != cudaSuccess) {
      cudaGetLastError();
      return absl::ResourceExhaustedError(CudaError(e, "pinned staging memory"));
    }
    *bytes = size;
    return absl::OkStatus();
  }

  // The device is unusable: fail everything in flight, stop, tell the server (once).
  void Fatal(const std::string& reason) {
    fatal_ = true;
    spdlog::critical("device {}: {}", options_.device, reason);
    const absl::Status unavailable = MarkDeviceLost(
        absl::UnavailableError(absl::StrCat("GPU ", options_.device, " is unhealthy: ", reason)));
    for (Slot& s : slots_) {
      if (s.job != nullptr) scheduler_->Complete(std::move(s.job), unavailable);
    }
    if (pending_ != nullptr) scheduler_->Complete(std::move(pending_), unavailable);
    on_fatal_(reason);
  }

  const CudaExecutorOptions options_;
  Scheduler* const scheduler_;
  Metrics* const metrics_;
  const FatalHandler on_fatal_;
  const std::string label_;  // device label in metrics
  cudaDeviceProp props_{};
  int64_t budget_ = 0;
  int64_t used_ = 0;  // executor thread only
  std::vector<Slot> slots_;
  std::unique_ptr<Job> pending_;  // taken from the scheduler, waiting for a slot or memory
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool fatal_ = false;
};

}  // namespace

int CudaDeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

absl::StatusOr<std::unique_ptr<Executor>> MakeCudaExecutor(const CudaExecutorOptions& options,
                                                           Scheduler* scheduler, Metrics* metrics,
                                                           FatalHandler on_fatal) {
  return std::unique_ptr<Executor>(new CudaExecutor(options, scheduler, metrics, std::move(on_fatal)));
}

}  // namespace hbsa::server
