// server/warmup.cc: the start-up self test (see warmup.h).
#include "warmup.h"

#include <cmath>
#include <cstring>
#include <future>

#include "absl/strings/str_cat.h"
#include "hbsa/golden.h"

namespace hbsa::server {
namespace {

// fp16 bit pattern of a small value in (-1, 1) (exact for multiples of 1/64).
uint16_t HalfOf(int i) {
  const int m = (i * 37 % 97) - 48;  // -48..48, never all zero
  if (m == 0) return 0x0000;
  // |m|/64 = 1.f x 2^e with |m| < 64: normalise the integer mantissa into 10 bits.
  int a = m < 0 ? -m : m, e = 0;
  while (a >= 2) { a >>= 1; ++e; }
  const int mag = m < 0 ? -m : m;
  const uint16_t mant = static_cast<uint16_t>(((mag << (10 - e)) & 0x3ff));
  const uint16_t exp = static_cast<uint16_t>(15 + e - 6);
  return static_cast<uint16_t>((m < 0 ? 0x8000 : 0) | (exp << 10) | mant);
}

void Fill(v1::Tensor* t, int64_t rows, int64_t heads, int64_t dim, int seed) {
  t->set_dtype(v1::DTYPE_FLOAT16);
  t->add_shape(rows);
  t->add_shape(heads);
  t->add_shape(dim);
  const int64_t n = rows * heads * dim;
  std::string* data = t->mutable_data();
  data->resize(static_cast<size_t>(n) * 2);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = HalfOf(static_cast<int>(i) + seed);
    std::memcpy(data->data() + i * 2, &h, 2);
  }
}

}  // namespace

v1::AttendRequest MakeWarmupRequest() {
  // Sequences: q lengths 5 and 9, k lengths 7 and 12; Sq = 4, Sk = 8 -> Nq = 2 + 3, Nk = 1 + 2.
  v1::AttendRequest r;
  r.set_request_id("warmup");
  Fill(r.mutable_q(), 14, 2, 32, 1);
  Fill(r.mutable_k(), 19, 1, 32, 2);
  Fill(r.mutable_v(), 19, 1, 32, 3);
  for (int x : {0, 5, 14}) r.add_cu_seqlens_q(x);
  for (int x : {0, 7, 19}) r.add_cu_seqlens_k(x);
  r.set_q_block_size(4);
  r.set_k_block_size(8);
  r.set_causal(true);
  r.set_return_lse(true);
  v1::DenseBlockMask* m = r.mutable_dense_mask();
  for (int x : {1, 5, 3}) m->add_shape(x);
  m->set_bits(std::string(2, '\xff'));  // 15 bits on
  m->mutable_bits()->back() = '\x7f';   // pad bit 15 off
  return r;
}

absl::Status RunWarmup(Scheduler* scheduler, const TranslateLimits& limits) {
  const v1::AttendRequest request = MakeWarmupRequest();
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> t = Translate(request, limits);
  if (!t.ok()) return absl::InternalError(absl::StrCat("warm-up request refused: ", t.status().message()));
  std::promise<absl::Status> result;
  std::vector<float> out;
  auto job = std::make_unique<Job>();
  job->method = "warmup";
  job->request_id = "warmup";
  job->request = std::move(*t);
  job->received = Clock::now();
  job->warmup = true;
  job->done = [&result, &out](const absl::Status& s, Job& j) {
    if (s.ok()) {
      out = golden::ToFloat(DType::kFloat16, j.result.out, static_cast<int64_t>(j.result.out_bytes / 2));
    }
    result.set_value(s);
  };
  if (absl::Status s = scheduler->Submit(&job); !s.ok()) return s;
  absl::Status s = result.get_future().get();
  if (!s.ok()) return s;
  if (out.empty()) return absl::InternalError("warm-up produced no output");
  for (float x : out) {
    if (!std::isfinite(x)) return absl::InternalError("warm-up produced a non-finite output");
  }
  return absl::OkStatus();
}

}  // namespace hbsa::server
