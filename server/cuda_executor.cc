// server/cuda_executor.cc: the CUDA executor, one per GPU (built with HBSA_WITH_CUDA only).
//
// Memory is taken once, at Start: a device arena (the memory budget, one cudaMalloc) and a
// pinned host arena (--host-staging-bytes, one cudaHostAlloc); requests are carved out of them
// by RangeAllocator, so nothing is allocated per request on the hot path.
//
// Threads:
//   staging threads (--staging-threads, default 4) each take a batch from the Scheduler
//     (one request, or compatible requests merged into one launch: batch.h), plan it
//     (PlanRequest), reserve its device range and pinned input/output ranges (all or nothing,
//     waiting while the arenas are full), copy its tensors from the received message (or
//     unpinned shared memory) into pinned memory and PackMetadata the rest, then take a free
//     stream and issue, with no host synchronisation:
//       event start; H2D; event h2d; hbsa::cuda::Enqueue; event kernel; D2H; event done.
//     Tensors in shared memory registered with CUDA (cudaHostRegister) are copied to and from
//     the device directly, without staging. Free streams are handed out in FIFO order, so
//     every stream takes work (the old executor always picked the lowest free one).
//   one completion thread polls the done events (cudaEventQuery; no device-wide or stream
//     synchronisation anywhere; it spins while launches are in flight and sleeps on a condition
//     variable when none is), releases the device and pinned input ranges and the stream,
//     and completes the jobs. Their responses point into the pinned output range, which goes
//     back to the arena when gRPC has sent the last response that uses it (HostBlock).
// So the staging of one request, the H2D copy of another, a kernel and a D2H copy of others
// run at the same time on different streams and threads. Small requests (up to 1 MiB of working
// memory) that find a free stream and free memory skip the queue: the gRPC thread that
// admitted them stages and issues them at once (Scheduler::SetFastLane; only asynchronous CUDA
// calls, never a wait), which removes a thread hand-off from their latency.
//
// Per stream, hbsa_stream_busy_seconds_total adds the device time from the start event to the
// done event of each launch, and hbsa_stream_requests_total counts the requests it ran.
//
// A sticky CUDA error (any asynchronous failure, or an Enqueue status marked device-lost) leaves
// the context unusable: every in-flight request fails UNAVAILABLE marked device-lost
// (hbsa/device_status.h), the executor stops touching the device and reports through
// FatalHandler (the server exits 3).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "cuda_seam.h"
#include "hbsa/cuda.h"
#include "range_allocator.h"
#include "hbsa/device_status.h"

namespace hbsa::server {
namespace {

constexpr int64_t kDefaultHostStaging = int64_t{4} << 30;
// Requests up to this working size may take the fast lane (staged on the gRPC thread: a copy
// of at most this many bytes, about 0.1 ms).
constexpr int64_t kFastLaneBytes = int64_t{1} << 20;

std::string CudaError(cudaError_t e, const char* what) {
  return absl::StrCat(what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Stream {
  int index = 0;
  cudaStream_t stream = nullptr;
  cudaEvent_t ev_start = nullptr, ev_h2d = nullptr, ev_kernel = nullptr, ev_done = nullptr;
  prometheus::Counter* requests = nullptr;
  prometheus::Counter* busy = nullptr;
};

// A range of an arena.
struct Range {
  size_t offset = 0;
  size_t bytes = 0;
  bool valid = false;
};

// One launch on the device, from issue to completion.
struct InFlight {
  Launch launch;
  Stream* stream = nullptr;
  Range device, pinned_in, pinned_out;
  cuda::RequestLayout layout;
  double staging_seconds = 0;
  // Outputs that go to unpinned shared memory are copied there from pinned_out at completion.
  char* out_copy_to = nullptr;
  char* lse_copy_to = nullptr;
};

class CudaExecutor final : public Executor {
 public:
  CudaExecutor(const CudaExecutorOptions& o, Scheduler* scheduler, Metrics* metrics, FatalHandler on_fatal)
      : options_(o), scheduler_(scheduler), metrics_(metrics), on_fatal_(std::move(on_fatal)),
        label_(absl::StrCat(o.device)), streams_(static_cast<size_t>(std::max(1, o.streams))) {}

  ~CudaExecutor() override {
    Stop();
    if (fatal_.load()) return;  // the context is unusable: leave the resources to process exit
    cudaSetDevice(options_.device);
    for (Stream& s : streams_) {
      if (s.stream) cudaStreamSynchronize(s.stream);
      for (cudaEvent_t e : {s.ev_start, s.ev_h2d, s.ev_kernel, s.ev_done}) {
        if (e) cudaEventDestroy(e);
      }
      if (s.stream) cudaStreamDestroy(s.stream);
    }
    // Responses still held by gRPC point into the pinned arena: it lives until process exit
    // when any are out (pinned_outstanding_), otherwise it is freed here.
    if (device_base_) cudaFree(device_base_);
    if (pinned_base_ && pinned_outstanding_.load() == 0) cudaFreeHost(pinned_base_);
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
    if (cudaError_t e = cudaMalloc(&device_base_, static_cast<size_t>(budget_)); e != cudaSuccess) {
      cudaGetLastError();
      return absl::ResourceExhaustedError(CudaError(
          e, absl::StrCat("device arena of ", budget_, " bytes (--memory-budget-bytes)").c_str()));
    }
    const int64_t host = options_.host_staging_bytes > 0 ? options_.host_staging_bytes : kDefaultHostStaging;
    if (cudaError_t e = cudaHostAlloc(&pinned_base_, static_cast<size_t>(host), cudaHostAllocPortable);
        e != cudaSuccess) {
      cudaGetLastError();
      return absl::ResourceExhaustedError(CudaError(
          e, absl::StrCat("pinned staging arena of ", host, " bytes (--host-staging-bytes)").c_str()));
    }
    kernels_ = cuda::DeviceKernels();  // for GetCapabilities (the device is current here)
    device_arena_ = std::make_unique<RangeAllocator>(static_cast<size_t>(budget_));
    pinned_arena_ = std::make_unique<RangeAllocator>(static_cast<size_t>(host));
    for (size_t i = 0; i < streams_.size(); ++i) {
      Stream& s = streams_[i];
      s.index = static_cast<int>(i);
      if (cudaError_t e = cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking); e != cudaSuccess) {
        return absl::UnavailableError(CudaError(e, "cudaStreamCreate"));
      }
      for (cudaEvent_t* ev : {&s.ev_start, &s.ev_h2d, &s.ev_kernel, &s.ev_done}) {
        if (cudaError_t e = cudaEventCreate(ev); e != cudaSuccess) {
          return absl::UnavailableError(CudaError(e, "cudaEventCreate"));
        }
      }
      s.requests = metrics_->StreamCounter(label_, static_cast<int>(i));
      s.busy = metrics_->StreamBusyCounter(label_, static_cast<int>(i));
      free_streams_.push_back(&s);
    }
    metrics_->SetDeviceMemory(label_, 0, budget_);
    spdlog::info("cuda executor: device {} ({}, cc {}.{}, {} MiB free), {} streams, {} staging "
                 "threads, device arena {} MiB, pinned arena {} MiB, batching {} tokens / {} us",
                 options_.device, props_.name, props_.major, props_.minor, free_bytes >> 20,
                 streams_.size(), options_.staging_threads, budget_ >> 20, host >> 20,
                 options_.batch.max_tokens, options_.batch.max_delay.count());
    completion_ = std::thread([this] { CompletionLoop(); });
    scheduler_->SetFastLane([this](std::unique_ptr<Job>* job) { return TryIssueNow(job); });
    for (int i = 0; i < std::max(1, options_.staging_threads); ++i) {
      staging_.emplace_back([this] { StagingLoop(); });
    }
    return absl::OkStatus();
  }

  void Stop() override {
    scheduler_->SetFastLane(nullptr);
    stop_.store(true);
    arena_cv_.notify_all();
    stream_cv_.notify_all();
    for (std::thread& t : staging_) {
      if (t.joinable()) t.join();
    }
    staging_.clear();
    staging_done_.store(true);
    if (completion_.joinable()) completion_.join();
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
    d->set_streams(static_cast<int>(streams_.size()));
    for (CudaKernel k : kernels_) d->add_kernels(std::string(CudaKernelName(k)));
    if (caps->fast_head_dims_size() == 0) {
      for (int32_t hd : cuda::FastHeadDims()) caps->add_fast_head_dims(hd);
    }
  }

 private:
  // ---- staging threads ----

  void StagingLoop() {
    cudaSetDevice(options_.device);
    while (!stop_.load() && !fatal_.load()) {
      std::vector<std::unique_ptr<Job>> batch =
          scheduler_->TakeBatch(std::chrono::milliseconds(50), options_.batch);
      if (batch.empty()) continue;
      Issue(MakeLaunch(std::move(batch)));
    }
  }

  void CompleteAll(Launch* l, const absl::Status& s) {
    for (auto& job : l->jobs) {
      if (job != nullptr) scheduler_->Complete(std::move(job), s, label_);
    }
  }

  // The fast lane (Scheduler::SetFastLane): small requests are staged and issued on the
  // calling thread when a stream and memory are free right now.
  bool TryIssueNow(std::unique_ptr<Job>* job) {
    if (stop_.load() || fatal_.load() || (*job)->request->working_bytes > kFastLaneBytes) return false;
    {
      std::lock_guard<std::mutex> lock(stream_mu_);
      if (free_streams_.empty()) return false;
    }
    std::vector<std::unique_ptr<Job>> one;
    one.push_back(std::move(*job));
    Launch refused;
    if (Issue(MakeLaunch(std::move(one)), /*wait=*/false, &refused)) return true;
    *job = std::move(refused.jobs.front());
    return false;
  }

  // Plans, stages and issues one launch; hands it to the completion thread. With `wait` false
  // it takes memory and a stream only if they are free now; when they are not, it moves the
  // untouched launch to *refused and returns false. True otherwise (issued or completed).
  bool Issue(Launch launch, bool wait = true, Launch* refused = nullptr) {
    auto f = std::make_unique<InFlight>();
    f->launch = std::move(launch);
    Launch& l = f->launch;
    const TranslatedRequest& first = *l.jobs.front()->request;
    const bool single = l.jobs.size() == 1;
    // Plan: PlanRequest/Enqueue read the host cu_seqlens and mask and whether lse is asked.
    AttentionArgs args = l.args;
    static char stand_in[1];
    args.out = {stand_in, static_cast<size_t>(l.out_bytes)};
    args.lse = l.return_lse ? MutableBuffer{stand_in, static_cast<size_t>(l.lse_bytes)} : MutableBuffer{};
    absl::StatusOr<cuda::RequestLayout> layout = cuda::PlanRequest(args);
    if (!layout.ok()) {
      CompleteAll(&l, layout.status());
      return true;
    }
    f->layout = std::move(*layout);
    const cuda::RequestLayout& lay = f->layout;
    // Outputs straight into pinned shared memory need no pinned staging.
    const bool out_direct = single && first.out_target.shm != nullptr && first.out_target.shm_pinned;
    const bool lse_direct = !l.return_lse || (single && first.lse_target.shm != nullptr && first.lse_target.shm_pinned);
    const size_t out_stage = (out_direct && lse_direct) ? 0 : lay.output_bytes;
    if (static_cast<int64_t>(lay.total_bytes) > budget_) {
      CompleteAll(&l, absl::ResourceExhaustedError(absl::StrCat(
          "q/k/v: the request needs ", lay.total_bytes, " bytes of device memory, past the budget of device ",
          options_.device, " (", budget_, " bytes, --memory-budget-bytes)")));
      return true;
    }
    if (RangeAllocator::Rounded(lay.input_bytes) + RangeAllocator::Rounded(out_stage) >
        pinned_arena_->capacity()) {
      CompleteAll(&l, absl::ResourceExhaustedError(absl::StrCat(
          "q/k/v: the request needs ", lay.input_bytes + out_stage, " bytes of pinned staging memory, past ",
          pinned_arena_->capacity(), " bytes (--host-staging-bytes)")));
      return true;
    }
    Stream* s = nullptr;
    if (!wait) {
      // All or nothing, now: memory, then a stream.
      if (!Reserve(lay.total_bytes, lay.input_bytes, out_stage, f.get(), /*wait=*/false) ||
          (s = TryAcquireStream()) == nullptr) {
        Release(f.get());
        if (f->pinned_out.valid) FreePinnedRange(f->pinned_out);
        *refused = std::move(f->launch);
        return false;
      }
    } else if (!Reserve(lay.total_bytes, lay.input_bytes, out_stage, f.get(), /*wait=*/true)) {
      CompleteAll(&l, absl::UnavailableError("server shut down"));
      return true;
    }
    // Cancelled or expired while waiting for memory: give it back, stage nothing.
    auto drop_if_abandoned = [&] {
      if (!AbandonIfNoneRunnable(&l, scheduler_, Scheduler::JobStage::kStaging, label_)) return false;
      Release(f.get());
      if (f->pinned_out.valid) FreePinnedRange(f->pinned_out);
      if (s != nullptr) ReturnStream(s);
      return true;
    };
    if (drop_if_abandoned()) return true;
    const Clock::time_point t1 = Clock::now();
    // Stage: tensors from the message (or unpinned shared memory) into pinned memory, then the
    // metadata. Pinned shared memory is left where it is (copied by the DMA engine below).
    char* pin_in = static_cast<char*>(pinned_base_) + f->pinned_in.offset;
    const cuda::InputOffsets off = cuda::InputOffsetsOf(lay);
    auto dma_direct = [](const InputBytes& b) { return b.shm != nullptr && b.shm_pinned; };
    StageInputs(l, pin_in + off.q, pin_in + off.k, pin_in + off.v, dma_direct);
    cuda::PackMetadata(args, lay, pin_in);
    const Clock::time_point t2 = Clock::now();
    f->staging_seconds = Seconds(t2 - t1);
    // And once more before the launch: a kernel nobody waits for is not started.
    if (drop_if_abandoned()) return true;

    if (s == nullptr) s = AcquireStream();
    if (s == nullptr) {
      Release(f.get());
      CompleteAll(&l, absl::UnavailableError("server shut down"));
      return true;
    }
    f->stream = s;
    char* dev = static_cast<char*>(device_base_) + f->device.offset;
    cudaStream_t st = s->stream;
    cudaEventRecord(s->ev_start, st);
    if (single && (dma_direct(first.q) || dma_direct(first.k) || dma_direct(first.v))) {
      const std::pair<const InputBytes*, size_t> t[3] = {{&first.q, off.q}, {&first.k, off.k}, {&first.v, off.v}};
      for (const auto& [in, o] : t) {
        const char* src = dma_direct(*in) ? in->shm : pin_in + o;
        cudaMemcpyAsync(dev + o, src, in->bytes, cudaMemcpyHostToDevice, st);
      }
      cudaMemcpyAsync(dev + off.metadata, pin_in + off.metadata, lay.input_bytes - off.metadata,
                      cudaMemcpyHostToDevice, st);
    } else {
      cudaMemcpyAsync(dev, pin_in, lay.input_bytes, cudaMemcpyHostToDevice, st);
    }
    cudaEventRecord(s->ev_h2d, st);
    absl::Status enq = cuda::Enqueue(args, lay, dev, st);
    if (!enq.ok()) {
      if (IsDeviceLost(enq)) {
        Fatal(std::string(enq.message()), f.get());
        return true;
      }
      // Non-sticky (a refused launch configuration): the stream has only our copies on it;
      // let them finish before reuse.
      cudaStreamSynchronize(st);
      Release(f.get());
      ReturnStream(s);
      CompleteAll(&l, enq);
      return true;
    }
    cudaEventRecord(s->ev_kernel, st);
    const char* dev_out = dev + lay.out_offset;
    const char* dev_lse = dev + lay.lse_offset;
    const size_t lse_dev_bytes = static_cast<size_t>(l.lse_bytes);
    char* pin_out = static_cast<char*>(pinned_base_) + f->pinned_out.offset;
    if (out_stage == 0) {
      cudaMemcpyAsync(first.out_target.shm, dev_out, static_cast<size_t>(l.out_bytes), cudaMemcpyDeviceToHost, st);
      if (l.return_lse) cudaMemcpyAsync(first.lse_target.shm, dev_lse, lse_dev_bytes, cudaMemcpyDeviceToHost, st);
    } else {
      cudaMemcpyAsync(pin_out, dev_out, lay.output_bytes, cudaMemcpyDeviceToHost, st);
      if (single && first.out_target.shm != nullptr) f->out_copy_to = first.out_target.shm;
      if (single && first.lse_target.shm != nullptr) f->lse_copy_to = first.lse_target.shm;
    }
    cudaEventRecord(s->ev_done, st);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
      Fatal(CudaError(e, "sticky CUDA error: issuing the request"), f.get());
      return true;
    }
    for (const auto& job : l.jobs) {
      if (!job->warmup) metrics_->IncrementStream(s->requests);
    }
    {
      std::lock_guard<std::mutex> lock(inflight_mu_);
      if (fatal_.load()) {  // the completion thread is gone: fail it here
        CompleteAll(&l, absl::UnavailableError(absl::StrCat("GPU ", options_.device, " is unhealthy")));
        return true;
      }
      inflight_.push_back(std::move(f));
    }
    inflight_cv_.notify_one();
    return true;
  }

  // Reserves the device range and both pinned ranges, all or nothing, waiting while they do not
  // fit. False once stopped.
  bool Reserve(size_t device_bytes, size_t in_bytes, size_t out_bytes, InFlight* f, bool wait) {
    std::unique_lock<std::mutex> lock(arena_mu_);
    while (true) {
      if (stop_.load() || fatal_.load()) return false;
      std::optional<size_t> d = device_arena_->Allocate(device_bytes);
      std::optional<size_t> i = d ? pinned_arena_->Allocate(in_bytes) : std::nullopt;
      std::optional<size_t> o = i && out_bytes > 0 ? pinned_arena_->Allocate(out_bytes) : std::nullopt;
      if (d && i && (out_bytes == 0 || o)) {
        f->device = {*d, device_bytes, true};
        f->pinned_in = {*i, in_bytes, true};
        if (out_bytes > 0) f->pinned_out = {*o, out_bytes, true};
        metrics_->SetDeviceMemory(label_, static_cast<int64_t>(device_arena_->used()), budget_);
        return true;
      }
      if (i) pinned_arena_->Free(*i, in_bytes);
      if (d) device_arena_->Free(*d, device_bytes);
      if (!wait) return false;
      arena_cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
  }

  // Returns the device and pinned input ranges (the output range lives on in the responses).
  void Release(InFlight* f) {
    {
      std::lock_guard<std::mutex> lock(arena_mu_);
      if (f->device.valid) device_arena_->Free(f->device.offset, f->device.bytes);
      if (f->pinned_in.valid) pinned_arena_->Free(f->pinned_in.offset, f->pinned_in.bytes);
      f->device.valid = f->pinned_in.valid = false;
      metrics_->SetDeviceMemory(label_, static_cast<int64_t>(device_arena_->used()), budget_);
    }
    arena_cv_.notify_all();
  }

  // Returns an output range that was reserved but never handed to a response.
  void FreePinnedRange(Range& r) {
    {
      std::lock_guard<std::mutex> lock(arena_mu_);
      pinned_arena_->Free(r.offset, r.bytes);
    }
    r.valid = false;
    arena_cv_.notify_all();
  }

  void FreePinned(size_t offset, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(arena_mu_);
      pinned_arena_->Free(offset, bytes);
    }
    pinned_outstanding_.fetch_sub(1);
    arena_cv_.notify_all();
  }

  Stream* AcquireStream() {
    std::unique_lock<std::mutex> lock(stream_mu_);
    stream_cv_.wait(lock, [&] { return stop_.load() || fatal_.load() || !free_streams_.empty(); });
    if (free_streams_.empty()) return nullptr;
    Stream* s = free_streams_.front();
    free_streams_.pop_front();
    return s;
  }

  Stream* TryAcquireStream() {
    std::lock_guard<std::mutex> lock(stream_mu_);
    if (free_streams_.empty()) return nullptr;
    Stream* s = free_streams_.front();
    free_streams_.pop_front();
    return s;
  }

  void ReturnStream(Stream* s) {
    {
      std::lock_guard<std::mutex> lock(stream_mu_);
      free_streams_.push_back(s);
    }
    stream_cv_.notify_one();
  }

  // ---- completion thread ----

  void CompletionLoop() {
    cudaSetDevice(options_.device);
    while (true) {
      std::vector<std::unique_ptr<InFlight>> done;
      bool any = false;
      {
        std::lock_guard<std::mutex> lock(inflight_mu_);
        any = !inflight_.empty();
        for (auto it = inflight_.begin(); it != inflight_.end();) {
          const cudaError_t e = cudaEventQuery((*it)->stream->ev_done);
          if (e == cudaSuccess) {
            done.push_back(std::move(*it));
            it = inflight_.erase(it);
          } else if (e == cudaErrorNotReady) {
            ++it;
          } else {
            fatal_reason_ = CudaError(e, "sticky CUDA error: request failed on the device");
            break;
          }
        }
      }
      for (auto& f : done) Finish(std::move(f));
      if (!fatal_reason_.empty()) {
        Fatal(fatal_reason_, nullptr);
        return;
      }
      if (stop_.load() && !any && staging_idle()) return;
      if (!done.empty()) continue;
      if (any) {
        // Work on the device: poll again at once (a sleep would add its timer slack, tens of
        // microseconds, to every request; this thread keeps one core busy while requests run).
        std::this_thread::yield();
      } else {
        // Idle: sleep until a launch is issued (or to recheck for shutdown).
        std::unique_lock<std::mutex> lock(inflight_mu_);
        inflight_cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return !inflight_.empty(); });
      }
    }
  }

  bool staging_idle() {
    // Staging threads exit on stop; once they are gone nothing new can be issued.
    std::lock_guard<std::mutex> lock(inflight_mu_);
    return inflight_.empty() && staging_done_.load();
  }

  void Finish(std::unique_ptr<InFlight> f) {
    Stream* s = f->stream;
    float h2d_ms = 0, kernel_ms = 0, d2h_ms = 0, all_ms = 0;
    cudaEventElapsedTime(&h2d_ms, s->ev_start, s->ev_h2d);
    cudaEventElapsedTime(&kernel_ms, s->ev_h2d, s->ev_kernel);
    cudaEventElapsedTime(&d2h_ms, s->ev_kernel, s->ev_done);
    cudaEventElapsedTime(&all_ms, s->ev_start, s->ev_done);
    Launch& l = f->launch;
    bool warm = true;
    for (const auto& job : l.jobs) warm = warm && job->warmup;
    if (!warm) metrics_->AddStreamBusy(s->busy, all_ms * 1e-3);
    ReturnStream(s);
    Release(f.get());
    // Outputs: the pinned output range, owned by the responses until gRPC has sent them.
    std::shared_ptr<HostBlock> block;
    const char* out = nullptr;
    const char* lse = nullptr;
    if (f->pinned_out.valid) {
      char* p = static_cast<char*>(pinned_base_) + f->pinned_out.offset;
      const size_t off = f->pinned_out.offset, bytes = f->pinned_out.bytes;
      pinned_outstanding_.fetch_add(1);
      block = std::make_shared<HostBlock>(p, bytes, [this, off, bytes] { FreePinned(off, bytes); });
      out = p;
      lse = l.return_lse ? p + (f->layout.lse_offset - f->layout.out_offset) : nullptr;
      if (f->out_copy_to != nullptr) std::memcpy(f->out_copy_to, out, static_cast<size_t>(l.out_bytes));
      if (f->lse_copy_to != nullptr && lse != nullptr) std::memcpy(f->lse_copy_to, lse, static_cast<size_t>(l.lse_bytes));
    }
    SplitOutputs(&l, block, out, lse, "cuda", options_.device);
    for (auto& job : l.jobs) {
      job->result.kernel = std::string(CudaKernelName(f->layout.kernel));
      job->staging_seconds = f->staging_seconds;
      job->h2d_seconds = h2d_ms * 1e-3;
      job->kernel_seconds = kernel_ms * 1e-3;
      job->d2h_seconds = d2h_ms * 1e-3;
    }
    // A job cancelled or expired while its kernel ran is abandoned: its result is dropped.
    CompleteLaunch(&l, scheduler_, absl::OkStatus(), label_);
  }

  // The device is unusable: fail everything in flight, stop, tell the server (once).
  void Fatal(const std::string& reason, InFlight* issuing) {
    if (fatal_.exchange(true)) {
      if (issuing != nullptr) CompleteAll(&issuing->launch, absl::UnavailableError("GPU is unhealthy"));
      return;
    }
    spdlog::critical("device {}: {}", options_.device, reason);
    const absl::Status unavailable = MarkDeviceLost(
        absl::UnavailableError(absl::StrCat("GPU ", options_.device, " is unhealthy: ", reason)));
    if (issuing != nullptr) CompleteAll(&issuing->launch, unavailable);
    std::list<std::unique_ptr<InFlight>> failed;
    {
      std::lock_guard<std::mutex> lock(inflight_mu_);
      failed.swap(inflight_);
    }
    for (auto& f : failed) CompleteAll(&f->launch, unavailable);
    arena_cv_.notify_all();
    stream_cv_.notify_all();
    on_fatal_(reason);
  }

  const CudaExecutorOptions options_;
  Scheduler* const scheduler_;
  Metrics* const metrics_;
  const FatalHandler on_fatal_;
  const std::string label_;  // device label in metrics
  cudaDeviceProp props_{};
  std::vector<CudaKernel> kernels_;  // what this device runs (set in Start)
  int64_t budget_ = 0;
  void* device_base_ = nullptr;
  void* pinned_base_ = nullptr;
  std::atomic<int64_t> pinned_outstanding_{0};  // output blocks still referenced by responses
  std::mutex arena_mu_;
  std::condition_variable arena_cv_;
  std::unique_ptr<RangeAllocator> device_arena_, pinned_arena_;
  std::vector<Stream> streams_;
  std::mutex stream_mu_;
  std::condition_variable stream_cv_;
  std::deque<Stream*> free_streams_;
  std::mutex inflight_mu_;
  std::condition_variable inflight_cv_;  // a launch was issued
  std::list<std::unique_ptr<InFlight>> inflight_;
  std::string fatal_reason_;  // completion thread only
  std::vector<std::thread> staging_;
  std::thread completion_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> staging_done_{false};
  std::atomic<bool> fatal_{false};
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

absl::StatusOr<std::string> CudaPciBusId(int device) {
  char id[32] = {};  // "dddd:bb:dd.f" and a NUL; CUDA asks for at least 13 bytes
  if (const cudaError_t e = cudaDeviceGetPCIBusId(id, sizeof(id), device); e != cudaSuccess) {
    cudaGetLastError();
    return absl::NotFoundError(absl::StrCat("cudaDeviceGetPCIBusId(", device, "): ", cudaGetErrorString(e)));
  }
  return std::string(id);
}

ShmRegistry::MapHook CudaShmMapHook() {
  return [](ShmMapping* m) {
    // Portable: usable by every device's context. A failure leaves the mapping unpinned; the
    // executor then stages it like network bytes.
    if (cudaHostRegister(m->data(), m->bytes(), cudaHostRegisterPortable) == cudaSuccess) {
      m->pinned = true;
    } else {
      cudaGetLastError();
      spdlog::warn("shared memory: cudaHostRegister failed; requests naming it are staged");
    }
  };
}

ShmRegistry::UnmapHook CudaShmUnmapHook() {
  return [](void* p, size_t) {
    if (cudaHostUnregister(p) != cudaSuccess) cudaGetLastError();
  };
}

absl::StatusOr<std::unique_ptr<Executor>> MakeCudaExecutor(const CudaExecutorOptions& options,
                                                           Scheduler* scheduler, Metrics* metrics,
                                                           FatalHandler on_fatal) {
  return std::unique_ptr<Executor>(new CudaExecutor(options, scheduler, metrics, std::move(on_fatal)));
}

}  // namespace hbsa::server
