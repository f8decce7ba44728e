// golden.cc: loading golden-format cases and comparing outputs under SEMANTICS.md tolerances.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "hbsa/golden.h"
#include "hbsa/numeric.h"
#include "nlohmann/json.hpp"

namespace hbsa::golden {
namespace fs = std::filesystem;

std::string DefaultGoldenRoot() {
  if (const char* env = std::getenv("HBSA_GOLDEN_DIR"); env != nullptr && *env != '\0') return env;
  return HBSA_DEFAULT_GOLDEN_DIR;
}

std::vector<std::string> ListCaseDirs(const std::string& root) {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    if (e.is_directory() && fs::exists(e.path() / "case.json")) dirs.push_back(e.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

Tolerance ToleranceFor(DType dtype) {
  switch (dtype) {
    case DType::kBFloat16: return {1e-2, 1e-2, 1e-3};
    case DType::kFloat16: return {2e-3, 2e-3, 1e-3};
    case DType::kFloat32: return {1e-4, 1e-4, 1e-5};
  }
  return {0, 0, 0};
}

std::vector<float> ToFloat(DType dtype, const void* data, int64_t n) {
  std::vector<float> f(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::kFloat16: f[i] = HalfToFloat(static_cast<const uint16_t*>(data)[i]); break;
      case DType::kBFloat16: f[i] = BFloat16ToFloat(static_cast<const uint16_t*>(data)[i]); break;
      case DType::kFloat32: f[i] = static_cast<const float*>(data)[i]; break;
    }
  }
  return f;
}

absl::StatusOr<Case> LoadCase(const std::string& dir) {
  Case c;
  c.name = fs::path(dir).filename().string();
  if (c.name.empty()) c.name = fs::path(dir).parent_path().filename().string();
  std::ifstream jf(fs::path(dir) / "case.json");
  if (!jf) return absl::NotFoundError(absl::StrCat(dir, "/case.json: cannot open"));
  nlohmann::json j;
  try {
    jf >> j;
    auto dt = ParseDType(j.at("dtype").get<std::string>());
    if (!dt) return absl::InvalidArgumentError(absl::StrCat(dir, "/case.json: unknown dtype"));
    c.dtype = *dt;
    c.hq = j.at("hq").get<int32_t>();
    c.hk = j.at("hk").get<int32_t>();
    c.d = j.at("d").get<int32_t>();
    c.sq = j.at("sq").get<int32_t>();
    c.sk = j.at("sk").get<int32_t>();
    c.causal = j.at("causal").get<bool>();
    if (j.contains("scale") && !j.at("scale").is_null()) c.scale = j.at("scale").get<float>();
    c.cu_q = j.at("cu_q").get<std::vector<int32_t>>();
    c.cu_k = j.at("cu_k").get<std::vector<int32_t>>();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/case.json: ", e.what()));
  }
  struct Item { const char* file; NpyArray* dst; bool required; };
  for (Item it : {Item{"q.npy", &c.q, true}, Item{"k.npy", &c.k, true}, Item{"v.npy", &c.v, true},
                  Item{"block_mask.npy", &c.block_mask, true}, Item{"out.npy", &c.out, false},
                  Item{"lse.npy", &c.lse, false}}) {
    const fs::path p = fs::path(dir) / it.file;
    if (!it.required && !fs::exists(p)) continue;
    absl::StatusOr<NpyArray> a = LoadNpy(p.string());
    if (!a.ok()) return a.status();
    *it.dst = *std::move(a);
  }
  return c;
}

AttentionArgs Case::MakeArgs(std::vector<uint8_t>* out_buf, std::vector<float>* lse_buf) const {
  AttentionArgs a;
  a.dtype = dtype;
  a.total_q = total_q();
  a.total_k = total_k();
  a.num_heads_q = hq;
  a.num_heads_k = hk;
  a.head_dim = d;
  a.batch = batch();
  a.cu_seqlens_q = {cu_q.data(), cu_q.size() * sizeof(int32_t)};
  a.cu_seqlens_k = {cu_k.data(), cu_k.size() * sizeof(int32_t)};
  a.q_block_size = sq;
  a.k_block_size = sk;
  a.causal = causal;
  a.softmax_scale = scale;
  a.mask_format = MaskFormat::kDense;
  for (size_t i = 0; i < 3 && i < block_mask.shape.size(); ++i) a.dense_mask.shape[i] = block_mask.shape[i];
  a.dense_mask.data = {block_mask.data.data(), block_mask.data.size()};
  a.q = {q.data.data(), q.data.size()};
  a.k = {k.data.data(), k.data.size()};
  a.v = {v.data.data(), v.data.size()};
  out_buf->resize(static_cast<size_t>(total_q()) * hq * d * DTypeSize(dtype));
  a.out = {out_buf->data(), out_buf->size()};
  if (lse_buf != nullptr) {
    lse_buf->resize(static_cast<size_t>(total_q()) * hq);
    a.lse = {lse_buf->data(), lse_buf->size() * sizeof(float)};
  }
  return a;
}

Comparison Compare(const Case& c, DType dtype, const void* out, const float* lse) {
  Comparison r;
  const Tolerance tol = ToleranceFor(c.dtype);
  const int64_t rows = c.total_q() * c.hq;
  const int64_t n = rows * c.d;
  const auto* ref = reinterpret_cast<const float*>(c.out.data.data());
  const auto* ref_lse = reinterpret_cast<const float*>(c.lse.data.data());
  const bool have_lse_ref = c.lse.NumElements() == rows && !c.lse.data.empty();
  const std::vector<float> got = ToFloat(dtype, out, n);
  for (int64_t e = 0; e < n; ++e) {
    const int64_t row = e / c.d;
    const bool empty_row = have_lse_ref && std::isinf(ref_lse[row]) && ref_lse[row] < 0;
    const double err = std::fabs(static_cast<double>(got[e]) - ref[e]);
    bool ok;
    if (empty_row) {
      ok = got[e] == 0.0f;
    } else {
      ok = std::isfinite(got[e]) && err <= tol.atol + tol.rtol * std::fabs(ref[e]);
    }
    if (std::isfinite(err)) r.max_abs_err_out = std::max(r.max_abs_err_out, err);
    if (!ok) {
      if (r.out_failures++ == 0) {
        r.first_failure = absl::StrCat("out[row ", e / (c.hq * c.d), ", head ", (e / c.d) % c.hq,
                                       ", dim ", e % c.d, "] = ", got[e], ", expected ", ref[e],
                                       empty_row ? " (empty row: exactly 0)" : "");
      }
    }
  }
  if (lse != nullptr && have_lse_ref) {
    r.lse_checked = true;
    for (int64_t i = 0; i < rows; ++i) {
      const bool empty_row = std::isinf(ref_lse[i]) && ref_lse[i] < 0;
      bool ok;
      if (empty_row) {
        ok = std::isinf(lse[i]) && lse[i] < 0;
      } else {
        const double err = std::fabs(static_cast<double>(lse[i]) - ref_lse[i]);
        ok = std::isfinite(lse[i]) && err <= tol.lse_atol;
        if (std::isfinite(err)) r.max_abs_err_lse = std::max(r.max_abs_err_lse, err);
      }
      if (!ok && r.lse_failures++ == 0 && r.first_failure.empty()) {
        r.first_failure = absl::StrCat("lse[row ", i / c.hq, ", head ", i % c.hq, "] = ", lse[i],
                                       ", expected ", ref_lse[i]);
      }
    }
  }
  return r;
}

}  // namespace hbsa::golden
