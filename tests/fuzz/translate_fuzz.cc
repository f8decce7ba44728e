// tests/fuzz/translate_fuzz.cc: libFuzzer target for request decoding and validation.
//
// Input: the bytes of a serialized hbsa.v1.AttendRequest (seeds: tests/fuzz/make_seeds.cc, the
// golden cases in all three mask forms). Each input goes the server's own way: ParseReceived (the
// hand-written wire reader of the tensor fields, service.h / wire_request.h) on the bytes as one
// received slice, then server/translate.cc's Translate with fixed limits, the server's validation
// boundary. Properties:
//   - a refusal (by the parser or by Translate) is INVALID_ARGUMENT or RESOURCE_EXHAUSTED with a message (never INTERNAL, never
//     a crash or a sanitizer report);
//   - an accepted request is safe to compute: with outputs of the sizes it announces it still
//     validates, its mask
//     compiles (AllowedPairs), and when small enough hbsa::Run on the CPU backend succeeds and
//     agrees with the float64 reference: a row is empty (lse -inf) on one exactly when it is on
//     the other, and with inputs of modest size (|x| <= 4, finite) every element is within the
//     SEMANTICS.md tolerance.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "fuzz_check.h"
#include "hbsa/attention.h"
#include "hbsa/golden.h"
#include "heuristics.h"
#include "service.h"
#include "translate.h"

namespace {

using hbsa::AttentionArgs;
using hbsa::Backend;
using hbsa::DType;

constexpr int64_t kMaxMessageBytes = 8 << 20;
constexpr int64_t kMemoryBudget = 256 << 20;
constexpr double kMaxFlopsToRun = 4e6;

bool ModestInputs(const AttentionArgs& a) {
  for (const hbsa::ConstBuffer* b : {&a.q, &a.k, &a.v}) {
    const int64_t n = static_cast<int64_t>(b->bytes / hbsa::DTypeSize(a.dtype));
    for (float x : hbsa::golden::ToFloat(a.dtype, b->data, n)) {
      if (!(std::fabs(x) <= 4.0f)) return false;
    }
  }
  return true;
}

void CheckAgainstReference(const AttentionArgs& args) {
  AttentionArgs a = args;
  const int64_t out_elems = a.total_q * a.num_heads_q * a.head_dim;
  const size_t es = hbsa::DTypeSize(a.dtype);
  std::vector<uint8_t> out_cpu(static_cast<size_t>(out_elems) * es), out_ref(out_cpu.size());
  std::vector<float> lse_cpu(static_cast<size_t>(a.total_q * a.num_heads_q)), lse_ref(lse_cpu.size());
  hbsa::RunOptions one_thread;
  one_thread.num_threads = 1;
  a.out = {out_cpu.data(), out_cpu.size()};
  a.lse = {lse_cpu.data(), lse_cpu.size() * 4};
  const absl::Status cpu = hbsa::Run(Backend::kCpu, a, one_thread);
  HBSA_FUZZ_CHECK(cpu.ok(), "accepted request failed on the cpu backend: %s", cpu.ToString().c_str());
  a.out = {out_ref.data(), out_ref.size()};
  a.lse = {lse_ref.data(), lse_ref.size() * 4};
  const absl::Status ref = hbsa::Run(Backend::kReference, a);
  HBSA_FUZZ_CHECK(ref.ok(), "accepted request failed on the reference: %s", ref.ToString().c_str());
  for (size_t i = 0; i < lse_cpu.size(); ++i) {
    const bool empty_cpu = lse_cpu[i] == -INFINITY, empty_ref = lse_ref[i] == -INFINITY;
    HBSA_FUZZ_CHECK(empty_cpu == empty_ref, "pair %zu: cpu lse %g, reference lse %g", i,
                    lse_cpu[i], lse_ref[i]);
  }
  if (!ModestInputs(a)) return;
  const hbsa::golden::Tolerance tol = hbsa::golden::ToleranceFor(a.dtype);
  const std::vector<float> oc = hbsa::golden::ToFloat(a.dtype, out_cpu.data(), out_elems);
  const std::vector<float> orf = hbsa::golden::ToFloat(a.dtype, out_ref.data(), out_elems);
  for (int64_t i = 0; i < out_elems; ++i) {
    HBSA_FUZZ_CHECK(std::fabs(oc[i] - orf[i]) <= tol.atol + tol.rtol * std::fabs(orf[i]),
                    "out element %lld: cpu %g, reference %g", static_cast<long long>(i), oc[i], orf[i]);
  }
  for (size_t i = 0; i < lse_cpu.size(); ++i) {
    if (lse_ref[i] == -INFINITY) continue;
    HBSA_FUZZ_CHECK(std::fabs(lse_cpu[i] - lse_ref[i]) <= tol.lse_atol * std::fmax(1.0f, std::fabs(lse_ref[i])),
                    "lse %zu: cpu %g, reference %g", i, lse_cpu[i], lse_ref[i]);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Protobuf logs every string field with invalid UTF-8 it refuses; that is expected here.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

void CheckRefusal(const absl::Status& s) {
  const absl::StatusCode c = s.code();
  HBSA_FUZZ_CHECK(c == absl::StatusCode::kInvalidArgument || c == absl::StatusCode::kResourceExhausted,
                  "refusal with an unexpected code: %s", s.ToString().c_str());
  HBSA_FUZZ_CHECK(!s.message().empty(), "refusal without a message");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  grpc::Slice slice(data, size);
  const grpc::ByteBuffer received(&slice, 1);
  absl::StatusOr<std::shared_ptr<hbsa::server::ParsedRequest>> parsed =
      hbsa::server::ParseReceived(received);
  if (!parsed.ok()) {
    CheckRefusal(parsed.status());
    return 0;
  }
  const hbsa::server::TranslateLimits limits{kMaxMessageBytes, kMemoryBudget};
  absl::StatusOr<std::unique_ptr<hbsa::server::TranslatedRequest>> t =
      hbsa::server::Translate(std::move(*parsed), limits, /*shm=*/nullptr);
  if (!t.ok()) {
    CheckRefusal(t.status());
    return 0;
  }
  hbsa::server::TranslatedRequest& tr = **t;
  // Inputs the backends cannot read in place (a misaligned field) are staged, as the executors
  // do: into 8-byte-aligned copies.
  AttentionArgs a = tr.args;
  std::vector<uint64_t> staged[3];
  const hbsa::server::InputBytes* in[3] = {&tr.q, &tr.k, &tr.v};
  hbsa::ConstBuffer* arg[3] = {&a.q, &a.k, &a.v};
  for (int i = 0; i < 3; ++i) {
    if (arg[i]->data != nullptr) continue;
    staged[i].resize((in[i]->bytes + 7) / 8);
    in[i]->CopyTo(reinterpret_cast<char*>(staged[i].data()));
    arg[i]->data = staged[i].data();
  }
  // Outputs of exactly the announced sizes, as the executors allocate them.
  std::vector<uint8_t> out(static_cast<size_t>(tr.out_bytes));
  std::vector<uint8_t> lse(static_cast<size_t>(tr.lse_bytes));
  a.out = {out.data(), out.size()};
  if (tr.return_lse) a.lse = {lse.data(), lse.size()};
  HBSA_FUZZ_CHECK(hbsa::Validate(a).ok(), "accepted request does not validate with its outputs");
  HBSA_FUZZ_CHECK(hbsa::AllowedPairs(a) == tr.facts.allowed_pairs,
                  "allowed pairs differ from the validation pass's");
  if (hbsa::server::DenseFlopsUpperBound(tr.args) <= kMaxFlopsToRun) CheckAgainstReference(a);
  return 0;
}
