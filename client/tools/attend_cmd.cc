// attend_cmd.cc: `hbsa attend`, one Attend call from a golden-format case folder or from raw
// .npy inputs; optional check against the case's expected out/lse (hbsa::golden::Compare),
// optional .npy outputs, timings printed.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "commands.h"
#include "connect.h"
#include "flags.h"
#include "hbsa/client.h"
#include "hbsa/golden.h"

namespace hbsa::tools {
namespace {

constexpr char kAttendHelp[] = R"(hbsa attend: send one attention request through Attend and print the answer's timings.

Usage (golden-format case folder, see tests/golden/README.md):
  hbsa attend --target HOST:PORT --case DIR [--check] [--mask-form dense|per_sequence|compact]
              [--lse] [--out out.npy] [--lse-out lse.npy]

Usage (raw inputs, .npy files, shapes as in SEMANTICS.md):
  hbsa attend --target HOST:PORT --q q.npy --k k.npy --v v.npy
              --cu-seqlens-q cu_q.npy --cu-seqlens-k cu_k.npy --block-mask mask.npy
              --q-block-size SQ --k-block-size SK [--causal] [--scale S] [--dtype fp16|bf16|fp32]
              [--mask-form ...] [--lse] [--out out.npy] [--lse-out lse.npy]

--target may be left out when HBSA_TARGET holds the server address (the flag wins).

Inputs:
  --case DIR            q/k/v/block_mask .npy + case.json (dtype, block sizes, causal, scale)
  --q/--k/--v FILE      [total, heads, D] float16 (<f2), float32 (<f4), or uint16 (<u2) bf16 bit
                        patterns (needs --dtype bf16)
  --cu-seqlens-q/-k F   [B+1] int32 or int64
  --block-mask FILE     [Hk, Nq, Nk] bool or uint8
  --q-block-size N, --k-block-size N, --causal, --scale S (default 1/sqrt(D)), --dtype NAME
Request:
  --mask-form FORM      how the mask travels: dense (bit-packed, default), per_sequence, compact
  --lse                 also ask for the log-sum-exp [total_q, Hq] fp32
  --allow-tf32          fp32 inputs: allow TF32 math on the GPU
  --request-id ID       echoed by the server and in its logs
  --timeout-ms N        deadline for the call, retries included (default 60000)
  --repeat N            send the request N times (default 1) and print min/median/max latency
Output:
  --check               compare with the case's out.npy and lse.npy under the tolerances of
                        SEMANTICS.md (implies --lse); exit 1 on a mismatch (needs --case)
  --out FILE            write the output [total_q, Hq, D] (<f2, <u2 for bf16, <f4)
  --lse-out FILE        write the LSE [total_q, Hq] <f4 (implies --lse)
Exit status: 0 ok, 1 check failed, 2 usage error, 3 call or file error.

Example:
  hbsa attend --target localhost:50051 --case tests/golden/cases/readme_example_causal --check
)";

// Storage descriptor of a dtype in .npy files (bf16 travels as raw uint16).
const char* NpyDescr(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: return "<f2";
    case DType::kBFloat16: return "<u2";
    case DType::kFloat32: return "<f4";
  }
  return "";
}

// Inputs of a raw (non-case) request, owning the arrays that AttentionArgs points into.
struct RawInputs {
  golden::NpyArray q, k, v, mask;
  std::vector<int32_t> cu_q, cu_k;
  std::vector<uint8_t> mask_bytes;
};

absl::StatusOr<std::vector<int32_t>> LoadOffsets(const std::string& path) {
  absl::StatusOr<golden::NpyArray> a = golden::LoadNpy(path);
  if (!a.ok()) return a.status();
  if (a->shape.size() != 1) return absl::InvalidArgumentError(absl::StrCat(path, ": must be 1-D [B+1]"));
  std::vector<int32_t> out(static_cast<size_t>(a->NumElements()));
  if (a->descr == "<i4") {
    std::copy_n(reinterpret_cast<const int32_t*>(a->data.data()), out.size(), out.begin());
  } else if (a->descr == "<i8") {
    const auto* p = reinterpret_cast<const int64_t*>(a->data.data());
    for (size_t i = 0; i < out.size(); ++i) {
      if (p[i] < INT32_MIN || p[i] > INT32_MAX) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": entry ", i, " does not fit int32"));
      }
      out[i] = static_cast<int32_t>(p[i]);
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path, ": dtype ", a->descr, " is not int32 or int64"));
  }
  return out;
}

absl::StatusOr<AttentionArgs> LoadRaw(const Flags& f, RawInputs* in) {
  for (const char* name : {"q", "k", "v", "cu-seqlens-q", "cu-seqlens-k", "block-mask",
                           "q-block-size", "k-block-size"}) {
    if (!f.Has(name)) return absl::InvalidArgumentError(absl::StrCat("--", name, " is required without --case"));
  }
  for (auto [name, arr] : {std::pair{"q", &in->q}, std::pair{"k", &in->k}, std::pair{"v", &in->v},
                           std::pair{"block-mask", &in->mask}}) {
    absl::StatusOr<golden::NpyArray> a = golden::LoadNpy(f.Get(name));
    if (!a.ok()) return a.status();
    *arr = *std::move(a);
  }
  auto cu_q = LoadOffsets(f.Get("cu-seqlens-q"));
  if (!cu_q.ok()) return cu_q.status();
  auto cu_k = LoadOffsets(f.Get("cu-seqlens-k"));
  if (!cu_k.ok()) return cu_k.status();
  in->cu_q = *cu_q;
  in->cu_k = *cu_k;

  AttentionArgs args;
  const std::string descr = in->q.descr;
  std::optional<DType> dtype;
  if (f.Has("dtype")) {
    dtype = ParseDType(f.Get("dtype"));
    if (!dtype) return absl::InvalidArgumentError(absl::StrCat("--dtype must be fp16, bf16 or fp32; got ", f.Get("dtype")));
  } else if (descr == "<f2") {
    dtype = DType::kFloat16;
  } else if (descr == "<f4") {
    dtype = DType::kFloat32;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--q has dtype ", descr, "; give --dtype (uint16 data needs --dtype bf16)"));
  }
  if (descr != NpyDescr(*dtype) && !(descr == "<i2" && *dtype == DType::kBFloat16)) {
    return absl::InvalidArgumentError(absl::StrCat("--q has dtype ", descr, ", which does not store ", std::string(DTypeName(*dtype))));
  }
  for (auto [name, arr] : {std::pair{"k", &in->k}, std::pair{"v", &in->v}}) {
    if (arr->descr != descr) return absl::InvalidArgumentError(absl::StrCat("--", name, " dtype ", arr->descr, " differs from q's ", descr));
  }
  if (in->q.shape.size() != 3 || in->k.shape.size() != 3) {
    return absl::InvalidArgumentError("q, k and v must be 3-D [total, heads, D]");
  }
  if (in->mask.shape.size() != 3 || (in->mask.descr != "|u1" && in->mask.descr != "|b1")) {
    return absl::InvalidArgumentError("--block-mask must be a 3-D bool or uint8 array [Hk, Nq, Nk]");
  }
  auto sq = f.GetInt("q-block-size", 0);
  auto sk = f.GetInt("k-block-size", 0);
  auto scale = f.GetOptionalDouble("scale");
  if (!sq.ok()) return sq.status();
  if (!sk.ok()) return sk.status();
  if (!scale.ok()) return scale.status();
  args.dtype = *dtype;
  args.total_q = in->q.shape[0];
  args.num_heads_q = static_cast<int32_t>(in->q.shape[1]);
  args.head_dim = static_cast<int32_t>(in->q.shape[2]);
  args.total_k = in->k.shape[0];
  args.num_heads_k = static_cast<int32_t>(in->k.shape[1]);
  args.batch = static_cast<int32_t>(in->cu_q.size()) - 1;
  args.cu_seqlens_q = {in->cu_q.data(), in->cu_q.size() * sizeof(int32_t)};
  args.cu_seqlens_k = {in->cu_k.data(), in->cu_k.size() * sizeof(int32_t)};
  args.q_block_size = static_cast<int32_t>(*sq);
  args.k_block_size = static_cast<int32_t>(*sk);
  args.causal = f.GetBool("causal");
  if (scale->has_value()) args.softmax_scale = static_cast<float>(**scale);
  args.mask_format = MaskFormat::kDense;
  for (int d = 0; d < 3; ++d) args.dense_mask.shape[d] = in->mask.shape[d];
  args.dense_mask.data = {in->mask.data.data(), in->mask.data.size()};
  args.q = {in->q.data.data(), in->q.data.size()};
  args.k = {in->k.data.data(), in->k.data.size()};
  args.v = {in->v.data.data(), in->v.data.size()};
  return args;
}

std::string Describe(const AttentionArgs& a) {
  return absl::StrFormat("%s B=%d total_q=%d total_k=%d Hq=%d Hk=%d D=%d Sq=%d Sk=%d %s",
                         DTypeName(a.dtype), a.batch, a.total_q, a.total_k, a.num_heads_q,
                         a.num_heads_k, a.head_dim, a.q_block_size, a.k_block_size,
                         a.causal ? "causal" : "non-causal");
}

double Ms(double s) { return s * 1e3; }

}  // namespace

int RunAttend(int argc, char** argv) {
  auto flags = Flags::Parse(
      argc, argv, 1,
      With({"target", "case", "mask-form", "out", "lse-out", "q", "k", "v", "cu-seqlens-q",
            "cu-seqlens-k", "block-mask", "q-block-size", "k-block-size", "scale", "dtype",
            "request-id", "timeout-ms", "repeat"},
           ConnectValueFlags()),
      With({"check", "lse", "causal", "allow-tf32", "help"}, ConnectBoolFlags()));
  if (!flags.ok()) {
    std::cerr << "hbsa attend: " << flags.status().message() << "\n";
    return kExitUsage;
  }
  const Flags& f = *flags;
  if (f.GetBool("help")) {
    std::cout << kAttendHelp << "\n" << kConnectHelp;
    return kExitOk;
  }
  auto usage = [](absl::string_view msg) {
    std::cerr << "hbsa attend: " << msg << " (see hbsa attend --help)\n";
    return kExitUsage;
  };
  const std::string target = TargetFlagOrEnv(f);
  if (target.empty()) return usage("--target (or HBSA_TARGET) is required");
  const auto form = client::ParseMaskForm(f.Get("mask-form", "dense"));
  if (!form) return usage("--mask-form must be dense, per_sequence or compact");
  auto timeout_ms = f.GetInt("timeout-ms", 60000);
  auto repeat = f.GetInt("repeat", 1);
  if (!timeout_ms.ok()) return usage(timeout_ms.status().message());
  if (!repeat.ok() || *repeat < 1 || *repeat > 100000) return usage("--repeat must be in [1, 100000]");
  const bool check = f.GetBool("check");
  if (check && !f.Has("case")) return usage("--check needs --case (the expected output)");

  // Inputs.
  std::optional<golden::Case> gcase;
  RawInputs raw;
  std::vector<uint8_t> out_scratch;
  AttentionArgs args;
  std::string label;
  if (f.Has("case")) {
    for (const char* n : {"q", "k", "v", "cu-seqlens-q", "cu-seqlens-k", "block-mask",
                          "q-block-size", "k-block-size", "scale", "dtype", "causal"}) {
      if (f.Has(n)) return usage(absl::StrCat("--", n, " cannot be combined with --case"));
    }
    absl::StatusOr<golden::Case> c = golden::LoadCase(f.Get("case"));
    if (!c.ok()) {
      std::cerr << "hbsa attend: " << c.status().message() << "\n";
      return kExitFailed;
    }
    gcase = *std::move(c);
    args = gcase->MakeArgs(&out_scratch, nullptr);  // the out buffer is not used remotely
    label = absl::StrCat("case ", gcase->name);
  } else {
    absl::StatusOr<AttentionArgs> a = LoadRaw(f, &raw);
    if (!a.ok()) {
      std::cerr << "hbsa attend: " << a.status().message() << "\n";
      return absl::IsInvalidArgument(a.status()) ? kExitUsage : kExitFailed;
    }
    args = *a;
    label = "raw inputs";
  }

  client::RequestOptions ro;
  ro.mask_form = *form;
  ro.return_lse = f.GetBool("lse") || check || f.Has("lse-out");
  ro.request_id = f.Get("request-id");
  args.allow_tf32 = f.GetBool("allow-tf32");
  absl::StatusOr<v1::AttendRequest> req = client::BuildRequest(args, ro);
  if (!req.ok()) {
    std::cerr << "hbsa attend: " << req.status().message() << "\n";
    return kExitUsage;
  }
  std::cout << label << ": " << Describe(args) << ", mask " << client::MaskFormName(*form) << ", "
            << req->ByteSizeLong() << " request bytes\n";

  absl::StatusOr<client::ChannelOptions> connect = ConnectOptions(f);
  if (!connect.ok()) return usage(connect.status().message());
  client::Client client(target, *connect);
  client::CallOptions call;
  call.timeout = std::chrono::milliseconds(*timeout_ms);
  std::vector<double> latencies;
  absl::StatusOr<client::AttendResult> result;
  for (int64_t i = 0; i < *repeat; ++i) {
    result = client.Attend(*req, call);
    if (!result.ok()) {
      std::cerr << "hbsa attend: " << absl::StatusCodeToString(result.status().code()) << ": "
                << result.status().message() << "\n";
      return kExitFailed;
    }
    latencies.push_back(result->client_seconds);
  }
  const client::AttendResult& r = *result;
  const v1::StageTimings& t = r.server_timings;
  std::cout << absl::StrFormat(
      "backend %s (device %d)%s\n"
      "client round trip %.3f ms (%d attempt%s); server total %.3f ms: queue %.3f, h2d %.3f, "
      "kernel %.3f, d2h %.3f ms\n",
      r.backend, r.device, r.request_id.empty() ? "" : absl::StrCat(", request_id ", r.request_id),
      Ms(r.client_seconds), r.attempts, r.attempts == 1 ? "" : "s", Ms(t.total_seconds()),
      Ms(t.queue_seconds()), Ms(t.host_to_device_seconds()), Ms(t.kernel_seconds()),
      Ms(t.device_to_host_seconds()));
  if (latencies.size() > 1) {
    std::sort(latencies.begin(), latencies.end());
    std::cout << absl::StrFormat("%d calls: min %.3f ms, median %.3f ms, max %.3f ms\n",
                                 latencies.size(), Ms(latencies.front()),
                                 Ms(latencies[latencies.size() / 2]), Ms(latencies.back()));
  }

  if (f.Has("out")) {
    if (auto s = golden::SaveNpy(f.Get("out"), NpyDescr(r.dtype), r.out_shape, r.out.data(), r.out.size());
        !s.ok()) {
      std::cerr << "hbsa attend: " << s.message() << "\n";
      return kExitFailed;
    }
    std::cout << "wrote " << f.Get("out") << "\n";
  }
  if (f.Has("lse-out")) {
    const std::vector<int64_t> shape = {r.out_shape[0], r.out_shape[1]};
    if (auto s = golden::SaveNpy(f.Get("lse-out"), "<f4", shape, r.lse.data(), r.lse.size() * sizeof(float));
        !s.ok()) {
      std::cerr << "hbsa attend: " << s.message() << "\n";
      return kExitFailed;
    }
    std::cout << "wrote " << f.Get("lse-out") << "\n";
  }
  if (check) {
    const golden::Comparison c = golden::Compare(*gcase, r.dtype, r.out.data(), r.lse.data());
    const golden::Tolerance tol = golden::ToleranceFor(r.dtype);
    std::cout << absl::StrFormat(
        "check %s: max|out-ref| %.3g (atol %g, rtol %g), max|lse-ref| %.3g (atol %g), "
        "%d out / %d lse failures\n",
        c.pass() ? "PASS" : "FAIL", c.max_abs_err_out, tol.atol, tol.rtol, c.max_abs_err_lse,
        tol.lse_atol, c.out_failures, c.lse_failures);
    if (!c.pass()) {
      std::cout << "first failure: " << c.first_failure << "\n";
      return kExitNegative;
    }
  }
  return kExitOk;
}

}  // namespace hbsa::tools
