// bench_cpu.cc: hbsa_bench_cpu, the fast CPU backend's throughput against the machine's
// practical compute ceiling, an OpenBLAS sgemm doing the same FLOPs in the same shapes.
//
// Problem (issue 2): fp32, D = 128, one sequence of 4096 query and key tokens, Hq = 4 query heads
// over Hk = 2 KV heads, square blocks of 64 or 128, a random block mask of density 0.3 (seeded,
// not causal). Throughput is GFLOP/s of allowed work: 4 * D * AllowedPairs / time.
//
// The sgemm side runs, per query head, S = Q K^T as [4096 x 128] . [128 x n] and O = P V as
// [4096 x n] . [n x 128], with n = AllowedPairs / (Hq * 4096) the keys each query row attends on
// average: the same FLOPs as the attention call, as two dense matrix products.
//
//   build-cpu/bench/cpu/hbsa_bench_cpu --benchmark_out=bench/results/cpu-DATE.json
// Environment: HBSA_CPU_ISA picks the kernel set (avx512, avx2, generic; default the best);
// OPENBLAS_CORETYPE, if set, changes OpenBLAS's kernel choice (recorded in the context).
// BM_HbsaCpuVariant adds informational runs (fp16 / bf16 storage, causal) outside the targets.
#include <cblas.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "benchmark/benchmark.h"
#include "hbsa/attention.h"
#include "hbsa/numeric.h"

namespace {

constexpr int32_t kTokens = 4096, kHeadsQ = 4, kHeadsK = 2, kHeadDim = 128;
constexpr double kDensity = 0.3;

struct BenchProblem {
  std::vector<int32_t> cu{0, kTokens};
  std::vector<float> q, k, v, out, lse;
  std::vector<uint16_t> q16, k16, v16, out16;  // fp16 / bf16 storage of q, k, v, out
  std::vector<uint8_t> mask;
  hbsa::AttentionArgs args;
  int64_t allowed_pairs = 0;
};

// The problem (fp32, not causal) or, for the informational variants, fp16 / bf16 storage
// of the same values and / or the causal rule.
const BenchProblem& Problem(int32_t block, hbsa::DType dtype = hbsa::DType::kFloat32,
                            bool causal = false) {
  static std::map<std::tuple<int32_t, hbsa::DType, bool>, std::unique_ptr<BenchProblem>> cache;
  std::unique_ptr<BenchProblem>& slot = cache[{block, dtype, causal}];
  if (slot) return *slot;
  slot = std::make_unique<BenchProblem>();
  BenchProblem& p = *slot;
  std::mt19937_64 rng(20261126 + block);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto* t : {&p.q, &p.k, &p.v}) {
    const int64_t heads = t == &p.q ? kHeadsQ : kHeadsK;
    t->resize(int64_t{kTokens} * heads * kHeadDim);
    for (float& x : *t) x = dist(rng);
  }
  p.out.resize(p.q.size());
  p.lse.resize(int64_t{kTokens} * kHeadsQ);
  const int64_t nb = (kTokens + block - 1) / block;
  std::bernoulli_distribution bit(kDensity);
  p.mask.resize(kHeadsK * nb * nb);
  for (uint8_t& m : p.mask) m = bit(rng) ? 1 : 0;
  hbsa::AttentionArgs& a = p.args;
  a.dtype = hbsa::DType::kFloat32;
  a.total_q = a.total_k = kTokens;
  a.num_heads_q = kHeadsQ;
  a.num_heads_k = kHeadsK;
  a.head_dim = kHeadDim;
  a.batch = 1;
  a.cu_seqlens_q = a.cu_seqlens_k = {p.cu.data(), p.cu.size() * sizeof(int32_t)};
  a.q_block_size = a.k_block_size = block;
  a.dense_mask.shape[0] = kHeadsK;
  a.dense_mask.shape[1] = a.dense_mask.shape[2] = nb;
  a.dense_mask.data = {p.mask.data(), p.mask.size()};
  a.q = {p.q.data(), p.q.size() * 4};
  a.k = {p.k.data(), p.k.size() * 4};
  a.v = {p.v.data(), p.v.size() * 4};
  a.out = {p.out.data(), p.out.size() * 4};
  a.lse = {p.lse.data(), p.lse.size() * 4};
  a.causal = causal;
  if (dtype != hbsa::DType::kFloat32) {
    auto convert = [dtype](const std::vector<float>& f, std::vector<uint16_t>* h) {
      h->resize(f.size());
      for (size_t e = 0; e < f.size(); ++e) {
        (*h)[e] = dtype == hbsa::DType::kFloat16 ? hbsa::FloatToHalf(f[e]) : hbsa::FloatToBFloat16(f[e]);
      }
    };
    convert(p.q, &p.q16);
    convert(p.k, &p.k16);
    convert(p.v, &p.v16);
    p.out16.resize(p.out.size());
    a.dtype = dtype;
    a.q = {p.q16.data(), p.q16.size() * 2};
    a.k = {p.k16.data(), p.k16.size() * 2};
    a.v = {p.v16.data(), p.v16.size() * 2};
    a.out = {p.out16.data(), p.out16.size() * 2};
  }
  p.allowed_pairs = hbsa::AllowedPairs(a);
  return p;
}

double Flops(const BenchProblem& p) { return 4.0 * kHeadDim * static_cast<double>(p.allowed_pairs); }

void SetCounters(benchmark::State& state, const BenchProblem& p) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(Flops(p) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["allowed_pairs"] = static_cast<double>(p.allowed_pairs);
  state.counters["threads"] = static_cast<double>(state.range(1));
}

void RunAttention(benchmark::State& state, const BenchProblem& p) {
  hbsa::RunOptions options;
  options.num_threads = static_cast<int>(state.range(1));
  for (auto _ : state) {
    const absl::Status s = hbsa::Run(hbsa::Backend::kCpu, p.args, options);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(p.args.out.data);
    benchmark::ClobberMemory();
  }
  SetCounters(state, p);
}

// Args: block size, threads.
void BM_HbsaCpu(benchmark::State& state) {
  RunAttention(state, Problem(static_cast<int32_t>(state.range(0))));
}

// Informational, beyond the targets. Args: block size, threads, dtype (0 fp16, 1 bf16,
// 2 fp32), causal.
void BM_HbsaCpuVariant(benchmark::State& state) {
  RunAttention(state, Problem(static_cast<int32_t>(state.range(0)),
                              static_cast<hbsa::DType>(state.range(2)), state.range(3) != 0));
}

void BM_OpenBlasSgemm(benchmark::State& state) {
  const BenchProblem& p = Problem(static_cast<int32_t>(state.range(0)));
  openblas_set_num_threads(static_cast<int>(state.range(1)));
  const int64_t n = p.allowed_pairs / (int64_t{kHeadsQ} * kTokens);  // keys per query row
  std::vector<float> q(int64_t{kTokens} * kHeadDim, 0.5f), kt(kHeadDim * n, 0.25f);
  std::vector<float> s(int64_t{kTokens} * n), v(n * kHeadDim, 0.125f), o(int64_t{kTokens} * kHeadDim);
  for (auto _ : state) {
    for (int h = 0; h < kHeadsQ; ++h) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kTokens, n, kHeadDim, 1.0f, q.data(),
                  kHeadDim, kt.data(), n, 0.0f, s.data(), n);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kTokens, kHeadDim, n, 1.0f, s.data(),
                  n, v.data(), kHeadDim, 0.0f, o.data(), kHeadDim);
    }
    benchmark::DoNotOptimize(o.data());
    benchmark::ClobberMemory();
  }
  // FLOPs actually done: 4 * Hq * tokens * n * D (n rounded down, so within 1/n of the call's).
  BenchProblem same = {};
  same.allowed_pairs = int64_t{kHeadsQ} * kTokens * n;
  SetCounters(state, same);
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (int block : {64, 128}) {
    for (int threads : {1, 2}) b->Args({block, threads});
  }
  b->ArgNames({"block", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
}

BENCHMARK(BM_HbsaCpu)->Apply(Sizes);
BENCHMARK(BM_OpenBlasSgemm)->Apply(Sizes);
BENCHMARK(BM_HbsaCpuVariant)
    ->ArgNames({"block", "threads", "dtype", "causal"})
    ->Args({128, 1, 0, 0})
    ->Args({128, 1, 1, 0})
    ->Args({128, 1, 2, 1})
    ->Args({64, 1, 2, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  const char* isa = std::getenv("HBSA_CPU_ISA");
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
  benchmark::AddCustomContext("openblas_corename", openblas_get_corename());
  benchmark::AddCustomContext("OPENBLAS_CORETYPE", coretype != nullptr ? coretype : "(unset)");
  benchmark::AddCustomContext("HBSA_CPU_ISA", isa != nullptr ? isa : "(unset: best supported)");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
