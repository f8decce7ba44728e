// attention.cc: small public helpers of hbsa/attention.h and the backend dispatch of Run.
#include "hbsa/attention.h"

#include <cmath>

#include "backends.h"
#include "hbsa/plan.h"

namespace hbsa {

size_t DTypeSize(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: return "fp16";
    case DType::kBFloat16: return "bf16";
    case DType::kFloat32: return "fp32";
  }
  return "unknown";
}

std::optional<DType> ParseDType(std::string_view n) {
  if (n == "fp16" || n == "float16") return DType::kFloat16;
  if (n == "bf16" || n == "bfloat16") return DType::kBFloat16;
  if (n == "fp32" || n == "float32") return DType::kFloat32;
  return std::nullopt;
}

std::string_view BackendName(Backend backend) {
  switch (backend) {
    case Backend::kReference: return "reference";
    case Backend::kCpu: return "cpu";
    case Backend::kCuda: return "cuda";
  }
  return "unknown";
}

std::optional<Backend> ParseBackend(std::string_view n) {
  if (n == "reference") return Backend::kReference;
  if (n == "cpu") return Backend::kCpu;
  if (n == "cuda") return Backend::kCuda;
  return std::nullopt;
}

std::string_view CudaKernelName(CudaKernel kernel) {
  switch (kernel) {
    case CudaKernel::kAuto: return "auto";
    case CudaKernel::kWgmmaTma: return "wgmma_tma";
    case CudaKernel::kMmaSync: return "mma_sync";
    case CudaKernel::kSimtFp32: return "simt_fp32";
  }
  return "unknown";
}

std::optional<CudaKernel> ParseCudaKernel(std::string_view n) {
  for (CudaKernel k : {CudaKernel::kAuto, CudaKernel::kWgmmaTma, CudaKernel::kMmaSync,
                       CudaKernel::kSimtFp32}) {
    if (n == CudaKernelName(k)) return k;
  }
  return std::nullopt;
}

bool BackendCompiled(Backend backend) {
#ifdef HBSA_WITH_CUDA
  constexpr bool kWithCuda = true;
#else
  constexpr bool kWithCuda = false;
#endif
  return backend != Backend::kCuda || kWithCuda;
}

float EffectiveScale(const AttentionArgs& args) {
  return args.softmax_scale.has_value() ? *args.softmax_scale
                                        : 1.0f / std::sqrt(static_cast<float>(args.head_dim));
}

absl::Status Run(Backend backend, const AttentionArgs& args, const RunOptions& options) {
  if (!options.validated) {
    if (absl::Status s = Validate(args); !s.ok()) return s;
  }
  if (backend == Backend::kCuda) return internal::RunCuda(args, options);
  BlockLayoutStorage layout(args);
  const VisitList visits =
      CompileVisitList(layout.view(), MakeMaskView(args, layout.view()), args.causal, args.num_heads_k);
  if (backend == Backend::kReference) return internal::RunReference(args, layout.view(), visits, options.should_stop);
  if (backend == Backend::kCpu) return internal::RunCpu(args, layout.view(), visits, options);
  return absl::InvalidArgumentError("backend must be reference, cpu or cuda");
}

int64_t AllowedPairs(const AttentionArgs& args) {
  BlockLayoutStorage storage(args);
  const BlockLayout& layout = storage.view();
  const VisitList visits =
      CompileVisitList(layout, MakeMaskView(args, layout), args.causal, args.num_heads_k);
  const int64_t group = args.num_heads_q / args.num_heads_k;
  int64_t pairs = 0;
  for (int32_t hk = 0; hk < args.num_heads_k; ++hk) {
    for (int32_t i = 0; i < layout.num_q_blocks; ++i) {
      const int32_t b = layout.q_block_seq[i];
      const int64_t lq = layout.QLen(b), lk = layout.KLen(b);
      const int64_t r = int64_t{hk} * layout.num_q_blocks + i;
      for (int64_t e = visits.offsets[r]; e < visits.offsets[r + 1]; ++e) {
        const int32_t j = visits.k_blocks[e];
        const int64_t j0 = layout.KBlockFirstRow(b, j), j1 = layout.KBlockEndRow(b, j);
        const int64_t i0 = layout.QBlockFirstRow(i), i1 = layout.QBlockEndRow(i);
        if (visits.coverage[e] == Coverage::kFull) {
          pairs += (i1 - i0) * (j1 - j0);
          continue;
        }
        // Causal diagonal: only these few blocks need a per-row count.
        for (int64_t row = i0; row < i1; ++row) {
          const int64_t lim = MinI64(j1, CausalKeyLimit(args.causal, row, lq, lk));
          pairs += MaxI64(0, lim - j0);
        }
      }
    }
  }
  return pairs * group;
}

}  // namespace hbsa
