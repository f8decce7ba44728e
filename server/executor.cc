// server/executor.cc: helpers shared by the executors (see executor.h).
#include "executor.h"

namespace hbsa::server {

void StageInputs(const Launch& l, char* q_dst, char* k_dst, char* v_dst,
                 const std::function<bool(const InputBytes&)>& skip) {
  for (size_t j = 0; j < l.jobs.size(); ++j) {
    const TranslatedRequest& r = *l.jobs[j]->request;
    const std::pair<const InputBytes*, char*> parts[3] = {
        {&r.q, q_dst + l.QOffset(j)}, {&r.k, k_dst + l.KOffset(j)}, {&r.v, v_dst + l.KOffset(j)}};
    for (const auto& [in, dst] : parts) {
      if (skip && skip(*in)) continue;
      in->CopyTo(dst);
    }
  }
}

void SplitOutputs(Launch* l, const std::shared_ptr<HostBlock>& block, const char* out,
                  const char* lse, const std::string& backend, int device) {
  for (size_t j = 0; j < l->jobs.size(); ++j) {
    Job& job = *l->jobs[j];
    const TranslatedRequest& r = *job.request;
    JobResult& res = job.result;
    res.block = block;
    res.backend = backend;
    res.device = device;
    res.batch_size = static_cast<int32_t>(l->jobs.size());
    if (r.out_target.shm == nullptr && out != nullptr) {
      res.out = out + l->OutOffset(j);
      res.out_bytes = static_cast<size_t>(r.out_bytes);
    }
    if (r.return_lse && r.lse_target.shm == nullptr && lse != nullptr) {
      res.lse = lse + l->LseOffset(j);
      res.lse_bytes = static_cast<size_t>(r.lse_bytes);
    }
  }
}

bool AbandonIfNoneRunnable(Launch* launch, Scheduler* scheduler, Scheduler::JobStage stage,
                           absl::string_view device) {
  for (const auto& job : launch->jobs) {
    if (Scheduler::Runnable(*job, stage).ok()) return false;
  }
  for (auto& job : launch->jobs) {
    const absl::Status why = Scheduler::Runnable(*job, stage);
    scheduler->Abandon(std::move(job), why, stage, device);
  }
  launch->jobs.clear();
  return true;
}

std::function<bool()> NoneRunnable(const Launch& launch) {
  return [&launch] {
    for (const auto& job : launch.jobs) {
      if (Scheduler::Runnable(*job, Scheduler::JobStage::kRunning).ok()) return false;
    }
    return true;
  };
}

void CompleteLaunch(Launch* launch, Scheduler* scheduler, const absl::Status& status,
                    absl::string_view device) {
  for (auto& job : launch->jobs) {
    if (job == nullptr) continue;
    // A launch stopped by should_stop returns CANCELLED for all; each job says why it stopped.
    if (absl::Status why = Scheduler::Runnable(*job, Scheduler::JobStage::kRunning); !why.ok()) {
      scheduler->Abandon(std::move(job), why, Scheduler::JobStage::kRunning, device);
      continue;
    }
    scheduler->Complete(std::move(job), status, device);
  }
}

}  // namespace hbsa::server
