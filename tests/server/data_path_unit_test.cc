// tests/server/data_path_unit_test.cc: the server's data path without a network.
//
//   WireRequest    ParseAttendRequest against protobuf's own parser: every field of messages
//                  serialized by protobuf, cut into fragments at every kind of boundary,
//                  unpacked shapes, merged tensor fields, and refusals of broken bytes.
//   WireResponse   BuildAttendResponse parses back as the same v1::AttendResponse, and its
//                  output slice is the output memory itself (no copy).
//   RangeAllocator against a byte-map model under random allocations and frees.
//   Batch          a merged launch of three different requests computes, per request, exactly
//                  what each computes alone (CPU backend, same kernel).
//   Shm            registration checks, resolution bounds, overlap refusal, lifetime.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <grpcpp/support/byte_buffer.h>
#include <gtest/gtest.h>

#include "batch.h"
#include "executor.h"
#include "range_allocator.h"
#include "service.h"
#include "shm.h"
#include "translate.h"
#include "warmup.h"
#include "wire_request.h"
#include "wire_response.h"

namespace hbsa::server {
namespace {

std::vector<Fragment> Cut(const std::string& bytes, std::mt19937* rng, size_t max_piece) {
  std::vector<Fragment> f;
  size_t at = 0;
  std::uniform_int_distribution<size_t> len(1, max_piece);
  while (at < bytes.size()) {
    const size_t n = std::min(len(*rng), bytes.size() - at);
    f.push_back({bytes.data() + at, n});
    at += n;
  }
  return f;
}

std::string Gather(const FragmentList& l) {
  std::string s(l.bytes, '\0');
  l.CopyTo(s.data());
  return s;
}

void ExpectSameTensor(const v1::Tensor& want, const WireTensor& got) {
  EXPECT_EQ(got.dtype, want.dtype());
  EXPECT_EQ(got.shape, std::vector<int64_t>(want.shape().begin(), want.shape().end()));
  EXPECT_EQ(Gather(got.data), want.data());
}

TEST(WireRequest, ParsesEveryFieldLikeProtobufAtAnyFragmentBoundaries) {
  std::mt19937 rng(7);
  v1::AttendRequest r = MakeWarmupRequest();
  r.set_request_id("id-\xc3\xa9-utf8");
  r.set_softmax_scale(0.25f);
  r.set_allow_tf32(true);
  r.mutable_out_shm()->set_region("out");
  r.mutable_out_shm()->set_offset(64);
  r.mutable_out_shm()->set_byte_size(1792);
  const std::string bytes = r.SerializeAsString();
  v1::AttendRequest meta = r;
  meta.clear_q();
  meta.clear_k();
  meta.clear_v();
  for (size_t max_piece : {size_t{1}, size_t{2}, size_t{7}, size_t{64}, bytes.size()}) {
    for (int trial = 0; trial < 5; ++trial) {
      ParsedRequest p;
      ASSERT_TRUE(ParseAttendRequest(Cut(bytes, &rng, max_piece), &p).ok());
      EXPECT_EQ(p.meta.SerializeAsString(), meta.SerializeAsString());
      ExpectSameTensor(r.q(), p.q);
      ExpectSameTensor(r.k(), p.k);
      ExpectSameTensor(r.v(), p.v);
      EXPECT_EQ(p.wire_bytes, static_cast<int64_t>(bytes.size()));
    }
  }
  // One slice in, one view out: the tensor bytes are not copied.
  ParsedRequest p;
  ASSERT_TRUE(ParseAttendRequest({{bytes.data(), bytes.size()}}, &p).ok());
  ASSERT_EQ(p.q.data.pieces.size(), 1u);
  EXPECT_GE(p.q.data.pieces[0].data, bytes.data());
  EXPECT_LT(p.q.data.pieces[0].data, bytes.data() + bytes.size());
  EXPECT_EQ(p.q.data.Contiguous(), p.q.data.pieces[0].data);
}

TEST(WireRequest, UnpackedShapeMergedTensorAndShmRef) {
  // q as two Tensor fields: the first with dtype and an unpacked shape, the second with data
  // and more shape entries (protobuf merges them: shape appended, data last wins).
  std::string t1, t2, msg;
  t1 += "\x08\x03";              // dtype = FLOAT32
  t1 += "\x10\x02";              // shape 2 (unpacked varint)
  t2 += "\x10\x01\x10\x04";      // shape 1, 4
  t2 += "\x1a\x04" "abcd";       // data (replaced below)
  t2 += "\x1a\x03" "xyz";        // data, last wins
  t2 += "\x22\x07\x0a\x01r\x10\x05\x18\x06";  // shm {region "r", offset 5, byte_size 6}
  msg += "\x12" + std::string(1, static_cast<char>(t1.size())) + t1;
  msg += "\x12" + std::string(1, static_cast<char>(t2.size())) + t2;
  msg += "\x38\x10";             // q_block_size = 16
  msg += "\xf8\x07\x01";         // unknown field 127 (varint) is kept and ignored
  ParsedRequest p;
  ASSERT_TRUE(ParseAttendRequest({{msg.data(), msg.size()}}, &p).ok());
  EXPECT_EQ(p.q.dtype, 3);
  EXPECT_EQ(p.q.shape, (std::vector<int64_t>{2, 1, 4}));
  EXPECT_EQ(Gather(p.q.data), "xyz");
  EXPECT_TRUE(p.q.has_shm);
  EXPECT_EQ(p.q.shm.region(), "r");
  EXPECT_EQ(p.q.shm.offset(), 5);
  EXPECT_EQ(p.q.shm.byte_size(), 6);
  EXPECT_EQ(p.meta.q_block_size(), 16);
  // protobuf agrees on the tensor.
  v1::AttendRequest ref;
  ASSERT_TRUE(ref.ParseFromString(msg));
  ExpectSameTensor(ref.q(), p.q);
}

TEST(WireRequest, RefusesBrokenBytes) {
  const std::string bytes = MakeWarmupRequest().SerializeAsString();
  for (size_t cut : {size_t{1}, size_t{3}, bytes.size() / 2, bytes.size() - 1}) {
    ParsedRequest p;
    const std::string part = bytes.substr(0, cut);
    absl::Status s = ParseAttendRequest({{part.data(), part.size()}}, &p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << cut;
    EXPECT_NE(s.message().find("not a valid hbsa.v1.AttendRequest"), std::string::npos);
  }
  const std::string zero_field = std::string("\x00\x01", 2);
  ParsedRequest p;
  EXPECT_FALSE(ParseAttendRequest({{zero_field.data(), zero_field.size()}}, &p).ok());
  const std::string group = "\x0b";  // wire type 3
  EXPECT_FALSE(ParseAttendRequest({{group.data(), group.size()}}, &p).ok());
}

TEST(WireResponse, ParsesBackAndPointsAtTheOutputMemory) {
  std::shared_ptr<HostBlock> block = HeapBlock(40);
  for (int i = 0; i < 40; ++i) block->data()[i] = static_cast<char>(i * 7);
  ResponseParts p;
  p.request_id = "abc";
  p.dtype = v1::DTYPE_FLOAT16;
  p.out_shape[0] = 2;
  p.out_shape[1] = 2;
  p.out_shape[2] = 4;
  p.out = block->data();
  p.out_bytes = 32;
  p.has_lse = true;
  p.lse_shape[0] = 2;
  p.lse_shape[1] = 1;
  p.lse = block->data() + 32;
  p.lse_bytes = 8;
  p.owner = block;
  p.timings.set_kernel_seconds(0.5);
  p.timings.set_batch_size(3);
  p.backend = "cpu";
  p.device = -1;
  grpc::ByteBuffer buf = BuildAttendResponse(p);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(buf.Dump(&slices).ok());
  bool points_into_block = false;
  std::string all;
  for (const grpc::Slice& s : slices) {
    if (reinterpret_cast<const char*>(s.begin()) == block->data()) points_into_block = true;
    all.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_TRUE(points_into_block);
  v1::AttendResponse r;
  ASSERT_TRUE(r.ParseFromString(all));
  EXPECT_EQ(r.request_id(), "abc");
  EXPECT_EQ(r.out().dtype(), v1::DTYPE_FLOAT16);
  EXPECT_EQ(std::vector<int64_t>(r.out().shape().begin(), r.out().shape().end()),
            (std::vector<int64_t>{2, 2, 4}));
  EXPECT_EQ(r.out().data(), std::string(block->data(), 32));
  EXPECT_EQ(r.lse().dtype(), v1::DTYPE_FLOAT32);
  EXPECT_EQ(r.lse().data(), std::string(block->data() + 32, 8));
  EXPECT_EQ(r.timings().kernel_seconds(), 0.5);
  EXPECT_EQ(r.timings().batch_size(), 3);
  EXPECT_GT(r.timings().response_seconds(), 0.0);
  EXPECT_EQ(r.backend(), "cpu");
  EXPECT_EQ(r.device(), -1);
  // The block lives while the response does.
  std::weak_ptr<HostBlock> weak = block;
  block.reset();
  p.owner.reset();
  EXPECT_FALSE(weak.expired());
  buf.Clear();
  slices.clear();
  EXPECT_TRUE(weak.expired());
}

TEST(RangeAllocator, MatchesAModelUnderRandomUse) {
  constexpr size_t kCap = 64 * RangeAllocator::kAlign;
  RangeAllocator a(kCap);
  std::vector<int> owner(kCap / RangeAllocator::kAlign, -1);
  std::vector<std::pair<size_t, size_t>> live;
  std::mt19937 rng(3);
  for (int step = 0; step < 4000; ++step) {
    if (live.empty() || rng() % 2 == 0) {
      const size_t bytes = 1 + rng() % (8 * RangeAllocator::kAlign);
      std::optional<size_t> at = a.Allocate(bytes);
      // First fit: the model finds the lowest run of free units that is long enough.
      const size_t units = RangeAllocator::Rounded(bytes) / RangeAllocator::kAlign;
      std::optional<size_t> want;
      for (size_t i = 0, run = 0; i < owner.size(); ++i) {
        run = owner[i] < 0 ? run + 1 : 0;
        if (run == units) {
          want = (i + 1 - units) * RangeAllocator::kAlign;
          break;
        }
      }
      ASSERT_EQ(at, want) << step;
      if (!at) continue;
      for (size_t u = 0; u < units; ++u) owner[*at / RangeAllocator::kAlign + u] = step;
      live.push_back({*at, bytes});
    } else {
      const size_t i = rng() % live.size();
      a.Free(live[i].first, live[i].second);
      const size_t units = RangeAllocator::Rounded(live[i].second) / RangeAllocator::kAlign;
      for (size_t u = 0; u < units; ++u) owner[live[i].first / RangeAllocator::kAlign + u] = -1;
      live.erase(live.begin() + static_cast<long>(i));
    }
  }
  for (auto& [o, b] : live) a.Free(o, b);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.Allocate(kCap), std::optional<size_t>(0));  // fully coalesced again
}

// A request of `len_q` x `len_k` tokens (two sequences), fp32, deterministic values.
v1::AttendRequest SmallRequest(int seed, int32_t len_a, int32_t len_b, bool lse) {
  v1::AttendRequest r;
  const int32_t hq = 2, hk = 1, d = 8, total = len_a + len_b;
  auto fill = [&](v1::Tensor* t, int heads, int s) {
    t->set_dtype(v1::DTYPE_FLOAT32);
    t->add_shape(total);
    t->add_shape(heads);
    t->add_shape(d);
    std::vector<float> v(static_cast<size_t>(total) * heads * d);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37 + s * 11) % 17) / 17.0f - 0.5f;
    t->set_data(v.data(), v.size() * 4);
  };
  fill(r.mutable_q(), hq, seed);
  fill(r.mutable_k(), hk, seed + 1);
  fill(r.mutable_v(), hk, seed + 2);
  for (int x : {0, len_a, total}) {
    r.add_cu_seqlens_q(x);
    r.add_cu_seqlens_k(x);
  }
  r.set_q_block_size(4);
  r.set_k_block_size(4);
  r.set_causal(true);
  r.set_return_lse(lse);
  // Every in-sequence block on, via the compact form; sequence 0's first row off for variety.
  v1::CompactBlockMask* m = r.mutable_compact_mask();
  const int32_t nba = (len_a + 3) / 4, nbb = (len_b + 3) / 4;
  m->add_row_offsets(0);
  for (int32_t i = 0; i < nba + nbb; ++i) {
    const bool in_a = i < nba;
    if (i != 0) {
      for (int32_t j = in_a ? 0 : nba; j < (in_a ? nba : nba + nbb); ++j) m->add_col_indices(j);
    }
    m->add_row_offsets(m->col_indices_size());
  }
  return r;
}

TEST(Batch, MergedLaunchComputesWhatEachRequestComputesAlone) {
  const std::vector<v1::AttendRequest> reqs = {SmallRequest(1, 9, 5, true), SmallRequest(2, 4, 13, true),
                                               SmallRequest(3, 1, 8, true)};
  std::vector<std::unique_ptr<Job>> jobs;
  std::vector<std::vector<float>> alone_out, alone_lse;
  for (const auto& r : reqs) {
    auto t = Translate(r, TranslateLimits{1 << 30, 0});
    ASSERT_TRUE(t.ok()) << t.status();
    AttentionArgs a = (*t)->args;
    std::vector<float> out(static_cast<size_t>((*t)->out_bytes / 4)), lse(static_cast<size_t>((*t)->lse_bytes / 4));
    a.out = {out.data(), out.size() * 4};
    a.lse = {lse.data(), lse.size() * 4};
    ASSERT_TRUE(hbsa::Run(Backend::kCpu, a).ok());
    alone_out.push_back(out);
    alone_lse.push_back(lse);
    auto job = std::make_unique<Job>();
    job->request = std::move(*t);
    jobs.push_back(std::move(job));
  }
  ASSERT_TRUE(Batchable(*jobs[0]->request, *jobs[1]->request));
  Launch l = MakeLaunch(std::move(jobs));
  ASSERT_EQ(l.args.batch, 6);
  ASSERT_EQ(l.args.total_q, 14 + 17 + 9);
  std::vector<char> in(l.args.q.bytes + 2 * l.args.k.bytes);
  StageInputs(l, in.data(), in.data() + l.args.q.bytes, in.data() + l.args.q.bytes + l.args.k.bytes);
  AttentionArgs m = l.args;
  m.q.data = in.data();
  m.k.data = in.data() + l.args.q.bytes;
  m.v.data = in.data() + l.args.q.bytes + l.args.k.bytes;
  std::vector<char> out(static_cast<size_t>(l.out_bytes + l.lse_bytes));
  m.out = {out.data(), static_cast<size_t>(l.out_bytes)};
  m.lse = {out.data() + l.out_bytes, static_cast<size_t>(l.lse_bytes)};
  ASSERT_TRUE(Validate(m).ok()) << Validate(m);  // the merge is a valid request in its own right
  ASSERT_TRUE(hbsa::Run(Backend::kCpu, m).ok());
  for (size_t j = 0; j < l.jobs.size(); ++j) {
    std::vector<float> got(alone_out[j].size()), got_lse(alone_lse[j].size());
    std::memcpy(got.data(), out.data() + l.OutOffset(j), got.size() * 4);
    std::memcpy(got_lse.data(), out.data() + l.out_bytes + l.LseOffset(j), got_lse.size() * 4);
    EXPECT_EQ(got, alone_out[j]) << "request " << j;
    for (size_t i = 0; i < got_lse.size(); ++i) {
      // -inf rows compare equal; finite ones bit for bit.
      EXPECT_TRUE(got_lse[i] == alone_lse[j][i]) << "request " << j << " lse " << i;
    }
  }
}

TEST(Batch, IncompatibleRequestsAreNotMerged) {
  auto a = Translate(SmallRequest(1, 4, 4, true), TranslateLimits{1 << 30, 0});
  auto b = Translate(SmallRequest(1, 4, 4, false), TranslateLimits{1 << 30, 0});
  v1::AttendRequest c_req = SmallRequest(1, 4, 4, true);
  c_req.set_causal(false);
  auto c = Translate(c_req, TranslateLimits{1 << 30, 0});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_FALSE(Batchable(**a, **b));  // LSE differs
  EXPECT_FALSE(Batchable(**a, **c));  // causal differs
  EXPECT_TRUE(Batchable(**a, **a));
}

// A shared-memory object of `bytes` bytes, removed at scope end.
struct ShmObject {
  std::string key;
  ShmObject(const std::string& k, size_t bytes, mode_t mode = 0600) : key(k) {
    shm_unlink(key.c_str());
    const int fd = shm_open(key.c_str(), O_RDWR | O_CREAT | O_EXCL, mode);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(bytes)), 0);
    close(fd);
  }
  ~ShmObject() { shm_unlink(key.c_str()); }
};

v1::RegisterSharedMemoryRequest Reg(const std::string& name, const std::string& key, int64_t off,
                                    int64_t size) {
  v1::RegisterSharedMemoryRequest r;
  r.set_name(name);
  r.set_key(key);
  r.set_offset(off);
  r.set_byte_size(size);
  return r;
}

TEST(Shm, RegistrationChecksAndResolution) {
  const std::string key = "/hbsa_unit_" + std::to_string(getpid());
  ShmObject obj(key, 8192);
  ShmRegistry reg;
  EXPECT_EQ(reg.Register(Reg("", key, 0, 10)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg.Register(Reg("a", "no-slash", 0, 10)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg.Register(Reg("a", key + "_missing", 0, 10)).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(reg.Register(Reg("a", key, -1, 10)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg.Register(Reg("a", key, 8000, 200)).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(reg.Register(Reg("a", key, 100, 4000)).ok());
  EXPECT_EQ(reg.Register(Reg("a", key, 0, 10)).code(), absl::StatusCode::kAlreadyExists);
  v1::SharedMemoryRef ref;
  ref.set_region("a");
  ref.set_offset(96);
  ref.set_byte_size(64);
  absl::StatusOr<ShmSpan> s = reg.Resolve(ref, 64, "q.shm");
  ASSERT_TRUE(s.ok()) << s.status();
  std::memcpy(s->data, "hello", 5);
  // The bytes are the object's bytes 100 + 96 on.
  {
    const int fd = shm_open(key.c_str(), O_RDONLY, 0);
    char buf[5];
    ASSERT_EQ(pread(fd, buf, 5, 196), 5);
    close(fd);
    EXPECT_EQ(std::string(buf, 5), "hello");
  }
  EXPECT_EQ(reg.Resolve(ref, 65, "q.shm").status().code(), absl::StatusCode::kInvalidArgument);
  ref.set_offset(3990);
  absl::Status past = reg.Resolve(ref, 64, "q.shm").status();
  EXPECT_EQ(past.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(past.message().find("q.shm: offset + byte_size (3990 + 64)"), std::string::npos) << past;
  ref.set_region("b");
  EXPECT_NE(reg.Resolve(ref, 64, "k.shm").status().message().find("k.shm.region \"b\" is not registered"),
            std::string::npos);
  // Unregistering keeps the mapping of a resolved span alive.
  ASSERT_TRUE(reg.Unregister("a").ok());
  EXPECT_EQ(reg.Unregister("a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(s->data, 5), "hello");
}

TEST(Shm, TranslateReadsTensorsThereAndRefusesOverlappingOutputs) {
  const std::string key = "/hbsa_unit_tr_" + std::to_string(getpid());
  v1::AttendRequest r = SmallRequest(1, 4, 4, true);
  const size_t q_bytes = r.q().data().size(), k_bytes = r.k().data().size();
  ShmObject obj(key, 1 << 16);
  ShmRegistry reg;
  ASSERT_TRUE(reg.Register(Reg("in", key, 0, 1 << 16)).ok());
  v1::SharedMemoryRef ref;
  ref.set_region("in");
  // q at 0, k at 4096, v at 8192; out at 12288.
  auto to_shm = [&](v1::Tensor* t, int64_t off) {
    ref.set_offset(off);
    ref.set_byte_size(static_cast<int64_t>(t->data().size()));
    absl::StatusOr<ShmSpan> s = reg.Resolve(ref, ref.byte_size(), "t");
    ASSERT_TRUE(s.ok());
    std::memcpy(s->data, t->data().data(), t->data().size());
    t->clear_data();
    *t->mutable_shm() = ref;
  };
  to_shm(r.mutable_q(), 0);
  to_shm(r.mutable_k(), 4096);
  to_shm(r.mutable_v(), 8192);
  r.mutable_out_shm()->set_region("in");
  r.mutable_out_shm()->set_offset(12288);
  r.mutable_out_shm()->set_byte_size(static_cast<int64_t>(q_bytes));
  auto parsed = std::make_shared<ParsedRequest>(ViewOfMessage(r));
  auto t = Translate(parsed, TranslateLimits{1 << 30, 0}, &reg);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE((*t)->uses_shm());
  EXPECT_NE((*t)->q.shm, nullptr);
  EXPECT_EQ((*t)->args.k.bytes, k_bytes);
  EXPECT_NE((*t)->out_target.shm, nullptr);
  // Output overlapping k.
  r.mutable_out_shm()->set_offset(4100);
  parsed = std::make_shared<ParsedRequest>(ViewOfMessage(r));
  t = Translate(parsed, TranslateLimits{1 << 30, 0}, &reg);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("out_shm [4100, "), std::string::npos) << t.status();
  // Data and shm together; shm without a registry.
  r.mutable_out_shm()->set_offset(12288);
  r.mutable_q()->set_data("x");
  parsed = std::make_shared<ParsedRequest>(ViewOfMessage(r));
  t = Translate(parsed, TranslateLimits{1 << 30, 0}, &reg);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("q.data must be empty when q.shm is set"), std::string::npos);
  r.mutable_q()->clear_data();
  parsed = std::make_shared<ParsedRequest>(ViewOfMessage(r));
  EXPECT_EQ(Translate(parsed, TranslateLimits{1 << 30, 0}, nullptr).status().code(),
            absl::StatusCode::kUnimplemented);
}

// A tensor inside a received message starts wherever its field does; the backends must never
// read it in place when that is off its element size (UBSan found it through the fuzzer:
// tests/fuzz/regressions/translate/misaligned_tensor_in_received_message.pb).
TEST(Translate, MisalignedTensorsInTheMessageAreStagedNotReadInPlace) {
  const v1::AttendRequest r = SmallRequest(1, 4, 4, false);
  const std::string wire = r.SerializeAsString();
  int in_place = 0;
  for (size_t shift = 0; shift < 4; ++shift) {
    // The same bytes at every offset of a 4-byte word: some fp32 tensors land misaligned.
    std::vector<uint64_t> storage(wire.size() / 8 + 2);
    char* at = reinterpret_cast<char*>(storage.data()) + shift;
    std::memcpy(at, wire.data(), wire.size());
    grpc::Slice slice(at, wire.size(), grpc::Slice::STATIC_SLICE);  // in place, no copy
    const grpc::ByteBuffer received(&slice, 1);
    auto parsed = ParseReceived(received);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    auto t = Translate(std::move(*parsed), TranslateLimits{1 << 30, 0}, nullptr);
    ASSERT_TRUE(t.ok()) << t.status();
    const TranslatedRequest& tr = **t;
    for (const auto& [arg, in] : {std::pair{&tr.args.q, &tr.q}, std::pair{&tr.args.k, &tr.k},
                                  std::pair{&tr.args.v, &tr.v}}) {
      if (arg->data == nullptr) continue;  // staged by the executor
      EXPECT_EQ(reinterpret_cast<uintptr_t>(arg->data) % 4, 0u) << "shift " << shift;
      EXPECT_EQ(arg->data, in->Contiguous());
      ++in_place;
    }
  }
  // Each of q, k, v is aligned (and read in place, no copy) at exactly one of the four shifts.
  EXPECT_EQ(in_place, 3);
}

TEST(Translate, FactsComeFromTheOneValidationPass) {
  auto t = Translate(MakeWarmupRequest(), TranslateLimits{536870912, 0});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->facts.num_q_blocks, 5);
  EXPECT_EQ((*t)->facts.num_k_blocks, 3);
  EXPECT_EQ((*t)->facts.allowed_pairs, AllowedPairs((*t)->args));
  EXPECT_GT((*t)->facts.allowed_pairs, 0);
  EXPECT_DOUBLE_EQ((*t)->facts.flops, 4.0 * 32 * static_cast<double>((*t)->facts.allowed_pairs));
}

}  // namespace
}  // namespace hbsa::server
