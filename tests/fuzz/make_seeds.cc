// tests/fuzz/make_seeds.cc: hbsa_fuzz_seeds GOLDEN_DIR OUT_DIR writes the seed corpora of the
// fuzz targets from the golden cases (scripts/fuzz.sh runs it before fuzzing):
//   OUT_DIR/translate/  serialized AttendRequests: every golden case in each of the three mask
//                       forms, the same cases shrunk (one KV head, D 1: the same batch, blocks and
//                       mask, few bytes, so mutations are cheap), the server's warm-up request
//   OUT_DIR/mask/       the golden batch shapes and masks in mask_fuzz.cc's input layout, in each
//                       form (lengths past 255 and B past 6 are cut to what that layout holds)
// Anything the golden folder gains (new cases) becomes a seed on the next run.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "hbsa/client.h"
#include "hbsa/golden.h"
#include "hbsa/plan.h"
#include "warmup.h"

namespace {

using hbsa::client::MaskForm;

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// The case with one KV head (plane 0 of the mask), Hq = Hq / Hk, D = 1, values from a ramp.
struct Shrunk {
  std::vector<uint8_t> q, k, v, mask;
  hbsa::AttentionArgs args;
};

Shrunk Shrink(const hbsa::golden::Case& c, const hbsa::AttentionArgs& full) {
  Shrunk s;
  hbsa::AttentionArgs a = full;
  a.num_heads_q = full.num_heads_q / full.num_heads_k;
  a.num_heads_k = 1;
  a.head_dim = 1;
  const size_t es = hbsa::DTypeSize(a.dtype);
  s.q.assign(static_cast<size_t>(a.total_q * a.num_heads_q) * es, 0x3c);
  s.k.assign(static_cast<size_t>(a.total_k) * es, 0x3b);
  s.v.assign(static_cast<size_t>(a.total_k) * es, 0x3a);
  const int64_t plane = full.dense_mask.shape[1] * full.dense_mask.shape[2];
  const auto* m = static_cast<const uint8_t*>(full.dense_mask.data.data);
  s.mask.assign(m, m + plane);
  a.q = {s.q.data(), s.q.size()};
  a.k = {s.k.data(), s.k.size()};
  a.v = {s.v.data(), s.v.size()};
  a.dense_mask.shape[0] = 1;
  a.dense_mask.data = {s.mask.data(), s.mask.size()};
  s.args = a;
  (void)c;
  return s;
}

// mask_fuzz.cc's layout for the case's batch (cut to B <= 6, lengths <= 255) in `form`.
std::string MaskSeed(const hbsa::golden::Case& c, const hbsa::AttentionArgs& full, int form) {
  const int32_t batch = std::min<int32_t>(full.batch, 6);
  const int32_t sq = full.q_block_size, sk = full.k_block_size;
  const int32_t hk = std::min<int32_t>(full.num_heads_k, 3);
  std::string s;
  s.push_back(static_cast<char>(form));
  s.push_back(static_cast<char>(batch));
  s.push_back(static_cast<char>((sq - 1) % 16));
  s.push_back(static_cast<char>((sk - 1) % 16));
  s.push_back(static_cast<char>(hk - 1));
  s.push_back(static_cast<char>(full.causal ? 1 : 0));
  std::vector<int32_t> cu_q = {0}, cu_k = {0};
  const auto* fq = static_cast<const int32_t*>(full.cu_seqlens_q.data);
  const auto* fk = static_cast<const int32_t*>(full.cu_seqlens_k.data);
  for (int32_t b = 0; b < batch; ++b) {
    const int32_t lq = std::min(255, fq[b + 1] - fq[b]), lk = std::min(255, fk[b + 1] - fk[b]);
    s.push_back(static_cast<char>(lq));
    s.push_back(static_cast<char>(lk));
    cu_q.push_back(cu_q.back() + lq);
    cu_k.push_back(cu_k.back() + lk);
  }
  // The layout mask_fuzz.cc will build: Sq, Sk as it decodes them.
  const int32_t dsq = 1 + (sq - 1) % 16, dsk = 1 + (sk - 1) % 16;
  const hbsa::BlockLayoutStorage cut(batch, cu_q.data(), cu_k.data(), dsq, dsk);
  const hbsa::BlockLayout& l = cut.view();
  const int64_t fnq = full.dense_mask.shape[1], fnk = full.dense_mask.shape[2];
  const auto* fm = static_cast<const uint8_t*>(full.dense_mask.data.data);
  auto bit = [&](int32_t h, int64_t i, int64_t j) {  // the case's bit where it has one
    return i < fnq && j < fnk && fm[(h * fnq + i) * fnk + j] != 0;
  };
  if (form == 0) {
    const int64_t n = int64_t{hk} * l.num_q_blocks * l.num_k_blocks;
    std::string bits(static_cast<size_t>((n + 7) / 8), '\0');
    for (int32_t h = 0; h < hk; ++h) {
      for (int64_t i = 0; i < l.num_q_blocks; ++i) {
        for (int64_t j = 0; j < l.num_k_blocks; ++j) {
          const int64_t e = (h * l.num_q_blocks + i) * l.num_k_blocks + j;
          if (bit(h, i, j)) bits[static_cast<size_t>(e >> 3)] |= static_cast<char>(1 << (e & 7));
        }
      }
    }
    return s + bits;
  }
  if (form == 1) {
    for (int32_t b = 0; b < batch; ++b) {
      const int64_t q0 = l.q_block_start[b], nqb = l.q_block_start[b + 1] - q0;
      const int64_t k0 = l.k_block_start[b], nkb = l.k_block_start[b + 1] - k0;
      const int64_t n = hk * nqb * nkb;
      std::string bits(static_cast<size_t>((n + 7) / 8), '\0');
      for (int32_t h = 0; h < hk; ++h) {
        for (int64_t i = 0; i < nqb; ++i) {
          for (int64_t j = 0; j < nkb; ++j) {
            const int64_t e = (h * nqb + i) * nkb + j;
            if (bit(h, q0 + i, k0 + j)) bits[static_cast<size_t>(e >> 3)] |= static_cast<char>(1 << (e & 7));
          }
        }
      }
      s += bits;
    }
    return s;
  }
  // Structured compact: per row up to 3 in-sequence columns that are on.
  for (int32_t h = 0; h < hk; ++h) {
    for (int64_t i = 0; i < l.num_q_blocks; ++i) {
      const int32_t b = l.q_block_seq[i];
      std::string cols;
      for (int64_t j = l.k_block_start[b]; j < l.k_block_start[b + 1] && cols.size() < 3; ++j) {
        if (bit(h, i, j)) cols.push_back(static_cast<char>(j + 1));  // decoded as byte - 1
      }
      s.push_back(static_cast<char>(cols.size()));
      s += cols;
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: hbsa_fuzz_seeds GOLDEN_DIR OUT_DIR\n";
    return 2;
  }
  const std::string out = argv[2];
  std::system(("mkdir -p '" + out + "/translate' '" + out + "/mask'").c_str());
  int written = 0;
  const std::vector<std::string> dirs = hbsa::golden::ListCaseDirs(argv[1]);
  if (dirs.empty()) {
    std::cerr << "hbsa_fuzz_seeds: no golden cases in " << argv[1] << "\n";
    return 1;
  }
  for (const std::string& dir : dirs) {
    absl::StatusOr<hbsa::golden::Case> c = hbsa::golden::LoadCase(dir);
    if (!c.ok()) {
      std::cerr << "hbsa_fuzz_seeds: " << c.status() << "\n";
      return 1;
    }
    std::vector<uint8_t> scratch;
    const hbsa::AttentionArgs full = c->MakeArgs(&scratch, nullptr);
    Shrunk small = Shrink(*c, full);
    for (MaskForm form : {MaskForm::kDense, MaskForm::kPerSequence, MaskForm::kCompact}) {
      const std::string tag = c->name + "_" + std::string(hbsa::client::MaskFormName(form));
      hbsa::client::RequestOptions ro;
      ro.mask_form = form;
      ro.return_lse = true;
      ro.request_id = c->name;
      for (const auto& [args, suffix] : {std::pair{full, ""}, std::pair{small.args, "_small"}}) {
        absl::StatusOr<hbsa::v1::AttendRequest> r = hbsa::client::BuildRequest(args, ro);
        if (!r.ok()) {
          std::cerr << "hbsa_fuzz_seeds: " << tag << suffix << ": " << r.status() << "\n";
          return 1;
        }
        Write(out + "/translate/" + tag + suffix + ".pb", r->SerializeAsString());
        ++written;
      }
    }
    for (int form = 0; form < 3; ++form) {
      Write(out + "/mask/" + c->name + "_" + std::to_string(form) + ".bin", MaskSeed(*c, full, form));
      ++written;
    }
  }
  Write(out + "/translate/warmup.pb", hbsa::server::MakeWarmupRequest().SerializeAsString());
  std::cout << "hbsa_fuzz_seeds: " << written + 1 << " seeds from " << dirs.size()
            << " golden cases in " << out << "\n";
  return 0;
}
