// server/warmup.h: the start-up self test run before health turns SERVING.
//
// A small, fixed request (two ragged sequences, GQA 2:1, causal, heterogeneous blocks, LSE)
// goes through translation, the scheduler and the executor exactly like a client's, so the
// first real request finds the executor's threads, CUDA context, kernels and staging buffers
// ready. Kept out of metrics (Job::warmup).
#ifndef HBSA_SERVER_WARMUP_H_
#define HBSA_SERVER_WARMUP_H_

#include "absl/status/status.h"
#include "hbsa/v1/attention.pb.h"
#include "scheduler.h"
#include "translate.h"

namespace hbsa::server {

// The warm-up request (non-zero fp16 inputs, dense bit-packed mask).
v1::AttendRequest MakeWarmupRequest();

// Runs the warm-up request through `scheduler` and waits for it. OK when it computed finite
// outputs; the error otherwise.
absl::Status RunWarmup(Scheduler* scheduler, const TranslateLimits& limits);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_WARMUP_H_
